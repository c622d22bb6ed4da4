/**
 * Client authentication of a token request: what each `auth_method` (and the `jwt_bearer` grant) adds to the form
 * and headers, with every file read again for each request (rotation on disk needs no restart) and a fresh signed
 * assertion per request. Key material never leaves this module except inside a signature.
 *
 * @internal
 */
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Redacted from "effect/Redacted"
import type * as Jose from "jose"
import * as Crypto from "node:crypto"
import * as Fs from "node:fs/promises"
import * as Scrub from "../Scrub.js"
import type {
  ClientAssertionFunction,
  Resolved,
  ServiceAccountConfig,
  SigningAlgorithm
} from "../ServiceAccountConfig.js"
import { ClientCredentialError } from "../ServiceAccountError.js"
import type { FunctionLoader } from "../ServiceToken.js"
import { endpointOf, redactJwts } from "./text.js"

/** `urn:ietf:params:oauth:client-assertion-type:jwt-bearer` (RFC 7523 §2.2). @internal */
export const ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"

/** `urn:ietf:params:oauth:grant-type:jwt-bearer` (RFC 7523 §2.1). @internal */
export const JWT_BEARER_GRANT = "urn:ietf:params:oauth:grant-type:jwt-bearer"

/** The largest credential file read (secret, key, certificate, assertion): 64 KiB. @internal */
export const MAX_FILE_BYTES = 64 * 1024

/** The longest assertion accepted from a file, a variable or a function: 16 KiB. @internal */
export const MAX_ASSERTION = 16 * 1024

/**
 * `application/x-www-form-urlencoded` encoding of one value, as RFC 6749 §2.3.1 requires for the client id and secret
 * before they are joined and base64-encoded.
 *
 * @internal
 */
export const formEncode = (value: string): string => new URLSearchParams([["", value]]).toString().slice(1)

/**
 * The `client_secret_basic` credential: `base64(formEncode(id) ":" formEncode(secret))`.
 *
 * @internal
 */
export const basicCredential = (clientId: string, clientSecret: Redacted.Redacted<string>): Redacted.Redacted<string> =>
  Redacted.make(btoa(`${formEncode(clientId)}:${formEncode(Redacted.value(clientSecret))}`))

// ---------------------------------------------------------------------------------------------------------------------
// Keys
// ---------------------------------------------------------------------------------------------------------------------

const errorCode = (cause: unknown): string =>
  typeof cause === "object" && cause !== null && typeof (cause as { code?: unknown }).code === "string"
    ? (cause as { code: string }).code
    : "parse error"

/**
 * A private key from a PEM (PKCS#8, PKCS#1, SEC1) or a JWK as JSON, with the JWK's `kid`; or why not, in words that
 * never quote the text.
 *
 * @internal
 */
export const parsePrivateKey = (
  text: string
): Either.Either<{ readonly key: Crypto.KeyObject; readonly kid?: string | undefined }, string> => {
  const trimmed = text.trim()
  if (trimmed.startsWith("{")) {
    let jwk: unknown
    try {
      jwk = JSON.parse(trimmed)
    } catch {
      return Either.left("is neither a PEM private key nor valid JSON for a JWK")
    }
    if (typeof jwk !== "object" || jwk === null || Array.isArray(jwk)) return Either.left("is not a JWK object")
    const record = jwk as Record<string, unknown>
    if (typeof record.d !== "string") return Either.left("is a JWK without its private part (d): give the private key")
    try {
      const key = Crypto.createPrivateKey({ key: record as Crypto.JsonWebKey, format: "jwk" })
      return Either.right({ key, kid: typeof record.kid === "string" ? record.kid : undefined })
    } catch (cause) {
      return Either.left(`is not a usable JWK private key (${errorCode(cause)})`)
    }
  }
  if (!trimmed.includes("-----BEGIN")) {
    return Either.left("holds neither a PEM private key (-----BEGIN PRIVATE KEY-----) nor a JWK (JSON)")
  }
  if (trimmed.includes("-----BEGIN ENCRYPTED PRIVATE KEY-----") || trimmed.includes("Proc-Type: 4,ENCRYPTED")) {
    return Either.left("is an encrypted PEM key: give the key unencrypted (keep it in a secret store instead)")
  }
  try {
    return Either.right({ key: Crypto.createPrivateKey(trimmed) })
  } catch (cause) {
    return Either.left(`is not a valid PEM private key (${errorCode(cause)})`)
  }
}

