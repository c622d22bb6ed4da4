/**
 * A real `redis-server` (Debian's package) on 127.0.0.1 for tests and benchmarks: a random free port, persistence
 * off (`--save "" --appendonly no`), its working directory a fresh temporary directory removed on close. Optional
 * `requirepass`, an ACL user, and TLS (`rediss://`, the server certificate from {@link TestPki}).
 *
 * The handle can {@link RedisServer.kill} the server (SIGKILL: connections are then refused, for fail-open tests) and
 * {@link RedisServer.restart} it on the same port with an empty dataset; {@link RedisServer.cli} runs `redis-cli`
 * against it for raw reads. Readiness is checked by connecting and sending `PING`, never by sleeping.
 *
 * Ports are drawn below the kernel's ephemeral range (`net.ipv4.ip_local_port_range`), so that neither servers
 * listening on port 0 nor outgoing connections can take the port while the server is killed.
 *
 * Needs `redis-server` and `redis-cli` on `PATH` (`apt-get install -y redis-server`).
 *
 * @since 0.3.0
 */
import type * as Effect from "effect/Effect"
import type * as Scope from "effect/Scope"
import * as childProcess from "node:child_process"
import * as fs from "node:fs"
import * as net from "node:net"
import * as os from "node:os"
import * as path from "node:path"
import * as tls from "node:tls"
import * as internal from "./internal/server.js"
import type { TlsCredentials } from "./TestPki.js"
import type { Started } from "./TestServer.js"

/**
 * @since 0.3.0
 * @category Models
 */
export interface Options {
  /** `requirepass`: the password of the `default` user (default: none, no authentication). */
  readonly password?: string | undefined
  /**
   * An ACL user with every permission (`on >password ~* &* +@all`). Without {@link Options.password} the `default`
   * user is switched off, so every connection must authenticate as this user.
   */
  readonly user?: { readonly username: string; readonly password: string } | undefined
  /**
   * Serve TLS only (`--tls-port`, `--port 0`) with these server credentials (e.g. `TestPki.server`, valid for
   * `127.0.0.1`); `ca` is the CA clients trust (e.g. `TestPki.ca`). Client certificates are not requested.
   */
  readonly tls?: { readonly credentials: TlsCredentials; readonly ca: string } | undefined
  /** Further command-line arguments for `redis-server` (e.g. `["--maxmemory", "10mb"]`). */
  readonly args?: ReadonlyArray<string> | undefined
}

/**
 * @since 0.3.0
 * @category Models
 */
export interface CliOptions {
  /** Authenticate with the configured user or password (default `true`). */
  readonly auth?: boolean | undefined
}

/**
 * @since 0.3.0
 * @category Models
 */
export interface RedisServer {
  /** `redis://127.0.0.1:PORT`, or `rediss://127.0.0.1:PORT` with TLS. */
  readonly url: string
  /**
   * {@link RedisServer.url} with the credentials (percent-encoded): `redis://user:password@…` with an ACL user,
   * `redis://:password@…` with a password only, else `url`.
   */
  readonly urlWithCredentials: string
  readonly host: "127.0.0.1"
  readonly port: number
  readonly tls: boolean
  /** The CA certificate (PEM file) clients trust, with TLS. */
  readonly caFile: string | undefined
  /** The server's temporary working directory (removed on close). */
  readonly dir: string
  /** Whether a `redis-server` process is running (false after {@link RedisServer.kill}). */
  readonly running: boolean
  /** SIGKILL, and resolves once the process is gone: the port then refuses connections. Idempotent. */
  readonly kill: () => Promise<void>
  /** Stops the server if it runs, then starts it again on the same port with an empty dataset; resolves when ready. */
  readonly restart: () => Promise<void>
  /**
   * Runs `redis-cli -h 127.0.0.1 -p PORT … args` (with `--tls --cacert` and the credentials as configured) and
   * resolves with its standard output less the final newline (raw format: `GET` gives the value, an error reply is
   * printed as its text). Rejects when `redis-cli` exits non-zero (e.g. connection refused).
   */
  readonly cli: (args: ReadonlyArray<string>, options?: CliOptions) => Promise<string>
}

/**
 * The error message when `redis-server` is not installed.
 *
 * @since 0.3.0
 * @category Constants
 */
export const notFoundMessage = "redis-server not found: apt-get install -y redis-server"

