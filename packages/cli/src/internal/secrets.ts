/**
 * The secrets this CLI run knows, so that everything it prints that came from a server (tool names and results,
 * scopes, error messages) is passed through `Scrub.text` with all of them: the providers' client secrets and
 * `client_secret_basic` credentials, static service tokens, the values of the MCP URLs' user info and query, custom
 * header values, and every access token a provider has held since the workflow started (told by a mirror).
 *
 * Not known here: a service token returned by a `service_token.function` (it never leaves the provider's headers
 * layer), and a token fetched while the workflow was still starting (before the mirrors are registered); the
 * libraries scrub their own error texts with those.
 *
 * @internal
 */
import * as Scrub from "@mcp-auth/service-account/Scrub"
import * as TokenEndpoint from "@mcp-auth/service-account/TokenEndpoint"
import * as TokenProvider from "@mcp-auth/service-account/TokenProvider"
import type * as WorkflowConfig from "@mcp-auth/workflow/WorkflowConfig"
import * as Redacted from "effect/Redacted"

const known = new Set<string>()
// the providers hold their mirrors weakly: kept alive here for the whole run
const mirrors: Array<TokenProvider.Mirror> = []

/** Shorter values taken from URLs and headers would redact ordinary words. */
const minDerivedLength = 6

const addDerived = (value: string) => {
  if (value.length < minDerivedLength) return
  known.add(value)
  try {
    add(decodeURIComponent(value))
  } catch {
    // not percent-encoded text: the raw form is known
  }
}

/** @internal */
export const add = (secret: string | undefined): void => {
  if (secret !== undefined && secret.length > 0) known.add(secret)
}

/** @internal */
export const all = (): ReadonlyArray<string> => [...known]

/** Server-provided text, one line, safe to print. @internal */
export const line = (value: string, max?: number): string => Scrub.text(value, known, { max })

/** Server-provided text (tool output, error reports), line breaks kept, safe to print. @internal */
export const lines = (value: string, max: number): string => Scrub.text(value, known, { multiline: true, max })

/** The secrets written in a workflow file (or its environment). @internal */
export const fromConfig = (config: WorkflowConfig.WorkflowConfig): void => {
  for (const provider of config.providers.values()) {
    add(Redacted.value(provider.clientSecret))
    add(Redacted.value(TokenEndpoint.basicCredential(provider.clientId, provider.clientSecret)))
    if (provider.serviceToken?._tag === "Static") add(Redacted.value(provider.serviceToken.token))
  }
  for (const group of config.groups.values()) {
    addDerived(group.url.username)
    addDerived(group.url.password)
    for (const [, value] of group.url.searchParams) addDerived(value)
    addDerived(group.url.hash.slice(1))
    for (const value of Object.values(group.customHeaders)) addDerived(value)
  }
}

/** Remembers every access token the providers hold from now on (and the current one). @internal */
export const watch = (providers: Iterable<TokenProvider.TokenProvider>): void => {
  for (const provider of providers) {
    const mirror: TokenProvider.Mirror = {
      hits: 0,
      update: (token) => {
        if (token !== undefined) add(Redacted.value(token.token))
      }
    }
    if (TokenProvider.mirror(provider, mirror) !== undefined) mirrors.push(mirror)
  }
}