/**
 * The algorithm to sign with: `wanted`, if the key can make it, else the key's default (RS256 for RSA, PS256 for
 * RSA-PSS, ES256 for P-256, EdDSA for Ed25519); or why the key cannot be used.
 *
 * @internal
 */
export const algorithmFor = (
  key: Crypto.KeyObject,
  wanted: SigningAlgorithm | undefined
): Either.Either<SigningAlgorithm, string> => {
  const type = key.asymmetricKeyType
  const details = key.asymmetricKeyDetails ?? {}
  const allowed: ReadonlyArray<SigningAlgorithm> = type === "rsa"
    ? ["RS256", "PS256"]
    : type === "ec" && details.namedCurve === "prime256v1"
    ? ["ES256"]
    : type === "ed25519"
    ? ["EdDSA"]
    : []
  if (type === "rsa-pss") {
    return Either.left("is an RSA-PSS key (id-RSASSA-PSS): give a plain RSA key, which signs PS256 too")
  }
  if (allowed.length === 0) {
    const what = type === "ec" ? `an EC key on ${details.namedCurve ?? "an unknown curve"}` : `a ${type ?? "?"} key`
    return Either.left(`is ${what}: use an RSA (RS256, PS256), P-256 (ES256) or Ed25519 (EdDSA) key`)
  }
  if (type === "rsa" && (details.modulusLength ?? 0) < 2048) {
    return Either.left(`is a ${details.modulusLength}-bit RSA key: use at least 2048 bits`)
  }
  if (wanted === undefined) return Either.right(allowed[0]!)
  return allowed.includes(wanted)
    ? Either.right(wanted)
    : Either.left(`cannot sign ${wanted}: it is ${type === "ec" ? "a P-256" : `an ${type}`} key (use ${allowed[0]})`)
}

/** The SHA-256 thumbprint (base64url of the DER) of the first certificate in a PEM, checked against `key`. */
const thumbprint = (pem: string, key: Crypto.KeyObject | undefined): Either.Either<string, string> => {
  let certificate: Crypto.X509Certificate
  try {
    certificate = new Crypto.X509Certificate(pem)
  } catch (cause) {
    return Either.left(`holds no PEM certificate (${errorCode(cause)})`)
  }
  if (key !== undefined && !certificate.checkPrivateKey(key)) {
    return Either.left("is not the certificate of the private key")
  }
  return Either.right(Crypto.createHash("sha256").update(certificate.raw).digest("base64url"))
}

// ---------------------------------------------------------------------------------------------------------------------
// Files
// ---------------------------------------------------------------------------------------------------------------------

/**
 * A small credential file, as text: at most {@link MAX_FILE_BYTES}. Fails with a `ClientCredentialError` naming the
 * field and the path, never the contents.
 *
 * @internal
 */
export const readFile = (
  config: ServiceAccountConfig,
  field: string,
  path: string
): Effect.Effect<string, ClientCredentialError> =>
  Effect.tryPromise({
    try: async () => {
      const handle = await Fs.open(path, "r")
      try {
        const buffer = Buffer.alloc(MAX_FILE_BYTES + 1)
        let size = 0
        for (;;) {
          const { bytesRead } = await handle.read(buffer, size, buffer.length - size)
          if (bytesRead === 0) break
          size += bytesRead
          if (size > MAX_FILE_BYTES) break
        }
        return { size, text: buffer.subarray(0, Math.min(size, MAX_FILE_BYTES)).toString("utf8") }
      } finally {
        await handle.close()
      }
    },
    catch: (cause) => credentialError(config, field, path, `cannot be read (${errorCode(cause)})`)
  }).pipe(
    Effect.filterOrFail(
      ({ size }) => size <= MAX_FILE_BYTES,
      () => credentialError(config, field, path, `is larger than ${MAX_FILE_BYTES} bytes: is it the right file?`)
    ),
    Effect.map(({ text }) => text)
  )

