/** Small figures every scenario takes of its samples. */

/** The middle value (the mean of the two middle ones for an even count); `NaN` for none. */
export const median = (values: ReadonlyArray<number>): number => {
  if (values.length === 0) return Number.NaN
  const sorted = [...values].sort((a, b) => a - b)
  const mid = Math.floor(sorted.length / 2)
  return sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2
}

export const sum = (values: ReadonlyArray<number>): number => values.reduce((a, b) => a + b, 0)

/** The largest value, and 0 for none (the figures are durations and counts). */
export const max = (values: ReadonlyArray<number>): number => values.reduce((a, b) => Math.max(a, b), 0)
