/**
 * The shape of `results/latest.json`, which `BENCHMARKS.md` is rendered from.
 */

export type Cell = number | string | boolean | null

export interface Column {
  readonly key: string
  readonly label: string
}

export interface Row {
  readonly label: string
  readonly values: Readonly<Record<string, Cell>>
  /** Headline rows are the counts and ratios; the others are secondary (e.g. absolute times). */
  readonly headline?: boolean | undefined
}

export interface Verdict {
  /** What ours measured, in a few words, for the summary table. */
  readonly ours: string
  /** null when the run could not decide (e.g. an error). */
  readonly met: boolean | null
}

export interface ScenarioResult {
  readonly id: string
  readonly title: string
  readonly target: string
  readonly columns: ReadonlyArray<Column>
  readonly rows: ReadonlyArray<Row>
  /** Column key → why the peer cannot do this scenario. */
  readonly notApplicable: Readonly<Record<string, string>>
  /** Column key → what went wrong in this run. */
  readonly errors: Readonly<Record<string, string>>
  readonly method: ReadonlyArray<string>
  readonly verdict: Verdict
  /** Raw measurements per column. */
  readonly data: Readonly<Record<string, unknown>>
  readonly wallSeconds: number
}

export interface Results {
  readonly generatedAt: string
  readonly machine: {
    readonly cpu: string
    readonly cores: number
    readonly memoryGiB: number
    readonly platform: string
  }
  readonly node: string
  readonly versions: Readonly<Record<string, string>>
  readonly settings: Readonly<Record<string, unknown>>
  readonly totalSeconds: number
  readonly scenarios: ReadonlyArray<ScenarioResult>
}
