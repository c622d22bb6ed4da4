import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import { Redis } from "ioredis"
import * as fs from "node:fs"
import * as net from "node:net"
import * as tls from "node:tls"
import * as RedisServer from "../src/RedisServer.js"
import * as TestPki from "../src/TestPki.js"

/** Connects once: `refused` (ECONNREFUSED) or `connected`. */
const tryConnect = (port: number) =>
  new Promise<"refused" | "connected" | string>((resolve) => {
    const socket = net.connect({ port, host: "127.0.0.1" })
    socket.once("connect", () => {
      socket.destroy()
      resolve("connected")
    })
    socket.once("error", (error: NodeJS.ErrnoException) =>
      resolve(error.code === "ECONNREFUSED" ? "refused" : error.code ?? "error"))
  })

/** Sends raw bytes on a plain TCP connection and collects what comes back until the server closes it. */
const rawExchange = (port: number, bytes: string) =>
  new Promise<string>((resolve) => {
    let received = ""
    const socket = net.connect({ port, host: "127.0.0.1" }, () => socket.write(bytes))
    socket.setEncoding("utf8")
    socket.on("data", (chunk: string) => (received += chunk))
    socket.once("error", () => resolve(received))
    socket.once("close", () => resolve(received))
  })

/** A TLS handshake with 127.0.0.1:port trusting only `ca`: `ok` or the error code. */
const handshake = (port: number, ca: string) =>
  new Promise<string>((resolve) => {
    const socket = tls.connect({ port, host: "127.0.0.1", ca }, () => {
      socket.destroy()
      resolve("ok")
    })
    socket.once("error", (error: NodeJS.ErrnoException) => resolve(error.code ?? error.message))
  })

/** An ioredis client that does not retry, so a failure surfaces instead of being retried forever. */
const client = (url: string, options: { readonly ca?: string } = {}) => {
  const redis = new Redis(url, {
    lazyConnect: true,
    maxRetriesPerRequest: 0,
    retryStrategy: () => null,
    enableOfflineQueue: false,
    ...(options.ca === undefined ? {} : { tls: { ca: options.ca } })
  })
  // failures surface through the rejected promises the tests assert on
  redis.on("error", () => {})
  return redis
}

const withClient = async <A>(redis: Redis, f: (redis: Redis) => Promise<A>): Promise<A> => {
  try {
    await redis.connect()
    return await f(redis)
  } finally {
    redis.disconnect()
  }
}

