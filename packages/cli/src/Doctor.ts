/**
 * `mcp-auth doctor`: the troubleshooting guide as checks. This module holds what the checks are, how they depend on
 * each other, how a run is printed (lines or JSON) and its exit code; the checks themselves live in
 * `internal/doctor/`.
 *
 * Statuses: `✓` passed, `✗` failed (with the fix in one line), `–` skipped because a check it depends on failed
 * (or was skipped), `·` not applicable (e.g. discovery without `issuer`, no service token configured, TLS through a
 * proxy, no server's `Date` to compare the clock with). The exit code is 0 when no check failed; otherwise the code
 * of the first failed check's failure family, as the other commands exit for the same error ({@link failureCode}):
 * 1 a bug in a check, 3 configuration or environment, 4–8 the token request's error, 6 TLS, 7 network, 9 service
 * token, 10 MCP server.
 *
 * @since 0.3.0
 */
import { ExitCode } from "./Errors.js"

/**
 * The checks, in the order they run.
 *
 * @since 0.3.0
 * @category Constants
 */
export const checks = [
  "config",
  "dns_tcp",
  "tls",
  "discovery",
  "token_request",
  "token_claims",
  "clock_skew",
  "service_token",
  "mcp_initialize"
] as const

/**
 * @since 0.3.0
 * @category Models
 */
export type CheckName = typeof checks[number]

/**
 * How each check is printed.
 *
 * @since 0.3.0
 * @category Constants
 */
export const labels: Readonly<Record<CheckName, string>> = {
  config: "config and environment",
  dns_tcp: "DNS and TCP",
  tls: "TLS",
  discovery: "discovery",
  token_request: "token request",
  token_claims: "token claims",
  clock_skew: "clock skew",
  service_token: "service token",
  mcp_initialize: "MCP initialize"
}

/**
 * What each check needs to have passed (or to be not applicable): when one of these failed or was skipped, the check
 * is skipped. The MCP `initialize` sends the token and the service token, so it comes after both.
 *
 * @since 0.3.0
 * @category Constants
 */
export const dependencies: Readonly<Record<CheckName, ReadonlyArray<CheckName>>> = {
  config: [],
  dns_tcp: ["config"],
  tls: ["dns_tcp"],
  discovery: ["config"],
  token_request: ["dns_tcp", "tls", "discovery"],
  token_claims: ["token_request"],
  // after a TLS failure it still reads the MCP server's Date, and the token endpoint's when the certificate's only
  // fault is its dates (a wrong local clock): an unverified HEAD, nothing else (see the check)
  clock_skew: ["dns_tcp"],
  service_token: ["config"],
  // the claims are read without verification, a guess: the server's answer is the definitive check, so it runs anyway
  mcp_initialize: ["token_request", "service_token"]
}

/**
 * @since 0.3.0
 * @category Models
 */
export type Status = "passed" | "failed" | "skipped" | "not_applicable"

/**
 * What a check found. `code` is the exit code of a failure's family (see {@link failureCode}).
 *
 * @since 0.3.0
 * @category Models
 */
export type Outcome =
  | { readonly status: "passed" | "not_applicable"; readonly detail: string }
  | { readonly status: "failed"; readonly detail: string; readonly fix: string; readonly code: number }

/**
 * One printed check. `group` and `provider` are both `null` when the workflow does not load (the checks then apply to
 * no provider); `group` is `null` for a provider no function group uses. `ms` is `null` for a skipped check.
 *
 * @since 0.3.0
 * @category Models
 */
export interface CheckResult {
  readonly group: string | null
  readonly provider: string | null
  readonly name: CheckName
  readonly status: Status
  readonly ms: number | null
  readonly detail: string
  readonly fix: string | null
  /** Not printed: the exit code of a failure. */
  readonly code?: number | undefined
}

/**
 * Whether a check runs, given the statuses of those before it: `undefined` if it runs, else the check it is skipped
 * for.
 *
 * @since 0.3.0
 * @category Combinators
 */