const credentialError = (config: ServiceAccountConfig, field: string, file: string | undefined, reason: string) =>
  new ClientCredentialError({
    tokenUrl: endpointOf(config),
    field,
    ...(file === undefined ? {} : { file }),
    reason
  })

/** A secret file's value: the text without one trailing newline (what `echo` or `kubectl create secret` leave). */
const secretText = (text: string): string => text.replace(/\r?\n$/, "")

// ---------------------------------------------------------------------------------------------------------------------
// Assertions
// ---------------------------------------------------------------------------------------------------------------------

const JWT_SHAPE = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*$/

/**
 * What is wrong with an assertion, in words that never quote it; `undefined` when it is a compact JWS.
 *
 * @internal
 */
export const assertionProblem = (jwt: string): string | undefined =>
  jwt.length === 0
    ? "is empty"
    : jwt.length > MAX_ASSERTION
    ? `is ${jwt.length} characters long, more than the ${MAX_ASSERTION} accepted`
    : JWT_SHAPE.test(jwt)
    ? undefined
    : "is not a JWT (three base64url parts separated by dots)"

/** The audience of a signed assertion. */
const audienceOf = (config: Resolved): string =>
  config.assertionAudience === "issuer" && config.issuer !== undefined ? config.issuer : config.tokenUrl.href

/** `jose`, loaded on first use: most processes never sign, and the CLI starts faster without it. */
let joseModule: Promise<typeof Jose> | undefined

/**
 * Signs an RFC 7523 assertion: iss = sub = client id, aud, a fresh jti, iat, exp. A key jose refuses is a
 * `ClientCredentialError` naming `field` (never a defect).
 */
const sign = (
  config: Resolved,
  field: string,
  key: Crypto.KeyObject | Uint8Array,
  header: Jose.JWTHeaderParameters,
  nowMillis: number
): Effect.Effect<string, ClientCredentialError> =>
  Effect.tryPromise({
    catch: (cause) =>
      credentialError(
        config,
        field,
        field === "private_key_file"
          ? config.privateKeyFile
          : field === "client_secret_file"
          ? config.clientSecretFile
          : undefined,
        `cannot sign ${header.alg} with this key (${cause instanceof Error ? cause.name : "error"})`
      ),
    try: async () => {
      const jose = await (joseModule ??= import("jose"))
      const now = Math.floor(nowMillis / 1000)
      return new jose.SignJWT({})
        .setProtectedHeader(header)
        .setIssuer(config.clientId)
        .setSubject(config.clientId)
        .setAudience(audienceOf(config))
        .setJti(Crypto.randomUUID())
        .setIssuedAt(now)
        .setExpirationTime(now + config.assertionLifetimeSeconds)
        .sign(key)
    }
  })

/**
 * What was read to authenticate one request.
 *
 * @internal
 */
export interface Material {
  /** Form parameters (grant excluded). */
  readonly params: Array<[string, string]>
  /** The `Authorization` header value, for client_secret_basic. */
  readonly authorization?: string | undefined
  /** Every secret this request carries, for scrubbing. */
  readonly secrets: Array<string>
  /** The contents of the files read, to tell whether a re-read found something new. */
  readonly files: Array<string>
}

/** The client secret: the configured value, or the file's. */
const clientSecret = (
  config: ServiceAccountConfig,
  files: Array<string>
): Effect.Effect<Redacted.Redacted<string>, ClientCredentialError> => {
  if (config.clientSecret !== undefined) return Effect.succeed(config.clientSecret)
  const path = config.clientSecretFile
  if (path === undefined) {
    return Effect.fail(credentialError(config, "client_secret", undefined, "is not set"))
  }
  return readFile(config, "client_secret_file", path).pipe(
    Effect.flatMap((text) => {
      files.push(text)
      const secret = secretText(text)
      return secret.length === 0
        ? Effect.fail(credentialError(config, "client_secret_file", path, "is empty"))
        : Effect.succeed(Redacted.make(secret))
    })
  )
}

