import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import * as crypto from "node:crypto"
import * as RecordingServer from "../src/RecordingServer.js"
import * as TestPki from "../src/TestPki.js"
import { errorCode, fetchTrusting, httpsGet } from "./helpers.js"

describe("TestPki", () => {
  it("generates a fresh PKI with the documented SANs and chains", async () => {
    // (its speed, typically 0.2–0.6 s, is a benchmark's business, not an assertion)
    const pki = await TestPki.make()

    const ca = new crypto.X509Certificate(pki.ca)
    expect(ca.ca).toBe(true)
    const server = new crypto.X509Certificate(pki.server.certPem)
    expect(server.ca).toBe(false)
    expect(server.subjectAltName).toBe("DNS:localhost, IP Address:127.0.0.1")
    expect(server.checkIssued(ca)).toBe(true)
    expect(server.verify(ca.publicKey)).toBe(true)
    expect(new Date(server.validTo).getTime()).toBeGreaterThan(Date.now() + 24 * 3600 * 1000)
    expect(pki.server.certPem.match(/BEGIN CERTIFICATE/g)).toHaveLength(1)
    expect(pki.serverWithChain.certPem.match(/BEGIN CERTIFICATE/g)).toHaveLength(2)
    expect(new crypto.X509Certificate(pki.wrongHost.certPem).subjectAltName).toBe("DNS:wrong.example")
    const selfSigned = new crypto.X509Certificate(pki.selfSigned.certPem)
    expect(selfSigned.verify(selfSigned.publicKey)).toBe(true)
    const unknown = new crypto.X509Certificate(pki.unknownCa.leafOnly.certPem)
    expect(unknown.checkIssued(ca)).toBe(false)
    expect(unknown.verify(new crypto.X509Certificate(pki.unknownCa.ca).publicKey)).toBe(true)
    expect(pki.unknownCa.withChain.certPem.match(/BEGIN CERTIFICATE/g)).toHaveLength(2)
    // the key matches the certificate
    expect(crypto.createPublicKey(pki.server.keyPem).export({ type: "spki", format: "pem" })).toBe(
      server.publicKey.export({ type: "spki", format: "pem" })
    )
  })

  it("shared() returns one PKI per process", async () => {
    const [a, b] = await Promise.all([TestPki.shared(), TestPki.shared()])
    expect(a).toBe(b)
  })

  describe("each scenario gives the documented Node TLS error to a client trusting only the CA", async () => {
    const pki = await TestPki.shared()
    for (const scenario of TestPki.scenarios(pki)) {
      it(`${scenario.name}: ${scenario.expectedErrorCode ?? "success"}`, async () => {
        const server = await RecordingServer.start({ https: scenario.tls })
        const { destroy, fetch } = fetchTrusting(pki.ca)
        try {
          const url = `${server.url}/probe`
          if (scenario.expectedErrorCode === undefined) {
            expect(await httpsGet(url, pki.ca)).toBe(200)
            expect((await fetch(url)).status).toBe(200)
            // the name `localhost` is in the SAN too
            expect(await httpsGet(`https://localhost:${server.port}/`, pki.ca)).toBe(200)
            expect(server.count).toBe(3)
          } else {
            const viaHttps = await httpsGet(url, pki.ca).then(() => undefined, errorCode)
            expect(viaHttps).toBe(scenario.expectedErrorCode)
            const viaFetch = await fetch(url).then(() => undefined, errorCode)
            expect(viaFetch).toBe(scenario.expectedErrorCode)
            expect(server.count).toBe(0)
          }
        } finally {
          await destroy()
          await server.close()
        }
      })
    }
  })

  it("a client without the test CA rejects even the good server", async () => {
    const pki = await TestPki.shared()
    const server = await RecordingServer.start({ https: pki.server })
    try {
      const code = await fetch(server.url).then(() => undefined, errorCode)
      expect(code).toBe("UNABLE_TO_VERIFY_LEAF_SIGNATURE")
    } finally {
      await server.close()
    }
  })

  it("issue() makes further leaves, including expired ones", async () => {
    const pki = await TestPki.shared()
    const expired = await pki.issue({ dnsNames: ["localhost"], ipAddresses: ["127.0.0.1"], validityDays: -1 })
    const server = await RecordingServer.start({ https: expired })
    try {
      expect(await httpsGet(server.url, pki.ca).then(() => undefined, errorCode)).toBe("CERT_HAS_EXPIRED")
    } finally {
      await server.close()
    }
  })

  it.live("makeEffect / sharedEffect", () =>
    Effect.gen(function*() {
      const pki = yield* TestPki.sharedEffect
      expect(pki).toBe(yield* Effect.promise(() => TestPki.shared()))
      expect(TestPki.expectedErrorCode.selfSigned).toBe("DEPTH_ZERO_SELF_SIGNED_CERT")
    }))
})