/**
 * Starts `redis-server` from plain async code and waits until it answers `PING`; call `close()` when done (it stops
 * the server and removes its directory).
 *
 * @since 0.3.0
 * @category Constructors
 */
export const start = async (options: Options = {}): Promise<Started<RedisServer>> => {
  const binary = findOnPath("redis-server")
  if (binary === undefined) throw new Error(notFoundMessage)
  const dir = await fs.promises.mkdtemp(path.join(os.tmpdir(), "mcp-auth-redis-"))
  try {
    let caFile: string | undefined
    const tlsArgs: Array<string> = []
    if (options.tls !== undefined) {
      caFile = path.join(dir, "ca.pem")
      const certFile = path.join(dir, "server.pem")
      const keyFile = path.join(dir, "server-key.pem")
      await fs.promises.writeFile(caFile, options.tls.ca)
      await fs.promises.writeFile(certFile, options.tls.credentials.certPem)
      await fs.promises.writeFile(keyFile, options.tls.credentials.keyPem, { mode: 0o600 })
      tlsArgs.push(
        "--tls-cert-file",
        certFile,
        "--tls-key-file",
        keyFile,
        "--tls-ca-cert-file",
        caFile,
        "--tls-auth-clients",
        "no"
      )
    }
    const authArgs: Array<string> = []
    if (options.password !== undefined) authArgs.push("--requirepass", options.password)
    if (options.user !== undefined) {
      // one token per ACL rule: redis-server quotes each command-line argument
      authArgs.push("--user", options.user.username, "on", `>${options.user.password}`, "~*", "&*", "+@all")
      if (options.password === undefined) authArgs.push("--user", "default", "off")
    }
    const argsFor = (port: number): Array<string> => [
      "--bind",
      "127.0.0.1",
      ...(options.tls === undefined ? ["--port", String(port)] : ["--port", "0", "--tls-port", String(port)]),
      "--protected-mode",
      "no",
      "--save",
      "",
      "--appendonly",
      "no",
      "--daemonize",
      "no",
      "--dir",
      dir,
      "--logfile",
      path.join(dir, "redis.log"),
      ...tlsArgs,
      ...authArgs,
      ...(options.args ?? [])
    ]
    const tlsOptions = options.tls === undefined ? undefined : { ca: options.tls.ca }

    let current: Instance | undefined
    let port = 0
    for (let attempt = 1;; attempt++) {
      port = await freePort()
      try {
        current = await launch(binary, argsFor(port), port, tlsOptions, dir)
        break
      } catch (error) {
        // another process took the port between the check and the bind: draw again
        if (!(error instanceof AddressInUse) || attempt >= 10) throw error
      }
    }

    const scheme = options.tls === undefined ? "redis" : "rediss"
    const url = `${scheme}://127.0.0.1:${port}`
    const urlWithCredentials = options.user !== undefined
      ? `${scheme}://${encodeURIComponent(options.user.username)}:${
        encodeURIComponent(options.user.password)
      }@127.0.0.1:${port}`
      : options.password !== undefined
      ? `${scheme}://:${encodeURIComponent(options.password)}@127.0.0.1:${port}`
      : url

    const stop = async (signal: NodeJS.Signals) => {
      const instance = current
      current = undefined
      if (instance !== undefined) await instance.stop(signal)
    }
    let closing: Promise<void> | undefined
    const close = () => {
      if (closing === undefined) {
        closing = (async () => {
          try {
            await stop("SIGTERM")
          } finally {
            await fs.promises.rm(dir, { recursive: true, force: true })
          }
        })()
      }
      return closing
    }

    const cli = (args: ReadonlyArray<string>, cliOptions: CliOptions = {}): Promise<string> => {
      const auth = cliOptions.auth !== false
      const env: NodeJS.ProcessEnv = { ...process.env }
      delete env.REDISCLI_AUTH
      const password = options.user?.password ?? options.password
      if (auth && password !== undefined) env.REDISCLI_AUTH = password
      const fullArgs = [
        "-h",
        "127.0.0.1",
        "-p",
        String(port),
        ...(caFile === undefined ? [] : ["--tls", "--cacert", caFile]),
        ...(auth && options.user !== undefined ? ["--user", options.user.username] : []),
        ...args
      ]
      return new Promise((resolve, reject) => {
        childProcess.execFile("redis-cli", fullArgs, { env, maxBuffer: 64 * 1024 * 1024 }, (error, stdout, stderr) => {
          if (error !== null) {
            const code = (error as NodeJS.ErrnoException).code
            reject(
              code === "ENOENT"
                ? new Error("redis-cli not found: apt-get install -y redis-tools")
                : new Error(`redis-cli ${args.join(" ")} failed: ${stderr.trim() || stdout.trim() || error.message}`)
            )
          } else {
            resolve(stdout.endsWith("\n") ? stdout.slice(0, -1) : stdout)
          }
        })
      })
    }

    return {
      url,
      urlWithCredentials,
      host: "127.0.0.1",
      port,
      tls: options.tls !== undefined,
      caFile,
      dir,
      get running() {
        return current !== undefined
      },
      kill: () => stop("SIGKILL"),
      restart: async () => {
        if (closing !== undefined) throw new Error("RedisServer: restart after close")
        await stop("SIGTERM")
        // the port is below the ephemeral range, so nothing but another test server can have taken it meanwhile
        for (let attempt = 1;; attempt++) {
          try {
            current = await launch(binary, argsFor(port), port, tlsOptions, dir)
            return
          } catch (error) {
            if (!(error instanceof AddressInUse) || attempt >= 5) throw error
          }
        }
      },
      cli,
      close
    }
  } catch (error) {
    await fs.promises.rm(dir, { recursive: true, force: true })
    throw error
  }
}

