/**
 * A certificate authority made at run time, with ready-made server certificates for every TLS failure a client
 * must report: self-signed, unknown CA (with and without the CA in the chain) and wrong host name.
 *
 * Client certificates for mutual TLS (RFC 8705): {@link TestPki.issueClient} (signed by the trusted CA, for
 * `tls_client_auth`) and {@link TestPki.selfSignedClient} (for `self_signed_tls_client_auth`), each with its own
 * fresh key; {@link thumbprint} gives a certificate's `x5t#S256` and {@link certificateJwk} its public JWK with `x5c`.
 *
 * Certificates are built with node-forge and signed with `node:crypto` (no openssl needed), valid from one hour ago
 * for seven days. Generation takes well under a second; {@link shared} caches one PKI per process.
 *
 * Node TLS error codes seen by a client that trusts only {@link TestPki.ca} (verified for `node:https` and undici
 * `fetch`; see {@link expectedErrorCode}):
 *
 * | credentials | result |
 * |---|---|
 * | `server`, `serverWithChain` | success |
 * | `selfSigned` | `DEPTH_ZERO_SELF_SIGNED_CERT` |
 * | `unknownCa.leafOnly` | `UNABLE_TO_VERIFY_LEAF_SIGNATURE` |
 * | `unknownCa.withChain` | `SELF_SIGNED_CERT_IN_CHAIN` |
 * | `wrongHost` | `ERR_TLS_CERT_ALTNAME_INVALID` |
 *
 * @since 0.1.0
 */
import * as Effect from "effect/Effect"
import forge from "node-forge"
import * as crypto from "node:crypto"
import { promisify } from "node:util"

/**
 * A certificate (PEM, possibly a chain: leaf first) and its private key (PKCS#8 PEM), in the shape every server's
 * `https` option takes.
 *
 * @since 0.1.0
 * @category Models
 */
export interface TlsCredentials {
  readonly certPem: string
  readonly keyPem: string
}

/**
 * Options for {@link TestPki.issue}.
 *
 * @since 0.1.0
 * @category Models
 */
export interface IssueOptions {
  /** Subject common name; defaults to the first DNS name or IP address. */
  readonly commonName?: string | undefined
  readonly dnsNames?: ReadonlyArray<string> | undefined
  readonly ipAddresses?: ReadonlyArray<string> | undefined
  /** Append the CA certificate to `certPem` (default `false`). */
  readonly includeChain?: boolean | undefined
  /** Validity in days from now (default 7); a negative value yields an expired certificate. */
  readonly validityDays?: number | undefined
}

/**
 * Options for {@link TestPki.issueClient} and {@link TestPki.selfSignedClient}.
 *
 * @since 0.3.0
 * @category Models
 */
export interface ClientCertificateOptions {
  /** Subject common name (the subject is `CN=<commonName>, O=mcp-auth`). */
  readonly commonName: string
  /** Validity in days from now (default 7); a negative value yields an expired certificate. */
  readonly validityDays?: number | undefined
}

/**
 * A client certificate (extended key usage `clientAuth`, no SAN) with its own RSA key.
 *
 * @since 0.3.0
 * @category Models
 */
export interface ClientCertificate extends TlsCredentials {
  /** The subject DN as the authorization server's `tls_client_auth_subject_dn` takes it: `CN=…,O=mcp-auth`. */
  readonly subjectDn: string
  /** RFC 8705 `x5t#S256`: base64url SHA-256 of the certificate DER. */
  readonly thumbprint: string
  /** The same key as an encrypted PKCS#8 PEM (`ENCRYPTED PRIVATE KEY`, AES-256-CBC) under this passphrase. */
  readonly encryptedKeyPem: (passphrase: string) => string
  /** The key as a PKCS#1 PEM (`RSA PRIVATE KEY`). */
  readonly pkcs1KeyPem: string
}

/**
 * @since 0.1.0
 * @category Models
 */
