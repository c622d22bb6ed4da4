/**
 * The secrets this CLI run knows, so that everything it prints that came from a server (tool names and results,
 * scopes, error messages) is passed through `Scrub.text` with all of them: the providers' client secrets (inline, or
 * read from `client_secret_file` when it is readable) and their `client_secret_basic` credentials, private keys
 * (inline or from `private_key_file`: the whole text, the lines of a PEM body, the private members of a JWK), client
 * assertions (`client_assertion.token`, or the `client_assertion.file` as it reads now), TLS key passphrases, proxy
 * URLs and their passwords, static service tokens, the values of the MCP URLs' user info and query, custom header
 * values, and every access token a provider has held since the workflow started (told by a mirror).
 *
 * Not known here: a service token returned by a `service_token.function` or an assertion returned by a
 * `client_assertion.function` (they never leave the provider), a secret or assertion file's content written after
 * the workflow was read (rotation), and a token fetched while the workflow was still starting (before the mirrors are
 * registered); the libraries scrub their own error texts with those.
 *
 * @internal
 */
import * as Scrub from "@mcp-auth/service-account/Scrub"
import type * as ServiceAccountConfig from "@mcp-auth/service-account/ServiceAccountConfig"
import * as TokenEndpoint from "@mcp-auth/service-account/TokenEndpoint"
import * as TokenProvider from "@mcp-auth/service-account/TokenProvider"
import type * as WorkflowConfig from "@mcp-auth/workflow/WorkflowConfig"
import * as Redacted from "effect/Redacted"
import * as Fs from "node:fs"

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

/** Credential files are small: a larger one is not read here (the provider refuses it too). */
const maxFileBytes = 64 * 1024

/** A credential file's text, or `undefined` when it cannot be read now (the provider reports that itself). */
const readSmall = (path: string): string | undefined => {
  try {
    return Fs.statSync(path).size <= maxFileBytes ? Fs.readFileSync(path, "utf8") : undefined
  } catch {
    return undefined
  }
}

/** A secret file's value as the provider sends it: one trailing line break dropped. */
const secretText = (text: string): string => text.replace(/\r?\n$/, "")

/** JWK members that hold private key material (RFC 7518 §6). */
const privateJwkMembers = ["d", "p", "q", "dp", "dq", "qi", "k"]

/** A private key in each form it may be quoted: whole, trimmed, each line of a PEM body, a JWK's private members. */
const addPrivateKey = (text: string): void => {
  add(text)
  add(text.trim())
  for (const line of text.split(/\r?\n/)) {
    if (line.length >= 16 && !line.startsWith("-----")) add(line.trim())
  }
  try {
    const jwk: unknown = JSON.parse(text)
    if (typeof jwk === "object" && jwk !== null) {
      for (const member of privateJwkMembers) {
        const value = (jwk as Record<string, unknown>)[member]
        if (typeof value === "string") add(value)
      }
    }
  } catch {
    // a PEM key
  }
}

/** The proxy URL as written, and its password: as written, as URL parsing normalises it, and decoded. */
const addProxy = (url: string): void => {
  add(url)
  const written = /^[a-z][a-z0-9+.-]*:\/\/[^:@/]*:([^@/]*)@/i.exec(url.trim())?.[1]
  let parsed: string | undefined
  try {
    parsed = new URL(url.trim()).password
  } catch {
    // decoding refused it already
  }
  // a secret of its own, however short (unlike values taken from MCP URLs)
  for (const password of [written, parsed]) {
    if (password === undefined) continue
    add(password)
    try {
      add(decodeURIComponent(password))
    } catch {
      // not percent-encoded
    }
  }
}

/** The secrets one provider's configuration holds, in every form they travel. @internal */
export const fromProvider = (provider: ServiceAccountConfig.ServiceAccountConfig): void => {
  const secrets: Array<string> = []
  if (provider.clientSecret !== undefined) secrets.push(Redacted.value(provider.clientSecret))
  if (provider.clientSecretFile !== undefined) {
    const text = readSmall(provider.clientSecretFile)
    if (text !== undefined) secrets.push(secretText(text))
  }
  for (const secret of secrets) {
    add(secret)
    add(Redacted.value(TokenEndpoint.basicCredential(provider.clientId, Redacted.make(secret))))
  }
  if (provider.privateKey !== undefined) addPrivateKey(Redacted.value(provider.privateKey))
  if (provider.privateKeyFile !== undefined) {
    const text = readSmall(provider.privateKeyFile)
    if (text !== undefined) addPrivateKey(text)
  }
  const assertion = provider.clientAssertion
  if (assertion?._tag === "Token") add(Redacted.value(assertion.token))
  if (assertion?._tag === "File") {
    const text = readSmall(assertion.path)
    if (text !== undefined) add(text.trim())
  }
  const passphrase = provider.tlsClientCertificate?.passphrase
  if (passphrase !== undefined) add(Redacted.value(passphrase))
  if (provider.proxyUrl !== undefined) addProxy(Redacted.value(provider.proxyUrl))
  if (provider.serviceToken?._tag === "Static") add(Redacted.value(provider.serviceToken.token))
  // a function's arguments often hold secrets (a vault token) that its errors may repeat
  const kwargs = [
    ...(provider.serviceToken?._tag === "Function" ? Object.values(provider.serviceToken.kwargs) : []),
    ...(assertion?._tag === "Function" ? Object.values(assertion.kwargs) : [])
  ]
  for (const value of kwargs) if (typeof value === "string") add(value)
}

/** The secrets written in a workflow file (or its environment). @internal */
export const fromConfig = (config: WorkflowConfig.WorkflowConfig): void => {
  for (const provider of config.providers.values()) fromProvider(provider)
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