/**
 * {@link start} in a scope (closed with it).
 *
 * @since 0.3.0
 * @category Constructors
 */
export const make: (options?: Options) => Effect.Effect<RedisServer, never, Scope.Scope> = internal.scoped(
  (options: Options | undefined) => start(options)
)

// -----------------------------------------------------------------------------
// internal
// -----------------------------------------------------------------------------

/** A liveness bound for start-up (a loaded machine starts redis in milliseconds; this only avoids hanging). */
const readyTimeoutMs = 60_000
/** After SIGTERM, how long before SIGKILL. */
const stopTimeoutMs = 10_000

class AddressInUse extends Error {}

interface Instance {
  readonly stop: (signal: NodeJS.Signals) => Promise<void>
}

const live = new Set<childProcess.ChildProcess>()
let exitHook = false
const track = (child: childProcess.ChildProcess) => {
  live.add(child)
  child.once("exit", () => live.delete(child))
  if (!exitHook) {
    exitHook = true
    // a test process that exits without closing its servers must not leave them running
    process.once("exit", () => {
      for (const c of live) c.kill("SIGKILL")
    })
  }
}

const findOnPath = (name: string): string | undefined => {
  for (const entry of (process.env.PATH ?? "").split(path.delimiter)) {
    if (entry === "") continue
    const candidate = path.join(entry, name)
    try {
      fs.accessSync(candidate, fs.constants.X_OK)
      if (fs.statSync(candidate).isFile()) return candidate
    } catch {
      // not here
    }
  }
  return undefined
}

const ephemeralLow = (): number => {
  try {
    const [low] = fs.readFileSync("/proc/sys/net/ipv4/ip_local_port_range", "utf8").trim().split(/\s+/)
    const n = Number(low)
    return Number.isInteger(n) ? n : 32768
  } catch {
    return 32768
  }
}

const canListen = (port: number): Promise<boolean> =>
  new Promise((resolve) => {
    const server = net.createServer()
    server.once("error", () => resolve(false))
    server.listen({ port, host: "127.0.0.1", exclusive: true }, () => server.close(() => resolve(true)))
  })

/** A free loopback port below the ephemeral range (or any free port, where that range starts too low). */
const freePort = async (): Promise<number> => {
  const high = ephemeralLow() - 1
  const low = 10_000
  if (high - low >= 1_000) {
    for (let i = 0; i < 100; i++) {
      const port = low + Math.floor(Math.random() * (high - low + 1))
      if (await canListen(port)) return port
    }
  }
  return new Promise((resolve, reject) => {
    const server = net.createServer()
    server.once("error", reject)
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address() as net.AddressInfo
      server.close(() => resolve(port))
    })
  })
}

