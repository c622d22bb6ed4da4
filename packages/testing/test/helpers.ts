import * as Undici from "@effect/platform-node/Undici"
import * as https from "node:https"

/** Finds the first `.code` in an error's `cause` chain. */
export const errorCode = (error: unknown): string | undefined => {
  let current: unknown = error
  for (let depth = 0; depth < 6 && current !== undefined && current !== null; depth++) {
    const code = (current as { code?: unknown }).code
    if (typeof code === "string") return code
    current = (current as { cause?: unknown }).cause
  }
  return undefined
}

/** GET with node:https trusting `ca`; resolves to the status or rejects with the TLS error. */
export const httpsGet = (url: string, ca: string): Promise<number> =>
  new Promise((resolve, reject) => {
    const req = https.get(url, { ca, agent: false }, (res) => {
      res.resume()
      resolve(res.statusCode ?? 0)
    })
    req.on("error", reject)
  })

/** A `fetch` (undici) trusting only `ca`, plus a destroy function. */
export const fetchTrusting = (ca: string) => {
  const dispatcher = new Undici.Agent({ connect: { ca } })
  const fetch =
    ((url: string | URL, init?: RequestInit) =>
      Undici.fetch(url, { ...(init as Undici.RequestInit), dispatcher })) as unknown as typeof globalThis.fetch
  return { fetch, destroy: () => dispatcher.destroy() }
}

export const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))
