import { describe, expect, it } from "@effect/vitest"
import * as ServiceAccountConfig from "@mcp-auth/service-account/ServiceAccountConfig"
import type { ConfigurationError } from "@mcp-auth/service-account/ServiceAccountError"
import { ConfigProvider, Effect, Either, Redacted } from "effect"
import * as util from "node:util"

const base = {
  client_id: "my-service-client",
  client_secret: "hunter2-very-secret",
  token_url: "https://auth.example.com/oauth/token",
  scopes: ["api.read", "api.write"]
}

const issuesOf = (input: unknown): ReadonlyArray<string> => {
  const result = ServiceAccountConfig.decodeEither(input)
  if (Either.isRight(result)) throw new Error("expected the config to be rejected")
  return result.left.issues.map((i) => i.toString())
}

const errorOf = (input: unknown): ConfigurationError => {
  const result = ServiceAccountConfig.decodeEither(input)
  if (Either.isRight(result)) throw new Error("expected the config to be rejected")
  return result.left
}

describe("ServiceAccountConfig", () => {
  describe("decoding what NAT users write", () => {
    it("decodes the spec's block into the camelCase model with defaults", () => {
      const config = ServiceAccountConfig.decodeSync({ _type: "mcp_service_account", ...base })
      expect(config.clientId).toBe("my-service-client")
      expect(Redacted.value(config.clientSecret!)).toBe("hunter2-very-secret")
      expect(config.tokenUrl.href).toBe("https://auth.example.com/oauth/token")
      expect(config.scopes).toEqual(["api.read", "api.write"])
      expect(config.tokenCacheBufferSeconds).toBe(300)
      expect(config.authMethod).toBe("client_secret_basic")
      expect(config.timeoutSeconds).toBe(30)
      expect(config.defaultExpiresInSeconds).toBe(3600)
      expect(config.serviceToken).toBeUndefined()
      expect(config.retry).toEqual({
        maxAttempts: 4,
        initialBackoffSeconds: 0.5,
        maxBackoffSeconds: 10,
        maxElapsedSeconds: 30
      })
      expect(config.failureCooldown).toEqual({ initialSeconds: 60, maxSeconds: 900 })
    })

    it("decodes failure_cooldown, numbers as strings (from ${VAR}) too, and 0 to disable it", () => {
      expect(
        ServiceAccountConfig.decodeSync({ ...base, failure_cooldown: { initial_seconds: "30", max_seconds: "120.5" } })
          .failureCooldown
      ).toEqual({ initialSeconds: 30, maxSeconds: 120.5 })
      expect(ServiceAccountConfig.decodeSync({ ...base, failure_cooldown: { max_seconds: 60 } }).failureCooldown)
        .toEqual({ initialSeconds: 60, maxSeconds: 60 })
      expect(ServiceAccountConfig.decodeSync({ ...base, failure_cooldown: { initial_seconds: 0 } }).failureCooldown)
        .toEqual({ initialSeconds: 0, maxSeconds: 900 })
      expect(ServiceAccountConfig.decodeSync({ ...base, failure_cooldown: {} }).failureCooldown)
        .toEqual({ initialSeconds: 60, maxSeconds: 900 })
    })

    it("splits a space-delimited scopes string and drops empty pieces", () => {
      expect(ServiceAccountConfig.decodeSync({ ...base, scopes: "  a  b\tc " }).scopes).toEqual(["a", "b", "c"])
      expect(ServiceAccountConfig.decodeSync({ ...base, scopes: "" }).scopes).toEqual([])
    })

    it("decodes a static service token with NAT's default header", () => {
      const config = ServiceAccountConfig.decodeSync({ ...base, service_token: { token: "svc-123" } })
      expect(config.serviceToken?._tag).toBe("Static")
      expect(config.serviceToken?.header).toBe("X-Service-Account-Token")
      if (config.serviceToken?._tag === "Static") expect(Redacted.value(config.serviceToken.token)).toBe("svc-123")
    })

    it("decodes a function service token with kwargs", () => {
      const config = ServiceAccountConfig.decodeSync({
        ...base,
        service_token: { function: "./tokens.ts#get", header: "X-Jira-Token", kwargs: { vault_path: "secrets/jira" } }
      })
      expect(config.serviceToken).toEqual({
        _tag: "Function",
        function: "./tokens.ts#get",
        header: "X-Jira-Token",
        kwargs: { vault_path: "secrets/jira" },
        timeoutSeconds: 10
      })
    })

    it("accepts our own options", () => {
      const config = ServiceAccountConfig.decodeSync({
        ...base,
        token_url: "http://127.0.0.1:8080/token",
        allow_insecure_http: true,
        auth_method: "client_secret_post",
        audience: "https://api.example.com",
        resource: "https://mcp.example.com/mcp",
        timeout_seconds: 5,
        ca_file: "/etc/ssl/corp.pem",
        token_cache_buffer_seconds: 0,
        retry: { max_attempts: 2 }
      })
      expect(config.authMethod).toBe("client_secret_post")
      expect(config.audience).toBe("https://api.example.com")
      expect(config.resource).toBe("https://mcp.example.com/mcp")
      expect(config.timeoutSeconds).toBe(5)
      expect(config.caFile).toBe("/etc/ssl/corp.pem")
      expect(config.tokenCacheBufferSeconds).toBe(0)
      expect(config.retry.maxAttempts).toBe(2)
      expect(config.retry.maxElapsedSeconds).toBe(30)
    })

    it("accepts http only for loopback hosts with allow_insecure_http", () => {
      for (const host of ["127.0.0.1", "127.5.6.7", "localhost", "[::1]"]) {
        expect(
          ServiceAccountConfig.decodeSync({ ...base, token_url: `http://${host}:9/t`, allow_insecure_http: true })
            .tokenUrl
            .protocol
        ).toBe("http:")
      }
    })
  })

  describe("bad configuration: every problem at once, each with its path and what to do", () => {
    it("reports missing required keys together", () => {
      expect(issuesOf({ scopes: [] })).toEqual([
        "client_id: client_id is required: set it in the config or via ${SERVICE_ACCOUNT_CLIENT_ID}",
        "token_url: token_url is required: set it to the OAuth2 token endpoint URL (https://…/token), or set " +
        "issuer (its metadata names the token endpoint), or allowed_issuers (the authorization servers an MCP " +
        "server may name in discovery)",
        "client_secret: client_secret is required: set it via ${SERVICE_ACCOUNT_CLIENT_SECRET}; never commit it " +
        "(or set client_secret_file to a file holding it)"
      ])
    })

    it("rejects an empty client_id (an unset variable), unlike NAT", () => {
      expect(issuesOf({ ...base, client_id: "" })).toEqual([
        "client_id: client_id must not be empty: set it in the config or via ${SERVICE_ACCOUNT_CLIENT_ID}"
      ])
    })

    it("requires exactly one of token and function, with NAT's messages", () => {
      expect(issuesOf({ ...base, service_token: { header: "X-A" } })).toEqual([
        "service_token: Either 'token' or 'function' must be provided in service_token config"
      ])
      expect(issuesOf({ ...base, service_token: { token: "t", function: "./f.ts#g" } })).toEqual([
        "service_token: Cannot specify both 'token' and 'function' in service_token config. Choose one."
      ])
    })

    it("requires https, allowing http only for loopback with allow_insecure_http", () => {
      expect(issuesOf({ ...base, token_url: "http://auth.example.com/token" })).toEqual([
        "token_url: token_url must use https: http is allowed only for loopback hosts"
      ])
      expect(issuesOf({ ...base, token_url: "http://127.0.0.1:9/token" })).toEqual([
        "token_url: token_url must use https: for a loopback test server set allow_insecure_http: true"
      ])
      expect(issuesOf({ ...base, allow_insecure_http: true })).toEqual([
        "allow_insecure_http: allow_insecure_http is only accepted for loopback hosts, not auth.example.com"
      ])
      expect(issuesOf({ ...base, token_url: "ftp://auth.example.com/t" })).toEqual([
        "token_url: token_url must use https, got ftp"
      ])
      expect(issuesOf({ ...base, token_url: "not a url" })).toEqual([
        "token_url: token_url is not a valid URL: use https://host/path"
      ])
      expect(issuesOf({ ...base, token_url: "https://user:pw@auth.example.com/t" })).toEqual([
        "token_url: token_url must not contain credentials: use client_id and client_secret"
      ])
    })

    it("refuses a service header named Authorization or an invalid header name", () => {
      expect(issuesOf({ ...base, service_token: { token: "t", header: "Authorization" } })).toEqual([
        "service_token.header: service_token.header must not be \"Authorization\": that header is reserved (Authorization carries the bearer token); use e.g. X-Service-Account-Token"
      ])
      expect(issuesOf({ ...base, service_token: { token: "t", header: "X Bad:Header" } })).toEqual([
        "service_token.header: service_token.header \"X Bad:Header\" is not a valid HTTP header name"
      ])
    })

    it("rejects a negative or fractional buffer; accepts a numeric string (from ${VAR} interpolation)", () => {
      expect(issuesOf({ ...base, token_cache_buffer_seconds: -1 })).toEqual([
        "token_cache_buffer_seconds: token_cache_buffer_seconds must be a whole number of seconds ≥ 0, got -1"
      ])
      expect(issuesOf({ ...base, token_cache_buffer_seconds: 2.5 })).toEqual([
        "token_cache_buffer_seconds: token_cache_buffer_seconds must be a whole number of seconds ≥ 0, got 2.5"
      ])
      expect(issuesOf({ ...base, token_cache_buffer_seconds: "soon" })).toEqual([
        "token_cache_buffer_seconds: token_cache_buffer_seconds must be a number, got \"soon\""
      ])
      expect(ServiceAccountConfig.decodeSync({ ...base, token_cache_buffer_seconds: "600" }).tokenCacheBufferSeconds)
        .toBe(600)
      expect(
        ServiceAccountConfig.decodeSync({ ...base, allow_insecure_http: "true", token_url: "http://127.0.0.1:1/t" })
          .allowInsecureHttp
      ).toBe(true)
    })

    it("rejects unknown keys with a did-you-mean, inside service_token too (NAT ignores those)", () => {
      expect(issuesOf({ ...base, token_cache_bufer_seconds: 5, token_prefix: "x" })).toEqual([
        "token_cache_bufer_seconds: unknown key \"token_cache_bufer_seconds\": did you mean \"token_cache_buffer_seconds\"?",
        "token_prefix: unknown key \"token_prefix\": remove it"
      ])
      expect(issuesOf({ ...base, service_token: { token: "t", headr: "X-A" } })).toEqual([
        "service_token.headr: unknown key \"headr\" in service_token: did you mean \"header\"?"
      ])
    })

    it("reports every problem of a badly broken block at once", () => {
      const issues = issuesOf({
        client_id: "",
        client_secret: 42,
        token_url: "http://auth.example.com/t",
        scopes: ["ok", "not ok"],
        token_cache_buffer_seconds: -5,
        auth_method: "client_secret_jwk",
        service_token: { header: "Authorization", headr: 1 }
      })
      expect(issues).toEqual([
        "client_id: client_id must not be empty: set it in the config or via ${SERVICE_ACCOUNT_CLIENT_ID}",
        "client_secret: client_secret must be a string",
        "scopes.1: \"not ok\" is not a valid scope (RFC 6749 §3.3: no spaces, quotes or backslashes)",
        "service_token.headr: unknown key \"headr\" in service_token: did you mean \"header\"?",
        "service_token.header: service_token.header must not be \"Authorization\": that header is reserved (Authorization carries the bearer token); use e.g. X-Service-Account-Token",
        "token_cache_buffer_seconds: token_cache_buffer_seconds must be a whole number of seconds ≥ 0, got -5",
        "auth_method: auth_method must be one of client_secret_basic, client_secret_post, client_secret_jwt, " +
        "private_key_jwt, tls_client_auth, self_signed_tls_client_auth, got \"client_secret_jwk\"",
        "token_url: token_url must use https: http is allowed only for loopback hosts",
        "service_token: Either 'token' or 'function' must be provided in service_token config"
      ])
    })

    it("retry backoffs must be in order, also from strings and against the defaults", () => {
      const message = "retry.max_backoff_seconds: retry.max_backoff_seconds must be ≥ retry.initial_backoff_seconds"
      expect(issuesOf({ ...base, retry: { initial_backoff_seconds: "5", max_backoff_seconds: "2" } })).toEqual([
        message
      ])
      expect(issuesOf({ ...base, retry: { max_backoff_seconds: 0.2 } })).toEqual([message]) // default initial: 0.5
      // a problem elsewhere in the block does not hide this one
      expect(issuesOf({ ...base, retry: { max_attempts: 0, initial_backoff_seconds: 3, max_backoff_seconds: 1 } }))
        .toEqual([
          "retry.max_attempts: retry.max_attempts must be a whole number ≥ 1, got 0",
          message
        ])
    })

    it("failure_cooldown: max_seconds ≥ initial_seconds, compared as decoded; bad values and keys reported", () => {
      const message =
        "failure_cooldown.max_seconds: failure_cooldown.max_seconds must be ≥ failure_cooldown.initial_seconds"
      expect(issuesOf({ ...base, failure_cooldown: { initial_seconds: "120", max_seconds: "60" } })).toEqual([message])
      expect(issuesOf({ ...base, failure_cooldown: { initial_seconds: 1000 } })).toEqual([message]) // default max: 900
      expect(issuesOf({ ...base, failure_cooldown: { max_seconds: 30 } })).toEqual([message]) // default initial: 60
      // "10" and 10 are equal once decoded: no issue
      expect(
        ServiceAccountConfig.decodeSync({ ...base, failure_cooldown: { initial_seconds: "10", max_seconds: 10 } })
          .failureCooldown
      ).toEqual({ initialSeconds: 10, maxSeconds: 10 })
      expect(issuesOf({ ...base, failure_cooldown: { initial_seconds: -1, max_second: 5 } })).toEqual([
        "failure_cooldown.max_second: unknown key \"max_second\" in failure_cooldown: did you mean \"max_seconds\"?",
        "failure_cooldown.initial_seconds: failure_cooldown.initial_seconds must be a number of seconds ≥ 0, got -1"
      ])
      expect(issuesOf({ ...base, failure_cooldown: 60 })).toEqual([
        "failure_cooldown: failure_cooldown must be a map of keys to values"
      ])
    })

    it("names the replacement of invalid_credentials_cooldown_seconds rather than calling it unknown", () => {
      const issues = issuesOf({ ...base, invalid_credentials_cooldown_seconds: 60 })
      expect(issues).toEqual([
        "invalid_credentials_cooldown_seconds: invalid_credentials_cooldown_seconds has been renamed: use failure_cooldown.initial_seconds"
      ])
      const nested = ServiceAccountConfig.decodeEither(
        { ...base, invalid_credentials_cooldown_seconds: 5 },
        { path: "authentication.jira" }
      )
      expect(Either.isLeft(nested) && nested.left.issues.map(String)).toEqual([
        "authentication.jira.invalid_credentials_cooldown_seconds: invalid_credentials_cooldown_seconds has been renamed: use failure_cooldown.initial_seconds"
      ])
      // only that key: other unknown keys keep their did-you-mean
      expect(issuesOf({ ...base, failure_cooldown: { invalid_credentials_cooldown_seconds: 1 } })).toEqual([
        "failure_cooldown.invalid_credentials_cooldown_seconds: unknown key \"invalid_credentials_cooldown_seconds\" in failure_cooldown: remove it"
      ])
    })

    it("prefixes paths so workflow loaders can point into the YAML", () => {
      const result = ServiceAccountConfig.decodeEither({ ...base, client_id: "" }, { path: "authentication.jira" })
      expect(Either.isLeft(result) && result.left.issues[0]!.path).toBe("authentication.jira.client_id")
    })

    it("never prints a secret: wrong types, NAT's flat service_token, an unparseable token_url", () => {
      const flat = errorOf({ ...base, service_token: "jira-SECRET-123", token_url: "https://user:pa ss@[bad/" })
      expect(flat.issues.map(String)).toEqual([
        "token_url: token_url is not a valid URL: use https://host/path",
        "service_token: service_token must be a map with token or function (early NAT drafts' flat `service_token: <token>` is not supported: write `service_token: { token: ${JIRA_SERVICE_TOKEN} }`)"
      ])
      for (const t of [flat.message, util.inspect(flat, { depth: Infinity })]) {
        expect(t).not.toContain("jira-SECRET-123")
        expect(t).not.toContain("pa ss")
      }
    })

    it("never prints a secret, even when it has the wrong type", () => {
      const error = errorOf({ ...base, client_secret: 987654321, service_token: { token: 123456789, function: "x#y" } })
      const text = [error.message, String(error), JSON.stringify(error), util.inspect(error, { depth: Infinity })]
      for (const t of text) {
        expect(t).not.toContain("987654321")
        expect(t).not.toContain("123456789")
      }
    })
  })

  describe("where the token endpoint comes from (token_url, issuer, discovery)", () => {
    const { token_url: _, ...noUrl } = base
    const decoded = (input: Record<string, unknown>) => ServiceAccountConfig.decodeSync(input)

    it("issuer alone: discovered from its metadata; allowed_issuers alone: from the MCP server", () => {
      expect(decoded({ ...noUrl, issuer: "https://idp.example.com" }).discovery).toEqual({
        from: "issuer",
        trusted: ["https://idp.example.com"],
        chooseAuthMethod: true,
        chooseScopes: false
      })
      const fromServer = decoded({
        ...noUrl,
        scopes: undefined,
        allowed_issuers: "https://a.example https://b.example"
      })
      expect(fromServer.discovery).toEqual({
        from: "mcp_server",
        trusted: ["https://a.example", "https://b.example"],
        chooseAuthMethod: true,
        chooseScopes: true
      })
      expect(fromServer.tokenUrl).toBeUndefined()
      expect(decoded({ ...noUrl, issuer: "https://idp.example.com", discover: "true" }).discovery?.from).toBe(
        "mcp_server"
      )
      expect(decoded({ ...base, auth_method: "client_secret_post", issuer: "https://x.example" }).discovery)
        .toBeUndefined()
    })

    it("refuses what would be ignored or would trust nothing", () => {
      expect(issuesOf(noUrl)).toEqual([expect.stringMatching(/^token_url: token_url is required: .* or set issuer/)])
      expect(issuesOf({ ...base, discover: true })).toEqual([
        "discover: discover: true finds the token endpoint from the MCP server: remove token_url, or remove discover"
      ])
      expect(issuesOf({ ...base, allowed_issuers: ["https://idp.example.com"] })).toEqual([
        "allowed_issuers: allowed_issuers applies to discovery from the MCP server: remove it, or remove token_url"
      ])
      expect(issuesOf({ ...noUrl, allowed_issuers: ["https://a.example"], discover: false })).toEqual([
        expect.stringContaining("token_url is required with discover: false")
      ])
      expect(issuesOf({ ...noUrl, issuer: "https://a.example", allowed_issuers: ["https://b.example"] })).toEqual([
        "allowed_issuers: allowed_issuers applies to discovery from the MCP server: set discover: true, or remove it"
      ])
    })

    it("every trusted issuer is https (http only on loopback), as a list or as one string", () => {
      expect(issuesOf({ ...noUrl, allowed_issuers: "http://idp.example.com" })).toEqual([
        "allowed_issuers.0: allowed_issuers.0 must use https: http is allowed only for loopback hosts"
      ])
      expect(issuesOf({ ...noUrl, allowed_issuers: "https://ok.example ftp://u:p@idp.example.com#x" })).toEqual([
        "allowed_issuers.1: allowed_issuers.1 must use https, got ftp",
        "allowed_issuers.1: allowed_issuers.1 must not contain credentials: use client_id and client_secret",
        "allowed_issuers.1: allowed_issuers.1 must not have a #fragment"
      ])
      expect(issuesOf({ ...noUrl, allowed_issuers: " , " })).toEqual([
        "allowed_issuers: allowed_issuers names no issuer: give issuer URLs, or remove it",
        expect.stringMatching(/^token_url: token_url is required/)
      ])
      expect(issuesOf({ ...noUrl, issuer: "http://idp.example.com" })).toEqual([
        "issuer: issuer must use https: http is allowed only for loopback hosts"
      ])
    })
  })

  describe("shared_cache", () => {
    it("decodes the block: the URL and keys stay redacted, the rest has its defaults", () => {
      const config = ServiceAccountConfig.decodeSync({
        ...base,
        shared_cache: { url: "rediss://svc:p4ss@redis.internal:6380/2", encryption_key: "ab".repeat(32) }
      })
      expect(config.sharedCache).toMatchObject({ keyPrefix: "mcp-auth", lockLeaseSeconds: 30, waitSeconds: 5 })
      expect(Redacted.isRedacted(config.sharedCache?.url)).toBe(true)
      expect(Redacted.isRedacted(config.sharedCache?.encryptionKey)).toBe(true)
      expect(util.inspect(config, { depth: 5 })).not.toContain("p4ss")
      expect(ServiceAccountConfig.decodeSync(base).sharedCache).toBeUndefined()
    })

    it("refuses another scheme, a key that is not 32 bytes and a wait as long as the lease, quoting no value", () => {
      const problems = issuesOf({
        ...base,
        shared_cache: {
          url: "http://svc:p4ss@redis.internal",
          encryption_key: "not-a-key-p4ss",
          previous_encryption_keys: ["ab".repeat(32), "short"],
          wait_seconds: 30,
          lock_lease_seconds: 30
        }
      })
      expect(problems).toEqual([
        "shared_cache.url: shared_cache.url must be a redis:// or rediss:// URL, e.g. rediss://user:password@redis:6379/0",
        "shared_cache.encryption_key: shared_cache.encryption_key must be 32 bytes as base64 or hex: generate one " +
        "with openssl rand -base64 32",
        "shared_cache.previous_encryption_keys.1: shared_cache.previous_encryption_keys.1 must be 32 bytes as base64 " +
        "or hex: generate one with openssl rand -base64 32",
        "shared_cache.wait_seconds: shared_cache.wait_seconds must be below shared_cache.lock_lease_seconds: a " +
        "process waiting for a crashed lock holder must give up before the lease ends"
      ])
      expect(problems.join(" ")).not.toContain("p4ss")
    })
  })

  describe("secrets stay redacted", () => {
    it("serializes and inspects the config without the secret or static token", () => {
      const config = ServiceAccountConfig.decodeSync({ ...base, service_token: { token: "svc-static-secret" } })
      for (
        const text of [JSON.stringify(config), util.inspect(config, { depth: Infinity }), String(config.clientSecret)]
      ) {
        expect(text).not.toContain("hunter2-very-secret")
        expect(text).not.toContain("svc-static-secret")
      }
    })
  })

  describe("fromEnv (Effect Config)", () => {
    const run = (env: Record<string, string>) =>
      Effect.runSync(
        Effect.either(ServiceAccountConfig.fromEnv).pipe(
          Effect.withConfigProvider(ConfigProvider.fromMap(new Map(Object.entries(env))))
        )
      )

    it("SERVICE_ACCOUNT_ALLOWED_ISSUERS and SERVICE_ACCOUNT_DISCOVER, checked like YAML", () => {
      const result = run({
        SERVICE_ACCOUNT_CLIENT_ID: "env-client",
        SERVICE_ACCOUNT_CLIENT_SECRET: "env-secret",
        SERVICE_ACCOUNT_ALLOWED_ISSUERS: "https://a.example,https://b.example",
        SERVICE_ACCOUNT_DISCOVER: "true"
      })
      expect(Either.isRight(result) && result.right.discovery?.trusted).toEqual([
        "https://a.example",
        "https://b.example"
      ])
      const insecure = run({
        SERVICE_ACCOUNT_CLIENT_ID: "env-client",
        SERVICE_ACCOUNT_CLIENT_SECRET: "env-secret",
        SERVICE_ACCOUNT_ALLOWED_ISSUERS: "http://idp.example.com"
      })
      expect(Either.isLeft(insecure) && String(insecure.left)).toContain("allowed_issuers.0 must use https")
    })

    it("reads SERVICE_ACCOUNT_* variables, scopes as a space-delimited string", () => {
      const result = run({
        SERVICE_ACCOUNT_CLIENT_ID: "env-client",
        SERVICE_ACCOUNT_CLIENT_SECRET: "env-secret",
        SERVICE_ACCOUNT_TOKEN_URL: "https://idp.example.com/token",
        SERVICE_ACCOUNT_SCOPES: "a b",
        SERVICE_ACCOUNT_TOKEN_CACHE_BUFFER_SECONDS: "60",
        SERVICE_ACCOUNT_SERVICE_TOKEN: "svc"
      })
      expect(Either.isRight(result)).toBe(true)
      if (Either.isRight(result)) {
        expect(result.right.clientId).toBe("env-client")
        expect(result.right.scopes).toEqual(["a", "b"])
        expect(result.right.tokenCacheBufferSeconds).toBe(60)
        expect(result.right.serviceToken?._tag).toBe("Static")
      }
    })

    it("reads the nested retry and failure_cooldown keys, validated like YAML", () => {
      const env = {
        SERVICE_ACCOUNT_CLIENT_ID: "env-client",
        SERVICE_ACCOUNT_CLIENT_SECRET: "env-secret",
        SERVICE_ACCOUNT_TOKEN_URL: "https://idp.example.com/token"
      }
      const defaults = run(env)
      expect(Either.isRight(defaults) && defaults.right.failureCooldown).toEqual({
        initialSeconds: 60,
        maxSeconds: 900
      })
      const result = run({
        ...env,
        SERVICE_ACCOUNT_FAILURE_COOLDOWN_INITIAL_SECONDS: "5",
        SERVICE_ACCOUNT_FAILURE_COOLDOWN_MAX_SECONDS: "40",
        SERVICE_ACCOUNT_RETRY_MAX_ATTEMPTS: "2"
      })
      expect(Either.isRight(result) && result.right.failureCooldown).toEqual({ initialSeconds: 5, maxSeconds: 40 })
      expect(Either.isRight(result) && result.right.retry).toEqual({
        maxAttempts: 2,
        initialBackoffSeconds: 0.5,
        maxBackoffSeconds: 10,
        maxElapsedSeconds: 30
      })
      const crossed = run({ ...env, SERVICE_ACCOUNT_FAILURE_COOLDOWN_INITIAL_SECONDS: "1000" })
      expect(Either.isLeft(crossed) && String(crossed.left)).toContain(
        "failure_cooldown.max_seconds must be ≥ failure_cooldown.initial_seconds"
      )
      const renamed = run({ ...env, SERVICE_ACCOUNT_INVALID_CREDENTIALS_COOLDOWN_SECONDS: "60" })
      expect(Either.isLeft(renamed) && String(renamed.left)).toContain(
        "SERVICE_ACCOUNT_INVALID_CREDENTIALS_COOLDOWN_SECONDS has been renamed: use SERVICE_ACCOUNT_FAILURE_COOLDOWN_INITIAL_SECONDS"
      )
      expect(ServiceAccountConfig.envVariables).toContainEqual({
        key: "failure_cooldown.max_seconds",
        variable: "SERVICE_ACCOUNT_FAILURE_COOLDOWN_MAX_SECONDS"
      })
    })

    it("names the missing variables", () => {
      const result = run({ SERVICE_ACCOUNT_CLIENT_SECRET: "x" })
      expect(Either.isLeft(result)).toBe(true)
      if (Either.isLeft(result)) {
        const text = String(result.left)
        expect(text).toContain("client_id is required: set it in the config or via SERVICE_ACCOUNT_CLIENT_ID")
        expect(text).toContain("token_url is required")
      }
    })
  })

  describe("fieldDocs", () => {
    it("lists every field of the Schema, nested ones included", () => {
      const names = ServiceAccountConfig.fieldDocs.map((f) => f.name)
      for (const key of Object.keys(ServiceAccountConfig.ServiceAccountConfigInput.fields)) expect(names).toContain(key)
      for (const key of Object.keys(ServiceAccountConfig.ServiceTokenInput.fields)) {
        expect(names).toContain(`service_token.${key}`)
      }
      for (const key of Object.keys(ServiceAccountConfig.RetryInput.fields)) expect(names).toContain(`retry.${key}`)
      for (const key of Object.keys(ServiceAccountConfig.FailureCooldownInput.fields)) {
        expect(names).toContain(`failure_cooldown.${key}`)
      }
      expect(names).not.toContain("invalid_credentials_cooldown_seconds")
      const buffer = ServiceAccountConfig.fieldDocs.find((f) => f.name === "token_cache_buffer_seconds")
      expect(buffer).toMatchObject({ type: "int", default: 300, required: false })
      expect(ServiceAccountConfig.fieldDocs.find((f) => f.name === "client_secret")).toMatchObject({
        type: "SecretStr | None",
        required: false
      })
      for (const key of Object.keys(ServiceAccountConfig.ClientAssertionInput.fields)) {
        expect(names).toContain(`client_assertion.${key}`)
      }
    })
  })
})