export const blockedBy = (
  name: CheckName,
  statuses: ReadonlyMap<CheckName, Status>
): CheckName | undefined =>
  dependencies[name].find((dependency) => {
    const status = statuses.get(dependency)
    return status === "failed" || status === "skipped"
  })

/**
 * The exit code of a run: 0 when no check failed, else the code of the first failure.
 *
 * @since 0.3.0
 * @category Combinators
 */
export const exitCode = (results: ReadonlyArray<CheckResult>): number =>
  results.find((r) => r.status === "failed")?.code ?? ExitCode.ok

/**
 * The exit code of each check's own failures: configuration (3) for the configuration and environment (the proxy
 * variables included), discovery (the configuration disagrees with the metadata), the token's claims (resource, scopes,
 * token_cache_buffer_seconds, a clock) and the clock skew; network (7) for DNS and TCP; TLS (6); service token (9); MCP
 * server (10). A failure of another family exits with that family's code, as the other commands exit for the same
 * error: discovery with 7 when the issuer does not answer; the token request with its error's code (3–8, as
 * `mcp-auth token` exits); the service token with 3 when its configuration is the problem; the MCP `initialize` with 6
 * when the MCP server's certificate is not trusted. A bug in a check (an unexpected error) exits with 1.
 *
 * @since 0.3.0
 * @category Constants
 */
export const failureCode = {
  config: ExitCode.configuration,
  dns_tcp: ExitCode.network,
  tls: ExitCode.tls,
  discovery: ExitCode.configuration,
  token_claims: ExitCode.configuration,
  clock_skew: ExitCode.configuration,
  service_token: ExitCode.serviceToken,
  mcp_initialize: ExitCode.mcpServer
} as const

const symbols: Readonly<Record<Status, string>> = { passed: "✓", failed: "✗", skipped: "–", not_applicable: "·" }

/**
 * The legend printed under the checks.
 *
 * @since 0.3.0
 * @category Constants
 */
export const legend = "✓ passed   ✗ failed   – skipped (a check it depends on failed)   · not applicable"

const labelWidth = Math.max(...Object.values(labels).map((l) => l.length))

/**
 * The checks as lines: per group, one line per check (symbol, name, time, detail), the fix under a failure, then a
 * summary and the legend. Every text is expected to be scrubbed already.
 *
 * @since 0.3.0
 * @category Combinators
 */
export const render = (source: string, results: ReadonlyArray<CheckResult>): string => {
  const out: Array<string> = [`mcp-auth doctor ${source}`]
  let heading: string | undefined
  for (const r of results) {
    const title = r.provider === null
      ? "workflow"
      : r.group === null
      ? `provider ${r.provider} (no function group uses it)`
      : `group ${r.group} → provider ${r.provider}`
    if (title !== heading) {
      out.push("", title)
      heading = title
    }
    const time = r.ms === null ? "" : `${r.ms} ms`
    const [first, ...rest] = r.detail.split("\n")
    out.push(`  ${symbols[r.status]} ${labels[r.name].padEnd(labelWidth)}  ${time.padStart(8)}  ${first}`.trimEnd())
    for (const line of rest) out.push(`      ${line}`)
    if (r.fix !== null) out.push(`      fix: ${r.fix}`)
  }
  const count = (status: Status) => results.filter((r) => r.status === status).length
  const failed = count("failed")
  out.push(
    "",
    `${failed === 0 ? "✓" : "✗"} ${failed} failed, ${count("passed")} passed, ${count("skipped")} skipped, ${
      count("not_applicable")
    } not applicable`,
    legend
  )
  return out.join("\n")
}

/**
 * The checks as JSON (`--json`): an array of `{ group, provider, name, status, ms, detail, fix }`.
 *
 * @since 0.3.0
 * @category Combinators
 */
export const toJson = (results: ReadonlyArray<CheckResult>): string =>
  JSON.stringify(
    results.map(({ detail, fix, group, ms, name, provider, status }) => ({
      group,
      provider,
      name,
      status,
      ms,
      detail,
      fix
    })),
    null,
    2
  )