export interface TestPki {
  /** PEM of the trusted test CA certificate: what clients put in `ca`. */
  readonly ca: string
  /** Leaf signed by the CA, SAN `DNS:localhost, IP:127.0.0.1`, chain = leaf only. */
  readonly server: TlsCredentials
  /** Same leaf as `server`, served with the CA certificate in the chain. */
  readonly serverWithChain: TlsCredentials
  /** Signed by the CA but valid only for `DNS:wrong.example`. */
  readonly wrongHost: TlsCredentials
  /** Self-signed leaf for `localhost` / `127.0.0.1`. */
  readonly selfSigned: TlsCredentials
  /** A leaf for `localhost` / `127.0.0.1` signed by a second CA that clients do not trust. */
  readonly unknownCa: {
    /** PEM of the untrusted CA. */
    readonly ca: string
    readonly leafOnly: TlsCredentials
    readonly withChain: TlsCredentials
  }
  /** Issues a further leaf signed by the trusted CA (same key as the other leaves). */
  readonly issue: (options: IssueOptions) => Promise<TlsCredentials>
  /** A client certificate signed by the trusted CA ({@link TestPki.ca}) with a fresh key of its own. */
  readonly issueClient: (options: ClientCertificateOptions) => Promise<ClientCertificate>
  /** A self-signed client certificate with a fresh key of its own. */
  readonly selfSignedClient: (options: ClientCertificateOptions) => Promise<ClientCertificate>
  /** A client certificate signed by the untrusted second CA ({@link TestPki.unknownCa}), fresh key. */
  readonly issueUntrustedClient: (options: ClientCertificateOptions) => Promise<ClientCertificate>
}

/**
 * Names of the ready-made TLS scenarios.
 *
 * @since 0.1.0
 * @category Models
 */
export type Scenario =
  | "server"
  | "serverWithChain"
  | "selfSigned"
  | "unknownCaLeafOnly"
  | "unknownCaWithChain"
  | "wrongHost"

/**
 * The Node TLS error `code` a client trusting only {@link TestPki.ca} gets for each scenario when it connects to
 * `https://127.0.0.1:PORT` (`undefined` = the handshake succeeds).
 *
 * @since 0.1.0
 * @category Models
 */
export const expectedErrorCode: { readonly [K in Scenario]: string | undefined } = {
  server: undefined,
  serverWithChain: undefined,
  selfSigned: "DEPTH_ZERO_SELF_SIGNED_CERT",
  unknownCaLeafOnly: "UNABLE_TO_VERIFY_LEAF_SIGNATURE",
  unknownCaWithChain: "SELF_SIGNED_CERT_IN_CHAIN",
  wrongHost: "ERR_TLS_CERT_ALTNAME_INVALID"
}

/**
 * Every scenario with its credentials and expected error code, handy for table-driven tests.
 *
 * @since 0.1.0
 * @category Constructors
 */
export const scenarios = (pki: TestPki): ReadonlyArray<{
  readonly name: Scenario
  readonly tls: TlsCredentials
  readonly expectedErrorCode: string | undefined
}> => {
  const tls: { readonly [K in Scenario]: TlsCredentials } = {
    server: pki.server,
    serverWithChain: pki.serverWithChain,
    selfSigned: pki.selfSigned,
    unknownCaLeafOnly: pki.unknownCa.leafOnly,
    unknownCaWithChain: pki.unknownCa.withChain,
    wrongHost: pki.wrongHost
  }
  return (Object.keys(tls) as Array<Scenario>).map((name) => ({
    name,
    tls: tls[name],
    expectedErrorCode: expectedErrorCode[name]
  }))
}

/**
 * Generates a fresh PKI (two CAs, four leaf certificates sharing one key).
 *
 * @since 0.1.0
 * @category Constructors
 */
