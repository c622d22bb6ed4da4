/**
 * How the CLI reports a failure: one clear line (a list for configuration problems), a hint taken from the
 * troubleshooting guide, and a distinct exit code per error family.
 *
 * @since 0.1.0
 */
import { isMcpClientError } from "@mcp-auth/client/McpClientError"
import * as Scrub from "@mcp-auth/service-account/Scrub"
import { isServiceAccountError } from "@mcp-auth/service-account/ServiceAccountError"
import { absurd } from "effect/Function"

/**
 * Exit codes, one per error family.
 *
 * @since 0.1.0
 * @category Constants
 */
export const ExitCode = {
  ok: 0,
  unexpected: 1,
  usage: 2,
  configuration: 3,
  invalidCredentials: 4,
  rateLimited: 5,
  tls: 6,
  network: 7,
  tokenEndpoint: 8,
  serviceToken: 9,
  mcpServer: 10,
  toolError: 11
} as const

/**
 * @since 0.1.0
 * @category Models
 */
export interface Report {
  readonly code: number
  readonly message: string
  readonly hint?: string | undefined
}

/**
 * A failure the CLI itself detects (bad `--args`, unknown group or provider).
 *
 * @since 0.1.0
 * @category Errors
 */
export class UsageError extends Error {
  readonly _tag = "UsageError"
  constructor(message: string, readonly hint?: string) {
    super(message)
  }
}

/**
 * A tool answered with `isError: true`.
 *
 * @since 0.1.0
 * @category Errors
 */
export class ToolError extends Error {
  readonly _tag = "ToolError"
}

/**
 * `mcp-auth doctor` found a problem: the checks are printed already; `code` is the exit code of the first failed check.
 *
 * @since 0.3.0
 * @category Errors
 */
export class DoctorError extends Error {
  readonly _tag = "DoctorError"
  constructor(message: string, readonly code: number) {
    super(message)
  }
}

const ciHint =
  "Authentication works locally but fails in CI/CD? Verify all environment variables are set in your CI/CD platform."

/**
 * The most characters of a report's message (a configuration error lists every problem, one per line).
 *
 * @since 0.2.0
 * @category Constants
 */
export const maxMessageChars = 20_000

/**
 * How the CLI reports `error`. Messages carry what servers said: the message and the hint are scrubbed of every one
 * of `secrets` (the client secrets, service tokens and tokens the CLI knows, in each form they travel), of control
 * characters and escape sequences (line breaks kept), and of credentials in URLs (user info, query, fragment).
 *
 * @since 0.1.0
 * @category Combinators
 */
export const report = (error: unknown, secrets: Iterable<string> = []): Report => {
  const known = [...secrets]
  const { code, hint, message } = classify(error)
  return {
    code,
    message: Scrub.text(redactUrls(message), known, { multiline: true, max: maxMessageChars }),
    hint: hint === undefined ? undefined : Scrub.text(redactUrls(hint), known, { multiline: true, max: 2_000 })
  }
}

/**
 * Every URL in a text that carries credentials (user info, a query, a fragment) shown as `Scrub.url` prints it; other
 * URLs as written.
 */
const redactUrls = (text: string): string =>
  text.replace(/\b[a-z][a-z0-9+.-]*:\/\/[^\s"'<>]+/gi, (found) => {
    const [, url, trailing] = /^(.*?)([).,:;\]}]*)$/.exec(found) ?? [found, found, ""]
    try {
      const parsed = new URL(url!)
      return parsed.username || parsed.password || parsed.search || parsed.hash ? Scrub.url(parsed) + trailing : found
    } catch {
      return found
    }
  })

