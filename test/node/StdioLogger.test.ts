/**
 * Stdio.transport over this process's stdout moves Effect's own stdout
 * loggers to stderr for the scope of the fiber that acquired it (and the
 * fibers it forks afterwards), undoes that when the scope closes, and leaves
 * loggers the user installed alone.
 *
 * The streams here are in-memory; the one standing for stdout carries fd 1,
 * which is how the transport recognises stdout besides `process.stdout`
 * itself (ending the real one would end this test worker's output).
 */
import { afterEach, beforeEach, describe, expect, it, vi } from "@effect/vitest"
import { PassThrough } from "node:stream"
import * as Data from "effect/Data"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as FiberRef from "effect/FiberRef"
import * as FiberSet from "effect/FiberSet"
import * as HashSet from "effect/HashSet"
import * as Logger from "effect/Logger"
import * as Scope from "effect/Scope"
import * as Argument from "../../src/Argument.js"
import * as Command from "../../src/Command.js"
import * as Responders from "../../src/Responders.js"
import * as NodeAmp from "../../src/node/NodeAmp.js"
import * as NodeTransport from "../../src/node/NodeTransport.js"
import * as Stdio from "../../src/node/Stdio.js"

// it.live, not it.effect: @effect/vitest's test environment removes the default logger.

/** A stream that passes for this process's stdout (fd 1). */
const fakeStdout = () => Object.assign(new PassThrough(), { fd: 1 })

let logged: Array<string>
let errored: Array<string>
beforeEach(() => {
  logged = []
  errored = []
  vi.spyOn(console, "log").mockImplementation((...args: Array<unknown>) => void logged.push(args.join(" ")))
  vi.spyOn(console, "error").mockImplementation((...args: Array<unknown>) => void errored.push(args.join(" ")))
})
afterEach(() => {
  vi.restoreAllMocks()
})

const loggers = FiberRef.get(FiberRef.currentLoggers)

