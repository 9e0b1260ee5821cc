/**
 * Children on fds 3/4 with Twisted on either side: our parent driving a
 * Twisted worker started as ampoule starts them (`StandardIO(stdin=3,
 * stdout=4)`), and a Twisted parent spawning our Node child with ampoule's
 * `childFDs`.
 */
import { describe, expect, it } from "@effect/vitest"
import * as path from "node:path"
import * as Effect from "effect/Effect"
import * as Argument from "../../src/Argument.js"
import * as Command from "../../src/Command.js"
import * as Responders from "../../src/Responders.js"
import * as Child from "../../src/node/Child.js"
import * as NodeAmp from "../../src/node/NodeAmp.js"
import { PYTHON, requireTwisted, runPython } from "../support/twisted.js"

const peers = path.join(import.meta.dirname, "peers")
const Sum = Command.make("Sum", { arguments: { a: Argument.Integer, b: Argument.Integer }, response: { total: Argument.Integer } })
const Quit = Command.make("Quit", { response: { bye: Argument.Unicode } })
const Crash = Command.make("Crash")
const Hang = Command.make("Hang")
const CallBack = Command.make("CallBack", { arguments: { n: Argument.Integer }, response: { total: Argument.Integer } })

/** The parent's own Sum, for the worker's CallBack: it adds 1000 so the test sees whose it was. */
const parentResponders = Responders.layer(Responders.respond(Sum, ({ a, b }) => Effect.succeed({ total: a + b + 1000n })))

const twistedWorker = Effect.suspend(() => {
  requireTwisted()
  return Child.spawn(PYTHON, [path.join(peers, "fds_child.py")])
})

describe("our parent, a Twisted worker on fds 3/4", () => {
  it.scopedLive("Sum; a callback to the parent while the call is outstanding; Quit's QuitBox ends the worker with exit 0", () =>
    Effect.gen(function*() {
      const child = yield* twistedWorker
      const amp = yield* NodeAmp.over(child.transport)
      expect(yield* amp.callRemote(Sum, { a: 2n, b: 3n })).toEqual({ total: 5n })
      expect(yield* amp.callRemote(CallBack, { n: 41n })).toEqual({ total: 1042n })
      expect(yield* amp.callRemote(Quit, {})).toEqual({ bye: "so long" })
      expect((yield* amp.ended)._tag).toBe("ConnectionLost")
      expect(yield* child.exit).toMatchObject({ code: 0, signal: null })
    }).pipe(Effect.provide(parentResponders)))

  it.scopedLive("a worker that crashes mid-call: ConnectionLost for the call, exit code 3", () =>
    Effect.gen(function*() {
      const child = yield* twistedWorker
      const amp = yield* NodeAmp.over(child.transport)
      expect((yield* Effect.flip(amp.callRemote(Crash, {})))._tag).toBe("ConnectionLost")
      expect(yield* child.exit).toMatchObject({ code: 3 })
    }).pipe(Effect.provide(parentResponders)))

  it.scopedLive("a worker that hangs past the timeout: CallTimeout, and the worker still answers", () =>
    Effect.gen(function*() {
      const child = yield* twistedWorker
      const amp = yield* NodeAmp.over(child.transport)
      expect((yield* Effect.flip(amp.callRemote(Hang, {}, { timeout: "200 millis" })))._tag).toBe("CallTimeout")
      expect(yield* amp.callRemote(Sum, { a: 1n, b: 1n })).toEqual({ total: 2n })
    }).pipe(Effect.provide(parentResponders)))
})

describe("a Twisted parent, our child on fds 3/4", () => {
  it("Twisted spawns our Node child with ampoule's childFDs: Sum, then Quit, and the child exits 0", () => {
    const out = runPython(path.join(peers, "fds_parent.py"), [
      process.execPath,
      "--import",
      "tsx",
      path.join(import.meta.dirname, "..", "node", "fixtures", "fds-child.ts")
    ])
    expect(JSON.parse(out.trim().split("\n").at(-1)!)).toEqual({ total: 5, bye: "so long", exit: 0, stdout: "" })
  }, 60_000)
})
