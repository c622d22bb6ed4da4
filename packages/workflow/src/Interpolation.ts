/**
 * `${VAR}` and `${VAR:-default}` interpolation over a parsed YAML tree, as NAT's loader does, except that every unset
 * variable without a default is reported at once with its YAML path (NAT silently substitutes an empty string, the
 * "works locally but fails in CI" trap).
 *
 * `${VAR:-default}` uses the default when `VAR` is unset or empty (shell semantics). A value that is exactly one
 * `${…}` expression stays a string; the configuration schemas accept numeric and boolean strings where they expect
 * numbers and booleans.
 *
 * @since 0.1.0
 */

/**
 * An unset variable and where it is used.
 *
 * @since 0.1.0
 * @category Models
 */
export interface UnsetVariable {
  readonly name: string
  readonly path: string
}

const pattern = /\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}/g

/**
 * Interpolates every string in `value`. Returns the new tree and the unset variables found.
 *
 * @since 0.1.0
 * @category Combinators
 */
export const interpolate = (
  value: unknown,
  env: Readonly<Record<string, string | undefined>>,
  path = ""
): { readonly value: unknown; readonly unset: ReadonlyArray<UnsetVariable> } => {
  const unset: Array<UnsetVariable> = []
  const walk = (node: unknown, at: string): unknown => {
    if (typeof node === "string") {
      return node.replace(pattern, (_match, name: string, fallback: string | undefined) => {
        const current = env[name]
        if (current !== undefined && (current !== "" || fallback === undefined)) return current
        if (fallback !== undefined) return fallback
        unset.push({ name, path: at })
        return ""
      })
    }
    if (Array.isArray(node)) return node.map((item, i) => walk(item, `${at}[${i}]`))
    if (typeof node === "object" && node !== null) {
      return Object.fromEntries(Object.entries(node).map(([k, v]) => [k, walk(v, at ? `${at}.${k}` : k)]))
    }
    return node
  }
  return { value: walk(value, path), unset }
}