const readLog = (dir: string, stderr: string): string => {
  let log = ""
  try {
    log = fs.readFileSync(path.join(dir, "redis.log"), "utf8")
  } catch {
    // not written yet
  }
  return `${stderr}${log}`.split("\n").filter((line) => line.trim() !== "").slice(-15).join("\n")
}

/** Spawns redis-server and resolves once it answers PING (or NOAUTH: it processes commands). */
const launch = async (
  binary: string,
  args: ReadonlyArray<string>,
  port: number,
  tlsOptions: { readonly ca: string } | undefined,
  dir: string
): Promise<Instance> => {
  // a fresh log per process, so a failure reports this process's lines only
  await fs.promises.rm(path.join(dir, "redis.log"), { force: true })
  const child = childProcess.spawn(binary, args, { stdio: ["ignore", "ignore", "pipe"] })
  track(child)
  let stderr = ""
  child.stderr?.setEncoding("utf8")
  child.stderr?.on("data", (chunk: string) => {
    if (stderr.length < 64 * 1024) stderr += chunk
  })
  const spawnError = new Promise<Error>((resolve) => child.once("error", resolve))
  // "close": the process has exited and its stderr is read to the end; one that failed to spawn may never emit it
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    child.once("close", (code: number | null, signal: NodeJS.Signals | null) => resolve({ code, signal }))
    void spawnError.then(() => resolve({ code: null, signal: null }))
  })
  let hasExited = false
  void exited.then(() => {
    hasExited = true
  })

  const failure = Promise.race([
    exited.then(({ code, signal }) => {
      const output = readLog(dir, stderr)
      const message = `redis-server exited (${
        signal ?? `code ${code}`
      }) before it was ready on 127.0.0.1:${port}:\n${output}`
      return /address already in use/i.test(output) ? new AddressInUse(message) : new Error(message)
    }),
    spawnError.then((error) => (error as NodeJS.ErrnoException).code === "ENOENT" ? new Error(notFoundMessage) : error)
  ])

  const stop = async (signal: NodeJS.Signals) => {
    if (!hasExited) {
      child.kill(signal)
      if (signal !== "SIGKILL") {
        const timer = setTimeout(() => child.kill("SIGKILL"), stopTimeoutMs)
        await exited
        clearTimeout(timer)
      }
    }
    await exited
  }

  const deadline = Date.now() + readyTimeoutMs
  let failed: Error | undefined
  void failure.then((error) => {
    failed = error
  })
  for (;;) {
    const reply = await Promise.race([ping(port, tlsOptions), failure.then(() => "exited" as const)])
    if (failed !== undefined || reply === "exited") {
      await stop("SIGKILL")
      throw failed ?? (await failure)
    }
    if (reply === "ready") return { stop }
    if (Date.now() > deadline) {
      await stop("SIGKILL")
      throw new Error(`redis-server did not answer PING on 127.0.0.1:${port} within ${readyTimeoutMs} ms`)
    }
    // not listening yet: connect again shortly (or as soon as the process exits)
    await Promise.race([new Promise((resolve) => setTimeout(resolve, 20)), failure])
  }
}

/**
 * One connection: `PING`. `ready` for `+PONG` or a `-NOAUTH` error (the server processes commands, authentication
 * aside); `retry` for a refused connection, a closed one, or another reply (e.g. `-LOADING`).
 */
const ping = (port: number, tlsOptions: { readonly ca: string } | undefined): Promise<"ready" | "retry"> =>
  new Promise((resolve) => {
    let settled = false
    let received = ""
    const socket: net.Socket = tlsOptions === undefined
      ? net.connect({ port, host: "127.0.0.1" })
      : tls.connect({ port, host: "127.0.0.1", ca: tlsOptions.ca })
    const done = (result: "ready" | "retry") => {
      if (settled) return
      settled = true
      socket.destroy()
      resolve(result)
    }
    socket.setTimeout(5_000, () => done("retry"))
    socket.once(tlsOptions === undefined ? "connect" : "secureConnect", () => socket.write("PING\r\n"))
    socket.setEncoding("utf8")
    socket.on("data", (chunk: string) => {
      received += chunk
      const end = received.indexOf("\r\n")
      if (end === -1) return
      const line = received.slice(0, end)
      done(line === "+PONG" || line.startsWith("-NOAUTH") ? "ready" : "retry")
    })
    socket.once("error", () => done("retry"))
    socket.once("close", () => done("retry"))
  })
