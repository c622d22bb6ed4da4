/**
 * Key pairs for client-authentication tests, made once per process at run time (never committed).
 */
import * as Crypto from "node:crypto"
import * as Fs from "node:fs"
import * as Os from "node:os"
import * as Path from "node:path"

export interface TestKey {
  readonly algorithm: "RS256" | "PS256" | "ES256" | "EdDSA"
  readonly privatePem: string
  readonly privateJwk: Crypto.JsonWebKey
  readonly publicKey: Crypto.KeyObject
}

const make = (algorithm: TestKey["algorithm"]): TestKey => {
  const { privateKey, publicKey } = algorithm === "ES256"
    ? Crypto.generateKeyPairSync("ec", { namedCurve: "P-256" })
    : algorithm === "EdDSA"
    ? Crypto.generateKeyPairSync("ed25519")
    : Crypto.generateKeyPairSync("rsa", { modulusLength: 2048 })
  return {
    algorithm,
    privatePem: privateKey.export({ type: "pkcs8", format: "pem" }) as string,
    privateJwk: privateKey.export({ format: "jwk" }),
    publicKey
  }
}

let cache: Record<TestKey["algorithm"], TestKey> | undefined

/** One key per algorithm (RS256 and PS256 share the RSA key). */
export const keys = (): Record<TestKey["algorithm"], TestKey> => {
  if (cache === undefined) {
    const rsa = make("RS256")
    cache = { RS256: rsa, PS256: { ...rsa, algorithm: "PS256" }, ES256: make("ES256"), EdDSA: make("EdDSA") }
  }
  return cache
}

/** A fresh temporary directory, removed by the returned function. */
export const tempDir = (): { readonly dir: string; readonly write: (name: string, text: string) => string } => {
  const dir = Fs.mkdtempSync(Path.join(Os.tmpdir(), "mcp-auth-keys-"))
  return {
    dir,
    write: (name, text) => {
      const path = Path.join(dir, name)
      // write then rename, as Kubernetes swaps a mounted file: a reader never sees half a file
      Fs.writeFileSync(`${path}.tmp`, text)
      Fs.renameSync(`${path}.tmp`, path)
      return path
    }
  }
}