describe("RedisServer", () => {
  it("starts on a loopback port with persistence off; PING, SET and GET through cli() and ioredis", async () => {
    const redis = await RedisServer.start()
    try {
      expect(redis.url).toBe(`redis://127.0.0.1:${redis.port}`)
      expect(redis.urlWithCredentials).toBe(redis.url)
      expect(redis.tls).toBe(false)
      expect(redis.caFile).toBeUndefined()
      expect(redis.running).toBe(true)
      expect(fs.statSync(redis.dir).isDirectory()).toBe(true)
      expect(await redis.cli(["PING"])).toBe("PONG")
      expect(await redis.cli(["SET", "greeting", "hello world"])).toBe("OK")
      expect(await redis.cli(["GET", "greeting"])).toBe("hello world")
      expect(await redis.cli(["CONFIG", "GET", "save"])).toBe("save\n")
      expect(await redis.cli(["CONFIG", "GET", "appendonly"])).toBe("appendonly\nno")
      expect(await redis.cli(["CONFIG", "GET", "bind"])).toBe("bind\n127.0.0.1")
      expect(await redis.cli(["CONFIG", "GET", "dir"])).toBe(`dir\n${fs.realpathSync(redis.dir)}`)
      await withClient(client(redis.url), async (c) => {
        expect(await c.get("greeting")).toBe("hello world")
        await c.set("from-ioredis", "1")
      })
      expect(await redis.cli(["GET", "from-ioredis"])).toBe("1")
    } finally {
      await redis.close()
    }
  })

  it("with a password: unauthenticated commands are refused; cli() and the credentials URL authenticate", async () => {
    const redis = await RedisServer.start({ password: "s3cret:/@" })
    try {
      expect(redis.urlWithCredentials).toBe(`redis://:${encodeURIComponent("s3cret:/@")}@127.0.0.1:${redis.port}`)
      expect(await redis.cli(["SET", "k", "v"])).toBe("OK")
      expect(await redis.cli(["GET", "k"], { auth: false })).toMatch(/^NOAUTH/)
      expect(await rawExchange(redis.port, "GET k\r\nQUIT\r\n")).toMatch(/^-NOAUTH/)
      await withClient(client(redis.urlWithCredentials), async (c) => expect(await c.get("k")).toBe("v"))
      expect(await rawExchange(redis.port, "AUTH wrong\r\nQUIT\r\n")).toMatch(/^-WRONGPASS/)
    } finally {
      await redis.close()
    }
  })

  it("with an ACL user: the default user is off; cli() and the credentials URL log in as that user", async () => {
    const redis = await RedisServer.start({ user: { username: "fleet", password: "p w%d" } })
    try {
      expect(redis.urlWithCredentials).toBe(`redis://fleet:${encodeURIComponent("p w%d")}@127.0.0.1:${redis.port}`)
      expect(await redis.cli(["ACL", "WHOAMI"])).toBe("fleet")
      expect(await redis.cli(["PING"], { auth: false })).toMatch(/^NOAUTH/)
      await withClient(client(redis.urlWithCredentials), async (c) => {
        expect(await c.call("ACL", "WHOAMI")).toBe("fleet")
        expect(await c.set("k", "v")).toBe("OK")
      })
      expect(await rawExchange(redis.port, "AUTH fleet wrong\r\nQUIT\r\n")).toMatch(/^-WRONGPASS/)
      expect(await rawExchange(redis.port, "AUTH default \"\"\r\nQUIT\r\n")).toMatch(/^-WRONGPASS/)
    } finally {
      await redis.close()
    }
  })

  it("kill() makes the port refuse connections; restart() brings it back on the same port, empty", async () => {
    const redis = await RedisServer.start({ password: "pw" })
    try {
      const port = redis.port
      expect(await redis.cli(["SET", "k", "before"])).toBe("OK")
      await redis.kill()
      expect(redis.running).toBe(false)
      expect(await tryConnect(port)).toBe("refused")
      await expect(redis.cli(["PING"])).rejects.toThrow(/Connection refused/)
      await redis.kill() // idempotent
      await redis.restart()
      expect(redis.running).toBe(true)
      expect(redis.port).toBe(port)
      expect(await redis.cli(["PING"])).toBe("PONG")
      expect(await redis.cli(["DBSIZE"])).toBe("0")
      expect(await redis.cli(["GET", "k"])).toBe("")
      // the same settings after the restart
      expect(await redis.cli(["PING"], { auth: false })).toMatch(/^NOAUTH/)
      // restart() of a running server: a fresh, empty one on the same port
      expect(await redis.cli(["SET", "k", "again"])).toBe("OK")
      await redis.restart()
      expect(await redis.cli(["EXISTS", "k"])).toBe("0")
    } finally {
      await redis.close()
    }
  })

  it("close() stops the server and removes its directory; idempotent", async () => {
    const redis = await RedisServer.start()
    const { dir, port } = redis
    expect(fs.existsSync(dir)).toBe(true)
    await redis.close()
    expect(fs.existsSync(dir)).toBe(false)
    expect(redis.running).toBe(false)
    expect(await tryConnect(port)).toBe("refused")
    await redis.close()
    await expect(redis.restart()).rejects.toThrow(/after close/)
  })

  it("close() after kill() still removes the directory", async () => {
    const redis = await RedisServer.start()
    await redis.kill()
    await redis.close()
    expect(fs.existsSync(redis.dir)).toBe(false)
  })

  it("with TLS: rediss:// URL, TLS only on the port, cli() and ioredis verify the test CA", async () => {
    const pki = await TestPki.shared()
    const redis = await RedisServer.start({ tls: { credentials: pki.server, ca: pki.ca }, password: "pw" })
    try {
      expect(redis.url).toBe(`rediss://127.0.0.1:${redis.port}`)
      expect(redis.urlWithCredentials).toBe(`rediss://:pw@127.0.0.1:${redis.port}`)
      expect(redis.tls).toBe(true)
      expect(fs.readFileSync(redis.caFile!, "utf8")).toBe(pki.ca)
      expect(await redis.cli(["SET", "k", "over tls"])).toBe("OK")
      expect(await redis.cli(["CONFIG", "GET", "port"])).toBe("port\n0")
      // plain RESP on the TLS port gets no reply: the server drops the connection at the failed handshake
      expect(await rawExchange(redis.port, "PING\r\n")).not.toMatch(/PONG|NOAUTH/)
      await withClient(
        client(redis.urlWithCredentials, { ca: pki.ca }),
        async (c) => expect(await c.get("k")).toBe("over tls")
      )
      // a client that does not trust the test CA fails the handshake
      expect(await handshake(redis.port, pki.ca)).toBe("ok")
      expect(await handshake(redis.port, pki.unknownCa.ca)).not.toBe("ok")
      await redis.kill()
      expect(await tryConnect(redis.port)).toBe("refused")
      await redis.restart()
      expect(await redis.cli(["DBSIZE"])).toBe("0")
    } finally {
      await redis.close()
    }
  })

  it("a clear error when redis-server is not installed", async () => {
    const saved = process.env.PATH
    process.env.PATH = "/nonexistent"
    try {
      await expect(RedisServer.start()).rejects.toThrow(RedisServer.notFoundMessage)
    } finally {
      process.env.PATH = saved
    }
    expect(RedisServer.notFoundMessage).toBe("redis-server not found: apt-get install -y redis-server")
  })

  it("a configuration redis-server refuses: the error carries its message", async () => {
    await expect(RedisServer.start({ args: ["--no-such-directive", "x"] })).rejects.toThrow(/Bad directive/)
  })

  it.scoped("make(): a scoped server, closed with the scope", () =>
    Effect.gen(function*() {
      const dir = yield* Effect.scoped(
        Effect.gen(function*() {
          const redis = yield* RedisServer.make({ args: ["--maxmemory", "10mb"] })
          const reply = yield* Effect.promise(() => redis.cli(["CONFIG", "GET", "maxmemory"]))
          expect(reply).toBe("maxmemory\n10485760")
          return redis.dir
        })
      )
      expect(fs.existsSync(dir)).toBe(false)
    }))
})
