/**
 * AMP children over fds 3/4 (ampoule's way), both sides in effect-amp: the
 * child's stdout stays its own, the exit is reported, an answer-then-close
 * ends the child, a crash fails the call in flight, and after the scope no
 * process or descriptor is left. Twisted on either side: test/interop/Child.test.ts.
 */
import { describe, expect, it } from "@effect/vitest"
import * as path from "node:path"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Scope from "effect/Scope"
import * as Demo from "../../src/cli/Demo.js"
import * as Responders from "../../src/Responders.js"
import * as Child from "../../src/node/Child.js"
import * as NodeAmp from "../../src/node/NodeAmp.js"
import { Crash, Hello, Quit } from "./fixtures/fds-child.js"
import { alive, openFds } from "../support/child.js"

const script = path.join(import.meta.dirname, "fixtures", "fds-child.ts")
const spawnChild = (options?: Child.SpawnOptions) => Child.spawn(process.execPath, ["--import", "tsx", script], options)

describe("Child over fds 3/4", () => {
  it.scopedLive("calls a Node child over fds 3/4 while its stdout stays its own; closing the scope ends it (exit 0) and leaves no fd or process", () =>
    Effect.gen(function*() {
      const before = openFds()
      const scope = yield* Scope.make()
      const child = yield* spawnChild({ stdout: "pipe" }).pipe(Scope.extend(scope))
      const out: Array<string> = []
      child.process.stdout!.setEncoding("utf8").on("data", (s: string) => out.push(s))
      const amp = yield* NodeAmp.over(child.transport).pipe(Scope.extend(scope))
      expect(yield* amp.callRemote(Demo.Sum, { a: 2n, b: 3n })).toEqual({ total: 5n })
      const { pid } = yield* amp.callRemote(Hello, {})
      expect(pid).toBe(child.process.pid)
      yield* Scope.close(scope, Exit.void)
      const exit = yield* child.exit
      expect(exit).toMatchObject({ code: 0, signal: null, ok: true })
      expect(out.join("")).toContain("hello from the child's stdout")
      expect(alive(pid)).toBe(false)
      expect(openFds()).toBe(before)
    }).pipe(Effect.provide(Responders.none)))

  it.scopedLive("answer, then close: Quit is answered, then the child sees the end and exits 0", () =>
    Effect.gen(function*() {
      const child = yield* spawnChild()
      const amp = yield* NodeAmp.over(child.transport)
      expect(yield* amp.callRemote(Quit, {})).toEqual({ bye: "so long" })
      expect((yield* amp.ended)._tag).toBe("ConnectionLost")
      expect((yield* child.exit).description).toBe("exit code 0")
    }).pipe(Effect.provide(Responders.none)))

  it.scopedLive("a child that crashes mid-call: the call fails with ConnectionLost, and the exit says code 3", () =>
    Effect.gen(function*() {
      const child = yield* spawnChild()
      const amp = yield* NodeAmp.over(child.transport)
      const error = yield* Effect.flip(amp.callRemote(Crash, {}))
      expect(error._tag).toBe("ConnectionLost")
      expect(yield* child.exit).toMatchObject({ code: 3, ok: false, description: "exit code 3" })
    }).pipe(Effect.provide(Responders.none)))

  it.scopedLive("other descriptors: the child reads fd 5 and writes fd 6", () =>
    Effect.gen(function*() {
      const child = yield* spawnChild({ channel: { _tag: "fds", read: 5, write: 6 }, env: { ...process.env, AMP_FDS: "5,6" } })
      const amp = yield* NodeAmp.over(child.transport)
      expect(yield* amp.callRemote(Demo.Sum, { a: 40n, b: 2n })).toEqual({ total: 42n })
    }).pipe(Effect.provide(Responders.none)))

  it.scopedLive("a program that does not exist: ConnectError, not found; fds 0-2 for AMP are refused", () =>
    Effect.gen(function*() {
      const error = yield* Effect.flip(Child.spawn("/nonexistent/amp-worker", []))
      expect(error).toMatchObject({ _tag: "ConnectError", reason: "not found" })
      const bad = yield* Effect.exit(Child.spawn(process.execPath, [], { channel: { _tag: "fds", read: 1, write: 4 } }))
      expect(Exit.isFailure(bad)).toBe(true)
    }))
})
