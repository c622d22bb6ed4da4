/**
 * What the CLI scrubs from everything it prints (src/internal/secrets.ts) and how it reports a client credential
 * failure (src/Errors.ts), in process: every secret a provider's configuration holds, whichever client
 * authentication method it uses, is removed from server text in each form it travels.
 */
import * as ServiceAccountConfig from "@mcp-auth/service-account/ServiceAccountConfig"
import { ClientCredentialError } from "@mcp-auth/service-account/ServiceAccountError"
import * as TokenEndpoint from "@mcp-auth/service-account/TokenEndpoint"
import * as Redacted from "effect/Redacted"
import * as Crypto from "node:crypto"
import * as Fs from "node:fs"
import * as Os from "node:os"
import * as Path from "node:path"
import { afterAll, describe, expect, it } from "vitest"
import { ExitCode, report } from "../src/Errors.js"
import * as Secrets from "../src/internal/secrets.js"

const dir = Fs.mkdtempSync(Path.join(Os.tmpdir(), "mcp-auth-cli-secrets-"))
afterAll(() => Fs.rmSync(dir, { recursive: true, force: true }))

const write = (name: string, text: string) => {
  const file = Path.join(dir, name)
  Fs.writeFileSync(file, text)
  return file
}

const base = { client_id: "svc-secrets", token_url: "https://idp.example.com/token" }

/** Server text quoting `secret`, as an echoing server would, scrubbed as the CLI prints it. */
const printed = (secret: string) =>
  Secrets.lines(`the server says: [${secret}] and ${encodeURIComponent(secret)}`, 10_000)

describe("the secrets the CLI scrubs", () => {
  it("client_secret_file: the secret as sent (without the trailing line break) and its Basic credential", () => {
    const secret = "file-Secret:value%7+q"
    const file = write("client-secret", `${secret}\n`)
    Secrets.fromProvider(ServiceAccountConfig.decodeSync({ ...base, client_secret_file: file }))
    const basic = Redacted.value(TokenEndpoint.basicCredential("svc-secrets", Redacted.make(secret)))
    expect(Secrets.all()).toEqual(expect.arrayContaining([secret, basic]))
    expect(printed(secret)).not.toContain(secret)
    expect(printed(secret)).not.toContain(encodeURIComponent(secret))
    expect(printed(basic)).not.toContain(basic)
  })

  it("a client_secret_file that cannot be read is skipped (the provider reports it)", () => {
    const before = Secrets.all().length
    Secrets.fromProvider(
      ServiceAccountConfig.decodeSync({ ...base, client_secret_file: Path.join(dir, "does-not-exist") })
    )
    expect(Secrets.all().length).toBe(before)
  })

  it("private_key (PEM, inline) and private_key_file (a JWK): the key, its PEM lines and private JWK members", () => {
    const rsa = Crypto.generateKeyPairSync("rsa", { modulusLength: 2048 })
    const pem = rsa.privateKey.export({ format: "pem", type: "pkcs8" }).toString()
    Secrets.fromProvider(ServiceAccountConfig.decodeSync({
      ...base,
      auth_method: "private_key_jwt",
      private_key: Redacted.make(pem)
    }))
    const line = pem.split("\n")[5]!
    expect(printed(pem)).not.toContain(line)
    expect(printed(`…${line}…`)).not.toContain(line)

    const ec = Crypto.generateKeyPairSync("ec", { namedCurve: "P-256" })
    const jwk = { ...ec.privateKey.export({ format: "jwk" }), kid: "k1" }
    const file = write("key.jwk", JSON.stringify(jwk))
    Secrets.fromProvider(ServiceAccountConfig.decodeSync({
      ...base,
      auth_method: "private_key_jwt",
      private_key_file: file
    }))
    expect(printed(JSON.stringify(jwk))).not.toContain(jwk.d)
    expect(printed(`"d":"${jwk.d}"`)).not.toContain(jwk.d)
    // public members are not secrets
    expect(printed(`x=${jwk.x}`)).toContain(jwk.x)
  })

  it("client_assertion.token and the JWT of client_assertion.file", () => {
    const token = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ3b3JrbG9hZC10b2tlbi10ZXN0In0.c2lnbmF0dXJlLXRva2Vu"
    const fromFile = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ3b3JrbG9hZC1maWxlLXRlc3QifQ.c2lnbmF0dXJlLWZpbGU"
    Secrets.fromProvider(ServiceAccountConfig.decodeSync({
      ...base,
      grant_type: "jwt_bearer",
      client_assertion: { token: Redacted.make(token) }
    }))
    Secrets.fromProvider(ServiceAccountConfig.decodeSync({
      ...base,
      auth_method: "private_key_jwt",
      client_assertion: { file: write("token", `${fromFile}\n`) }
    }))
    expect(printed(token)).not.toContain(token)
    expect(printed(fromFile)).not.toContain(fromFile)
  })

  it("tls_client_key_passphrase, proxy_url and the proxy's password (raw and percent-decoded)", () => {
    const passphrase = "tls-Passphrase-9x"
    const password = "proxy%2Fpass:word"
    const proxy = `http://proxy-user:${password}@proxy.internal:3128`
    Secrets.fromProvider(ServiceAccountConfig.decodeSync({
      ...base,
      client_secret: Redacted.make("x-secret-value"),
      tls_client_certificate_file: "/etc/client.pem",
      tls_client_key_file: "/etc/client-key.pem",
      tls_client_key_passphrase: Redacted.make(passphrase),
      proxy_url: Redacted.make(proxy)
    }))
    expect(printed(passphrase)).not.toContain(passphrase)
    expect(printed(proxy)).not.toContain(password)
    expect(printed(`Proxy-Authorization failed for ${password}`)).not.toContain(password)
    expect(printed(decodeURIComponent(password))).not.toContain(decodeURIComponent(password))
  })
})

describe("report of a ClientCredentialError", () => {
  it("exit 3 (configuration), the field and the file, a hint pointing at the file", () => {
    const error = new ClientCredentialError({
      tokenUrl: "https://idp.example.com/token",
      field: "private_key_file",
      file: "/run/secrets/key.pem",
      reason: "cannot be read (EACCES)"
    })
    const { code, hint, message } = report(error)
    expect(code).toBe(ExitCode.configuration)
    expect(message).toBe(
      "Cannot authenticate to https://idp.example.com/token: private_key_file (/run/secrets/key.pem) cannot be read " +
        "(EACCES)"
    )
    expect(hint).toMatch(/^Check the file named above/)
    const assertion = report(
      new ClientCredentialError({
        tokenUrl: "https://idp.example.com/token",
        field: "client_assertion.function",
        reason: "failed: the OIDC endpoint refused the request"
      })
    )
    expect(assertion.code).toBe(ExitCode.configuration)
    expect(assertion.hint).toMatch(/^Check client_assertion/)
  })
})