const classify = (error: unknown): Report => {
  if (error instanceof UsageError) return { code: ExitCode.usage, message: error.message, hint: error.hint }
  if (error instanceof ToolError) return { code: ExitCode.toolError, message: error.message }
  if (error instanceof DoctorError) return { code: error.code, message: error.message }
  if (isServiceAccountError(error)) {
    switch (error._tag) {
      case "ConfigurationError": {
        const text = error.issues.map((i) => i.toString()).join("\n")
        const hint = /environment variable/.test(text)
          ? ciHint
          : /client_id is required/.test(text)
          ? "Ensure client_id is set in your configuration or the corresponding environment variable is defined."
          : /(?:_file|\.file) \(/.test(text)
          ? "Check the files named above: each must exist, be readable by this process and hold what its key expects."
          : "Fix the keys listed above; `mcp-auth info components` lists every option."
        return { code: ExitCode.configuration, message: error.message, hint }
      }
      case "InvalidCredentialsError":
        return {
          code: ExitCode.invalidCredentials,
          message: error.message,
          hint:
            "Verify your client ID and client secret are correct, the token endpoint URL is reachable, and your service account has the necessary permissions. " +
            "With private_key_jwt, client_assertion or a TLS client certificate: check that the server has the public key (and key_id), trusts the assertion's issuer, or has the certificate registered."
        }
      case "RateLimitedError":
        return { code: ExitCode.rateLimited, message: error.message, hint: "Wait before retrying." }
      case "TlsError":
        return {
          code: ExitCode.tls,
          message: error.message,
          hint:
            "The server may use certificates from an internal Certificate Authority: set ca_file in the provider config, or pass --ca-file."
        }
      case "NetworkError":
      case "TokenTimeoutError":
        return {
          code: ExitCode.network,
          message: error.message,
          hint: "Check that the token endpoint URL is reachable from here."
        }
      case "ClientCredentialError":
        // a key, certificate, secret or assertion the provider could not read or use: fixed in the files, not the server
        return {
          code: ExitCode.configuration,
          message: error.message,
          hint: error.field.startsWith("client_assertion")
            ? "Check client_assertion: the file (or token, or function) must give the workload's JWT, readable by " +
              "this process."
            : "Check the file named above: it must exist, be readable by this process and hold what the field " +
              "expects (`mcp-auth info components` describes every field); `mcp-auth validate` checks them all."
        }
      case "TokenEndpointError":
      case "MalformedResponseError":
        return { code: ExitCode.tokenEndpoint, message: error.message }
      case "DiscoveryError":
        // no credentials were sent: the metadata was unreachable, or it named something the configuration does not pin
        return error.reason === "unreachable"
          ? {
            code: ExitCode.network,
            message: error.message,
            hint: "Check that the metadata URL is reachable from here."
          }
          : error.reason === "tls"
          ? {
            code: ExitCode.tls,
            message: error.message,
            hint: "The server may use certificates from an internal Certificate Authority: set ca_file in the " +
              "provider config, or pass --ca-file."
          }
          : {
            code: ExitCode.configuration,
            message: error.message,
            hint: error.reason === "issuer_not_trusted"
              ? "Add the authorization server to allowed_issuers (or set issuer) only if you trust it with the " +
                "credentials."
              : "Set token_url to skip discovery, or fix issuer / allowed_issuers / the server's url as the message says."
          }
      case "ServiceTokenError":
        return {
          code: ExitCode.serviceToken,
          message: error.message,
          hint: "Check service_token in the provider config and the function or variables behind it."
        }
      default:
        // a new error tag fails to compile here until it has a report
        return absurd(error)
    }
  }
  if (isMcpClientError(error)) {
    return {
      code: ExitCode.mcpServer,
      message: error.message,
      hint: error._tag !== "McpRequestError"
        ? undefined
        : error.reason === "too_large"
        ? "The MCP server sent more than max_response_bytes: raise it in the function group if that is expected."
        : error.reason === "invalid_request"
        ? undefined
        : "Check the function group's server.url and that the MCP server is up."
    }
  }
  const text = error instanceof Error ? error.message : String(error)
  return { code: ExitCode.unexpected, message: `Unexpected error: ${text}`, hint: "Rerun with --verbose for details." }
}
