/**
 * Real local servers (127.0.0.1, random ports) for mcp-auth tests, the demo and the benchmarks.
 *
 * @since 0.1.0
 */

/**
 * A real OAuth 2.0 authorization server (oidc-provider, client credentials, JWT access tokens).
 *
 * @since 0.1.0
 */
export * as AuthorizationServer from "./AuthorizationServer.js"

/**
 * RFC 6749 §2.3.1 Basic client credentials: encode and decode.
 *
 * @since 0.1.0
 */
export * as BasicCredentials from "./BasicCredentials.js"

/**
 * An in-process token endpoint at the `HttpClient` boundary, for unit tests with `TestClock`.
 *
 * @since 0.1.0
 */
export * as FakeHttpClient from "./FakeHttpClient.js"

/**
 * A programmable token endpoint for fault tests and benchmarks.
 *
 * @since 0.1.0
 */
export * as FaultTokenEndpoint from "./FaultTokenEndpoint.js"

/**
 * A small hostile HTTP server for tests of what a client does when the server misbehaves: bodies that never end,
 * connections closed mid-response, echoes of what it was sent. The handler is plain Node code; the server counts the
 * bytes it wrote per response, so a test can assert how much it managed to send before the client hung up.
 *
 * @since 0.2.0
 */
export * as HostileServer from "./HostileServer.js"

/**
 * An MCP server (SDK, Streamable HTTP) with bearer-JWT auth and an optional service-token header.
 *
 * @since 0.1.0
 */
export * as McpServer from "./McpServer.js"

/**
 * An "other origin" server recording every request.
 *
 * @since 0.1.0
 */
export * as RecordingServer from "./RecordingServer.js"

/**
 * A real `redis-server` (Debian's package) on 127.0.0.1 for tests and benchmarks: a random free port, persistence
 * off, a temporary directory removed on close; optional password, ACL user and TLS; `kill()` and `restart()` on the
 * same port for fail-open tests, `cli()` for raw reads.
 *
 * @since 0.3.0
 */
export * as RedisServer from "./RedisServer.js"

/**
 * A run-time certificate authority and TLS failure scenarios.
 *
 * @since 0.1.0
 */
export * as TestPki from "./TestPki.js"

/**
 * A real HTTP forward proxy (the `proxy` package) counting CONNECT tunnels and plain proxied requests, with optional
 * Basic proxy authentication.
 *
 * @since 0.3.0
 */
export * as TestProxy from "./TestProxy.js"

/**
 * Types shared by the servers.
 *
 * @since 0.1.0
 */
export * as TestServer from "./TestServer.js"

/**
 * An authorization server and an MCP server wired together.
 *
 * @since 0.1.0
 */
export * as TestStack from "./TestStack.js"