/** The private key: the configured text or the file's, parsed, with its algorithm and `kid`. */
const signingKey = (
  config: ServiceAccountConfig,
  files: Array<string>
): Effect.Effect<
  { readonly key: Crypto.KeyObject; readonly header: Jose.JWTHeaderParameters; readonly field: string },
  ClientCredentialError
> =>
  Effect.gen(function*() {
    const field = config.privateKey !== undefined ? "private_key" : "private_key_file"
    const file = config.privateKey !== undefined ? undefined : config.privateKeyFile
    let text: string
    if (config.privateKey !== undefined) {
      text = Redacted.value(config.privateKey)
    } else {
      text = yield* readFile(config, field, file!)
      files.push(text)
    }
    const parsed = parsePrivateKey(text)
    if (Either.isLeft(parsed)) return yield* Effect.fail(credentialError(config, field, file, parsed.left))
    const algorithm = algorithmFor(parsed.right.key, config.signingAlgorithm)
    if (Either.isLeft(algorithm)) return yield* Effect.fail(credentialError(config, field, file, algorithm.left))
    const header: Jose.JWTHeaderParameters = { alg: algorithm.right, typ: "JWT" }
    const kid = config.keyId ?? parsed.right.kid
    if (kid !== undefined) header.kid = kid
    if (config.certificateFile !== undefined) {
      const pem = yield* readFile(config, "certificate_file", config.certificateFile)
      const x5t = thumbprint(pem, parsed.right.key)
      if (Either.isLeft(x5t)) {
        return yield* Effect.fail(credentialError(config, "certificate_file", config.certificateFile, x5t.left))
      }
      header["x5t#S256"] = x5t.right
    }
    return { key: parsed.right.key, header, field }
  })

/** The workload's own JWT: from its file, its variable or its function. */
const externalAssertion = (
  config: ServiceAccountConfig,
  files: Array<string>,
  loadFunction: FunctionLoader | undefined
): Effect.Effect<string, ClientCredentialError> => {
  const source = config.clientAssertion!
  const checked = (field: string, file: string | undefined) => (jwt: string) => {
    const problem = assertionProblem(jwt)
    return problem === undefined ? Effect.succeed(jwt) : Effect.fail(credentialError(config, field, file, problem))
  }
  switch (source._tag) {
    case "File":
      return readFile(config, "client_assertion.file", source.path).pipe(
        Effect.tap((text) => files.push(text)),
        Effect.map((text) => text.trim()),
        Effect.flatMap(checked("client_assertion.file", source.path))
      )
    case "Token":
      return checked("client_assertion.token", undefined)(Redacted.value(source.token).trim())
    case "Function":
      // a function is called only for a token request, whose endpoint is known (`check` never calls it)
      return (config.tokenUrl !== undefined
        ? callAssertionFunction({ ...config, tokenUrl: config.tokenUrl }, source, loadFunction)
        : Effect.fail(credentialError(config, "client_assertion.function", undefined, "needs the token endpoint")))
        .pipe(Effect.flatMap(checked("client_assertion.function", undefined)))
  }
}

/** What an assertion function's error must not repeat: the configuration's secrets and its string kwargs. */
const functionSecrets = (
  config: ServiceAccountConfig,
  source: { readonly kwargs: Readonly<Record<string, unknown>> }
): Array<string> => [
  ...connectionSecrets(config),
  ...Object.values(source.kwargs).filter((v): v is string => typeof v === "string" && v.length >= 8)
]

