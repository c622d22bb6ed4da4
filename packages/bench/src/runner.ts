/**
 * A child process running one scenario for one peer. It gets its job over IPC, sets up, says `ready`, waits for `go`
 * (so that children started together measure together, after every one of them has loaded its modules), measures,
 * and sends its result back. Time marks (`mark`) let the parent attribute the endpoint's recorded requests to phases.
 */
import type { ChildMessage, Job, ParentMessage } from "./protocol.js"
import { type ChildContext, runScenario } from "./scenarios.js"

const send = (message: ChildMessage): Promise<void> =>
  new Promise((resolve) => {
    if (process.send === undefined) throw new Error("runner.ts must be started with an IPC channel")
    process.send(message, undefined, {}, () => resolve())
  })

// "go" / "stop" signals not yet consumed, and a waiter for the next one
const signals: Array<"go" | "stop"> = []
let onSignal: (() => void) | undefined

const job = await new Promise<Job>((resolve) => {
  process.on("message", (message: ParentMessage) => {
    if (message.type === "job") resolve(message.job)
    else {
      signals.push(message.type)
      onSignal?.()
    }
  })
})

const nextSignal = async (): Promise<"go" | "stop"> => {
  while (signals.length === 0) await new Promise<void>((resolve) => (onSignal = resolve))
  return signals.shift()!
}

const context: ChildContext = {
  job,
  ready: async () => {
    await send({ type: "ready" })
    await nextSignal()
  },
  sample: async (data) => {
    await send({ type: "sample", data })
    return (await nextSignal()) === "go"
  },
  mark: (name) => send({ type: "mark", name, at: Date.now() })
}

try {
  const data = await runScenario(context)
  await send({ type: "result", data })
  process.exit(0)
} catch (error) {
  await send({
    type: "error",
    message: error instanceof Error ? `${error.name}: ${error.message}\n${error.stack ?? ""}` : String(error)
  })
  process.exit(1)
}