describe("Stdio.transport and the loggers", () => {
  it.live("over stdout: default logger swapped for a stderr one in scope, restored when it closes", () =>
    Effect.gen(function*() {
      const before = yield* loggers
      expect(HashSet.has(before, Logger.defaultLogger)).toBe(true)
      const scope = yield* Scope.make()
      yield* Stdio.transport(new PassThrough(), fakeStdout()).pipe(Scope.extend(scope))
      const during = yield* loggers
      expect(HashSet.has(during, Logger.defaultLogger)).toBe(false)
      expect(HashSet.size(during)).toBe(HashSet.size(before))
      yield* Effect.logInfo("while serving")
      // Forked afterwards (as the dispatcher's responders are): inherits the stderr logger.
      yield* Effect.logWarning("from a forked fiber").pipe(Effect.fork, Effect.flatMap(Fiber.join))
      const run = yield* FiberSet.makeRuntime<never>().pipe(Scope.extend(scope))
      yield* Fiber.join(run(Effect.logError("from a FiberSet runtime")))
      expect(logged).toEqual([])
      expect(errored).toHaveLength(3)
      expect(errored[0]).toMatch(/level=INFO .*message="while serving"/)
      expect(errored[1]).toMatch(/level=WARN .*message="from a forked fiber"/)
      expect(errored[2]).toMatch(/level=ERROR .*message="from a FiberSet runtime"/)

      yield* Scope.close(scope, Exit.void)
      expect(yield* loggers).toEqual(before)
      yield* Effect.logInfo("after the scope")
      expect(logged).toHaveLength(1)
      expect(logged[0]).toMatch(/level=INFO .*message="after the scope"/)
      expect(errored).toHaveLength(3)
    }))

  it.live("over any other stream: the loggers are untouched", () =>
    Effect.scoped(Effect.gen(function*() {
      const before = yield* loggers
      yield* Stdio.transport(new PassThrough(), new PassThrough())
      expect(yield* loggers).toEqual(before)
      yield* Effect.logInfo("to stdout as usual")
      expect(logged).toHaveLength(1)
      expect(errored).toEqual([])
    })))

  it.live("a logger the user installed is left alone; only Effect's default one moves", () => {
    const mine: Array<unknown> = []
    const custom = Logger.make(({ message }) => void mine.push(message))
    const json = Logger.withConsoleLog(Logger.jsonLogger)
    return Effect.scoped(Effect.gen(function*() {
      yield* Stdio.transport(new PassThrough(), fakeStdout())
      const now = yield* loggers
      expect(HashSet.has(now, custom)).toBe(true)
      expect(HashSet.has(now, json)).toBe(true)
      expect(HashSet.has(now, Logger.defaultLogger)).toBe(false)
      yield* Effect.logInfo("hello")
      expect(mine).toEqual([["hello"]])
      // The user's json logger still writes to stdout: theirs to direct.
      expect(logged).toHaveLength(1)
      expect(JSON.parse(logged[0]!)).toMatchObject({ message: "hello", logLevel: "INFO" })
      expect(errored).toEqual([])
    })).pipe(
      Effect.provide(Logger.replace(Logger.defaultLogger, json)),
      Effect.provide(Logger.add(custom))
    )
  })

  it.live("the pretty logger NodeRuntime.runMain installs moves to stderr as well", () =>
    Effect.gen(function*() {
      yield* Effect.scoped(Effect.gen(function*() {
        yield* Stdio.transport(new PassThrough(), fakeStdout())
        expect(HashSet.has(yield* loggers, Logger.prettyLoggerDefault)).toBe(false)
        yield* Effect.logInfo("pretty, on stderr")
      }))
      expect(HashSet.has(yield* loggers, Logger.prettyLoggerDefault)).toBe(true)
      expect(logged).toEqual([])
      expect(errored.join("\n")).toContain("pretty, on stderr")
    }).pipe(Effect.provide(Logger.replace(Logger.defaultLogger, Logger.prettyLoggerDefault))))

  it.live("layerDefaultLoggerToStderr: logs before any transport go to stderr; user loggers kept", () =>
    Effect.gen(function*() {
      const mine: Array<unknown> = []
      const custom = Logger.make(({ message }) => void mine.push(message))
      yield* Effect.logInfo("early").pipe(
        Effect.provide(Stdio.layerDefaultLoggerToStderr),
        Effect.provide(Logger.add(custom))
      )
      yield* Effect.logInfo("outside the layer")
      expect(errored).toHaveLength(1)
      expect(errored[0]).toMatch(/level=INFO .*message=early/)
      expect(mine).toEqual([["early"]])
      expect(logged).toHaveLength(1)
      expect(logged[0]).toMatch(/message="outside the layer"/)
    }))

  it.scopedLive("a responder failing with an unmapped error: UNKNOWN on the stream, the log line on stderr", () =>
    Effect.gen(function*() {
      class Unmapped extends Data.TaggedError("Unmapped")<{ readonly message: string }> {}
      const Boom = Command.make("Boom", { arguments: { n: Argument.Integer }, response: {} })
      const toChild = new PassThrough()
      const fromChild = fakeStdout()
      const served = yield* Stdio.transport(toChild, fromChild)
      yield* NodeAmp.over(served).pipe(
        Effect.provide(Responders.layer(Responders.respond(Boom, () => Effect.die(new Unmapped({ message: "boom" })))))
      )
      const parent = yield* NodeTransport.fromStreams(fromChild, toChild, { role: "client", kind: "stdio" })
      const amp = yield* NodeAmp.over(parent).pipe(Effect.provide(Responders.none))
      const error = yield* Effect.flip(amp.callRemote(Boom, { n: 1n }))
      expect(error._tag).toBe("UnknownRemoteError")
      expect(logged).toEqual([])
      expect(errored.join("\n")).toMatch(/level=ERROR .*AMP responder for Boom failed; dropping the connection/)
    }))
})