const callAssertionFunction = (
  config: Resolved,
  source: Extract<NonNullable<ServiceAccountConfig["clientAssertion"]>, { _tag: "Function" }>,
  loadFunction: FunctionLoader | undefined
): Effect.Effect<string, ClientCredentialError> => {
  const field = "client_assertion.function"
  const fail = (reason: string) => credentialError(config, field, undefined, reason)
  const load: Effect.Effect<ClientAssertionFunction, ClientCredentialError> = typeof source.function === "function"
    ? Effect.succeed(source.function)
    : loadFunction === undefined
    ? Effect.fail(fail(`${JSON.stringify(source.function)} cannot be loaded here: pass a function, or a loader`))
    : Effect.mapBoth(loadFunction(source.function), {
      onFailure: (error) => fail(`could not be loaded: ${error.message}`),
      onSuccess: (fn) => fn as unknown as ClientAssertionFunction
    })
  const timeout = Duration.seconds(source.timeoutSeconds)
  return load.pipe(
    Effect.flatMap((fn) =>
      Effect.tryPromise({
        try: async () => fn(source.kwargs, { tokenUrl: config.tokenUrl, audience: audienceOf(config) }),
        catch: (cause) =>
          fail(`threw ${
            cause instanceof Error
              ? `${cause.name}: ${Scrub.text(redactJwts(cause.message), functionSecrets(config, source), { max: 200 })}`
              : "a non-Error value"
          }`)
      })
    ),
    Effect.timeoutFail({ duration: timeout, onTimeout: () => fail(`did not return within ${source.timeoutSeconds}s`) }),
    Effect.flatMap((result) =>
      typeof result === "string"
        ? Effect.succeed(result.trim())
        : Redacted.isRedacted(result) && typeof Redacted.value(result) === "string"
        ? Effect.succeed(Redacted.value(result).trim())
        : Effect.fail(fail("returned no string: return the JWT"))
    )
  )
}

/**
 * Authenticates one token request: reads what `config` names (files again each time), signs a fresh assertion where
 * one is signed, and says what to add to the request. `nowMillis` is the Effect clock's time (the assertion's `iat`).
 *
 * @internal
 */
export const authenticate = (
  config: Resolved,
  nowMillis: number,
  loadFunction?: FunctionLoader | undefined
): Effect.Effect<Material, ClientCredentialError> =>
  Effect.gen(function*() {
    const files: Array<string> = []
    const params: Array<[string, string]> = []
    const secrets: Array<string> = []
    if (config.grantType === "jwt_bearer") {
      const assertion = config.clientAssertion !== undefined
        ? yield* externalAssertion(config, files, loadFunction)
        : yield* Effect.flatMap(signingKey(config, files), ({ field, header, key }) =>
          sign(config, field, key, header, nowMillis))
      secrets.push(assertion)
      params.push(["assertion", assertion])
      return { params, secrets, files }
    }
    switch (config.authMethod) {
      case "client_secret_basic": {
        const secret = yield* clientSecret(config, files)
        const basic = Redacted.value(basicCredential(config.clientId, secret))
        secrets.push(Redacted.value(secret), basic)
        return { params, authorization: `Basic ${basic}`, secrets, files }
      }
      case "client_secret_post": {
        const secret = yield* clientSecret(config, files)
        secrets.push(Redacted.value(secret))
        params.push(["client_id", config.clientId], ["client_secret", Redacted.value(secret)])
        return { params, secrets, files }
      }
      case "client_secret_jwt": {
        const secret = yield* clientSecret(config, files)
        const assertion = yield* sign(
          config,
          config.clientSecret !== undefined ? "client_secret" : "client_secret_file",
          new TextEncoder().encode(Redacted.value(secret)),
          { alg: "HS256", typ: "JWT" },
          nowMillis
        )
        secrets.push(Redacted.value(secret), assertion)
        params.push(["client_id", config.clientId], ["client_assertion_type", ASSERTION_TYPE], [
          "client_assertion",
          assertion
        ])
        return { params, secrets, files }
      }
      case "private_key_jwt": {
        const assertion = config.clientAssertion !== undefined
          ? yield* externalAssertion(config, files, loadFunction)
          : yield* Effect.flatMap(signingKey(config, files), ({ field, header, key }) =>
            sign(config, field, key, header, nowMillis))
        secrets.push(assertion)
        params.push(["client_id", config.clientId], ["client_assertion_type", ASSERTION_TYPE], [
          "client_assertion",
          assertion
        ])
        return { params, secrets, files }
      }
      case "tls_client_auth":
      case "self_signed_tls_client_auth":
      case "none":
        // the certificate is presented by the connection (see TokenHttpClient)
        params.push(["client_id", config.clientId])
        return { params, secrets, files }
    }
  })

