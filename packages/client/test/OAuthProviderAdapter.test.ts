/**
 * The SDK `authProvider` adapter validates the tokens the SDK hands to `saveTokens` exactly as mcp-auth validates
 * its own token responses: a token that cannot be sent in a header is the typed error and is never adopted; an absurd
 * lifetime is clamped to `max_token_lifetime_seconds`. No network: the token URL is never contacted.
 */
import { createServiceAccountAuth } from "@mcp-auth/client/ServiceAccountAuth"
import { isServiceAccountError } from "@mcp-auth/service-account/ServiceAccountError"
import { describe, expect, it } from "vitest"

const config = {
  client_id: "adapter-client",
  client_secret: "adapter-secret",
  token_url: "http://127.0.0.1:9/token",
  allow_insecure_http: true,
  retry: { max_attempts: 1 },
  max_token_lifetime_seconds: 7200
}

describe("OAuthProviderAdapter.saveTokens", () => {
  it.each([
    ["CR/LF", "good\r\nX-Injected: 1"],
    ["NUL", "to\u0000ken"],
    ["non-ASCII", "tökén"],
    ["a space", "two words"],
    ["over 16 KiB", "a".repeat(16 * 1024 + 1)]
  ])("refuses a token with %s, without printing it", async (_, token) => {
    const auth = createServiceAccountAuth(config)
    try {
      const error: unknown = await Promise.resolve(
        auth.authProvider().saveTokens({ access_token: token, token_type: "Bearer", expires_in: 600 })
      ).then(() => undefined, (e: unknown) => e)
      expect(isServiceAccountError(error)).toBe(true)
      expect(error).toMatchObject({ _tag: "MalformedResponseError", reason: "access_token" })
      const rendered = `${String(error)} ${JSON.stringify(error)} ${(error as Error).message}`
      expect(rendered).not.toContain(token.length > 64 ? token.slice(0, 64) : token)
      expect(await auth.state()).toMatchObject({ status: "empty" })
    } finally {
      await auth.close()
    }
  })

  it("clamps an absurd expires_in to max_token_lifetime_seconds and adopts the token", async () => {
    const auth = createServiceAccountAuth(config)
    try {
      const provider = auth.authProvider()
      await provider.saveTokens({ access_token: "adopted-token", token_type: "bearer", expires_in: 1e20 })
      const tokens = await provider.tokens()
      expect(tokens?.access_token).toBe("adopted-token")
      expect(tokens?.expires_in).toBeGreaterThan(7000)
      expect(tokens?.expires_in).toBeLessThanOrEqual(7200)
    } finally {
      await auth.close()
    }
  })
})