export const make = async (): Promise<TestPki> => {
  // Only three keys: the two CAs and one key shared by every leaf (trust does not depend on leaf keys; RSA key
  // generation is most of the cost).
  const [caKey, otherCaKey, leafKey] = await Promise.all([generateKey(), generateKey(), generateKey()])
  const serverKey = leafKey
  const wrongHostKey = leafKey
  const selfSignedKey = leafKey
  const unknownLeafKey = leafKey
  const ca = createCertificate({ subject: "mcp-auth Test CA", key: caKey, isCa: true, signer: "self" })
  const otherCa = createCertificate({
    subject: "mcp-auth Untrusted Test CA",
    key: otherCaKey,
    isCa: true,
    signer: "self"
  })
  const local = { dnsNames: ["localhost"], ipAddresses: ["127.0.0.1"] }
  const server = createCertificate({ subject: "localhost", key: serverKey, signer: ca, ...local })
  const wrongHost = createCertificate({
    subject: "wrong.example",
    key: wrongHostKey,
    signer: ca,
    dnsNames: ["wrong.example"]
  })
  const selfSigned = createCertificate({ subject: "localhost", key: selfSignedKey, signer: "self", ...local })
  const unknownLeaf = createCertificate({ subject: "localhost", key: unknownLeafKey, signer: otherCa, ...local })

  const issue = async (options: IssueOptions): Promise<TlsCredentials> => {
    const key = leafKey
    const dnsNames = options.dnsNames ?? []
    const ipAddresses = options.ipAddresses ?? []
    const leaf = createCertificate({
      subject: options.commonName ?? dnsNames[0] ?? ipAddresses[0] ?? "localhost",
      key,
      signer: ca,
      dnsNames,
      ipAddresses,
      validityDays: options.validityDays ?? 7
    })
    return { certPem: options.includeChain === true ? leaf.pem + ca.pem : leaf.pem, keyPem: keyPem(key) }
  }

  const client = async (
    options: ClientCertificateOptions,
    signer: Issued | "self"
  ): Promise<ClientCertificate> => {
    const key = await generateKey()
    const issued = createCertificate({
      subject: options.commonName,
      key,
      signer,
      clientAuth: true,
      validityDays: options.validityDays ?? 7
    })
    return clientCertificate(issued.pem, key, options.commonName)
  }

  return {
    ca: ca.pem,
    server: { certPem: server.pem, keyPem: keyPem(serverKey) },
    serverWithChain: { certPem: server.pem + ca.pem, keyPem: keyPem(serverKey) },
    wrongHost: { certPem: wrongHost.pem, keyPem: keyPem(wrongHostKey) },
    selfSigned: { certPem: selfSigned.pem, keyPem: keyPem(selfSignedKey) },
    unknownCa: {
      ca: otherCa.pem,
      leafOnly: { certPem: unknownLeaf.pem, keyPem: keyPem(unknownLeafKey) },
      withChain: { certPem: unknownLeaf.pem + otherCa.pem, keyPem: keyPem(unknownLeafKey) }
    },
    issue,
    issueClient: (options) => client(options, ca),
    selfSignedClient: (options) => client(options, "self"),
    issueUntrustedClient: (options) => client(options, otherCa)
  }
}

/**
 * RFC 8705 §3.1 `x5t#S256` of a certificate: the base64url SHA-256 of its DER (the first certificate of a PEM chain).
 *
 * @since 0.3.0
 * @category Constructors
 */
export const thumbprint = (certPem: string): string =>
  crypto.createHash("sha256").update(new crypto.X509Certificate(certPem).raw).digest("base64url")

/**
 * The public key of a certificate as a JWK carrying the certificate in `x5c` (and its `x5t#S256`): what a
 * `self_signed_tls_client_auth` client registers in its `jwks`.
 *
 * @since 0.3.0
 * @category Constructors
 */
export const certificateJwk = (certPem: string): JsonWebKey & {
  readonly x5c: ReadonlyArray<string>
  readonly "x5t#S256": string
} => {
  const certificate = new crypto.X509Certificate(certPem)
  return {
    ...certificate.publicKey.export({ format: "jwk" }),
    x5c: [certificate.raw.toString("base64")],
    "x5t#S256": thumbprint(certPem)
  }
}

/**
 * {@link make} as an Effect.
 *
 * @since 0.1.0
 * @category Constructors
 */
export const makeEffect: Effect.Effect<TestPki> = Effect.promise(() => make())

let sharedPki: Promise<TestPki> | undefined

/**
 * One PKI per process (per vitest worker), generated on first use.
 *
 * @since 0.1.0
 * @category Constructors
 */
export const shared = (): Promise<TestPki> => {
  if (sharedPki === undefined) {
    sharedPki = make()
    sharedPki.catch(() => {
      sharedPki = undefined
    })
  }
  return sharedPki
}

/**
 * {@link shared} as an Effect.
 *
 * @since 0.1.0
 * @category Constructors
 */
export const sharedEffect: Effect.Effect<TestPki> = Effect.promise(() => shared())

// -----------------------------------------------------------------------------
// internal
// -----------------------------------------------------------------------------

const generateKeyPair = promisify(crypto.generateKeyPair)

const generateKey = async (): Promise<crypto.KeyObject> => {
  const { privateKey } = await generateKeyPair("rsa", { modulusLength: 2048 })
  return privateKey
}

const keyPem = (key: crypto.KeyObject): string => key.export({ type: "pkcs8", format: "pem" }).toString()