/**
 * Whether two authentications read the same file contents (a rotated file reads differently).
 *
 * @internal
 */
export const sameFiles = (a: Material, b: Material): boolean =>
  a.files.length === b.files.length && a.files.every((text, i) => text === b.files[i])

/**
 * The secrets of a configuration that never travel in a token request but may surface in a transport error: the
 * proxy URL (with its credentials) and the TLS key passphrase.
 *
 * @internal
 */
export const connectionSecrets = (config: ServiceAccountConfig): Array<string> => {
  const secrets: Array<string> = []
  if (config.proxyUrl !== undefined) {
    const url = Redacted.value(config.proxyUrl)
    secrets.push(url)
    try {
      const parsed = new URL(url)
      if (parsed.password) secrets.push(parsed.password, decodeURIComponent(parsed.password))
    } catch {
      // decoding refused it already
    }
  }
  if (config.tlsClientCertificate?.passphrase !== undefined) {
    secrets.push(Redacted.value(config.tlsClientCertificate.passphrase))
  }
  if (config.privateKey !== undefined) secrets.push(Redacted.value(config.privateKey))
  return secrets
}

/**
 * Reads and checks every file and inline key the configuration names, once, as the first token request would (used
 * at start-up so a wrong path or a malformed key is reported before any work), reporting every problem.
 *
 * @internal
 */
export const check = (
  config: ServiceAccountConfig
): Effect.Effect<void, ReadonlyArray<ClientCredentialError>> => {
  const files: Array<string> = []
  const checks: Array<Effect.Effect<unknown, ClientCredentialError>> = []
  if (config.clientSecretFile !== undefined) checks.push(clientSecret(config, files))
  if (config.privateKey !== undefined || config.privateKeyFile !== undefined) checks.push(signingKey(config, files))
  if (config.clientAssertion?._tag === "File" || config.clientAssertion?._tag === "Token") {
    checks.push(externalAssertion(config, files, undefined))
  }
  const tls = config.tlsClientCertificate
  if (tls !== undefined) checks.push(tlsPair(config, tls))
  return Effect.flatMap(Effect.all(checks.map((c) => Effect.either(c))), (results) => {
    const errors = results.filter(Either.isLeft).map((r) => r.left)
    return errors.length === 0 ? Effect.void : Effect.fail(errors)
  })
}

const tlsPair = (
  config: ServiceAccountConfig,
  tls: NonNullable<ServiceAccountConfig["tlsClientCertificate"]>
): Effect.Effect<void, ClientCredentialError> =>
  Effect.gen(function*() {
    const certificate = yield* readFile(config, "tls_client_certificate_file", tls.certificateFile)
    const keyText = yield* readFile(config, "tls_client_key_file", tls.keyFile)
    let key: Crypto.KeyObject
    try {
      key = Crypto.createPrivateKey({
        key: keyText,
        ...(tls.passphrase === undefined ? {} : { passphrase: Redacted.value(tls.passphrase) })
      })
    } catch (cause) {
      return yield* Effect.fail(
        credentialError(
          config,
          "tls_client_key_file",
          tls.keyFile,
          `is not a usable PEM private key (${errorCode(cause)}${
            tls.passphrase === undefined ? "; set tls_client_key_passphrase if it is encrypted" : ""
          })`
        )
      )
    }
    const x5t = thumbprint(certificate, key)
    if (Either.isLeft(x5t)) {
      return yield* Effect.fail(credentialError(config, "tls_client_certificate_file", tls.certificateFile, x5t.left))
    }
  })