const clientCertificate = (certPem: string, key: crypto.KeyObject, commonName: string): ClientCertificate => ({
  certPem,
  keyPem: keyPem(key),
  subjectDn: `CN=${commonName},O=mcp-auth`,
  thumbprint: thumbprint(certPem),
  encryptedKeyPem: (passphrase) =>
    key.export({ type: "pkcs8", format: "pem", cipher: "aes-256-cbc", passphrase }).toString(),
  pkcs1KeyPem: key.export({ type: "pkcs1", format: "pem" }).toString()
})

interface Issued {
  readonly pem: string
  readonly subject: string
  readonly key: crypto.KeyObject
  readonly subjectKeyId: string
}

const createCertificate = (options: {
  readonly subject: string
  readonly key: crypto.KeyObject
  readonly signer: Issued | "self"
  readonly isCa?: boolean
  /** A TLS client certificate: extended key usage `clientAuth`, no SAN. */
  readonly clientAuth?: boolean
  readonly dnsNames?: ReadonlyArray<string>
  readonly ipAddresses?: ReadonlyArray<string>
  readonly validityDays?: number
}): Issued => {
  const publicPem = crypto.createPublicKey(options.key).export({ type: "spki", format: "pem" }).toString()
  const cert = forge.pki.createCertificate()
  cert.publicKey = forge.pki.publicKeyFromPem(publicPem)
  cert.serialNumber = serialNumber()
  const now = Date.now()
  const validityMs = (options.validityDays ?? 7) * 24 * 3600 * 1000
  cert.validity.notBefore = new Date(Math.min(now - 3600 * 1000, now + validityMs - 7200 * 1000))
  cert.validity.notAfter = new Date(now + validityMs)
  const subjectAttrs = [{ name: "commonName", value: options.subject }, { name: "organizationName", value: "mcp-auth" }]
  cert.setSubject(subjectAttrs)
  const subjectKeyId = cert.generateSubjectKeyIdentifier().getBytes()
  const signer = options.signer === "self" ? undefined : options.signer
  cert.setIssuer(
    signer === undefined ? subjectAttrs : [{ name: "commonName", value: signer.subject }, {
      name: "organizationName",
      value: "mcp-auth"
    }]
  )
  const extensions: Array<Record<string, unknown>> = [
    { name: "subjectKeyIdentifier" }
  ]
  if (signer !== undefined) {
    extensions.push({ name: "authorityKeyIdentifier", keyIdentifier: signer.subjectKeyId })
  }
  if (options.isCa === true) {
    extensions.push(
      { name: "basicConstraints", cA: true, critical: true },
      { name: "keyUsage", keyCertSign: true, cRLSign: true, critical: true }
    )
  } else if (options.clientAuth === true) {
    extensions.push(
      { name: "basicConstraints", cA: false },
      { name: "keyUsage", digitalSignature: true, keyEncipherment: true, critical: true },
      { name: "extKeyUsage", clientAuth: true }
    )
  } else {
    const altNames = [
      ...(options.dnsNames ?? []).map((value) => ({ type: 2, value })),
      ...(options.ipAddresses ?? []).map((ip) => ({ type: 7, ip }))
    ]
    extensions.push(
      { name: "basicConstraints", cA: false },
      { name: "keyUsage", digitalSignature: true, keyEncipherment: true, critical: true },
      { name: "extKeyUsage", serverAuth: true },
      { name: "subjectAltName", altNames }
    )
  }
  cert.setExtensions(extensions)
  const signingKey = signer === undefined ? options.key : signer.key
  // forge computes `tbsCertificate` and then calls `key.sign(md)`: sign those DER bytes with node:crypto instead of
  // forge's pure-JS RSA (much faster).
  const nodeSigner = {
    sign: () =>
      crypto.sign(
        "sha256",
        Buffer.from(forge.asn1.toDer(cert.tbsCertificate).getBytes(), "binary"),
        signingKey
      ).toString("binary")
  }
  cert.sign(nodeSigner as unknown as forge.pki.rsa.PrivateKey, forge.md.sha256.create())
  return { pem: forge.pki.certificateToPem(cert), subject: options.subject, key: options.key, subjectKeyId }
}

const serialNumber = (): string => {
  const bytes = crypto.randomBytes(16)
  bytes[0] = (bytes[0]! & 0x7f) | 0x40
  return bytes.toString("hex")
}
