/**
 * Transports over a pair of streams: this process's kind (stdio) over
 * in-memory pipes, and a child process driven over its stdin and stdout.
 */
import { describe, expect, it } from "@effect/vitest"
import * as path from "node:path"
import { PassThrough, Writable } from "node:stream"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Scope from "effect/Scope"
import { readState } from "../../src/node/internal/diagnostics.js"
import * as Stdio from "../../src/node/Stdio.js"
import { bytes, collect, readBytes, readStream, readToEnd, text } from "./fixtures/support.js"
import { fastPathOf } from "../../src/internal/transportFastPath.js"

const fixture = (name: string) => path.join(import.meta.dirname, "fixtures", name)

describe("Stdio.transport", () => {
  it.scoped("reads one stream, writes the other; kind stdio; StartTLS is unsupported", () =>
    Effect.gen(function*() {
      const input = new PassThrough()
      const output = new PassThrough()
      const written = collect(output)
      const transport = yield* Stdio.transport(input, output)
      expect(transport.info()).toEqual({ kind: "stdio" })
      input.write("from the parent")
      expect(text(yield* readBytes(transport, 15))).toBe("from the parent")
      fastPathOf(transport)!.offer(bytes("to the parent"))
      expect(yield* written.waitFor(13)).toBe("to the parent")
      // A pair of streams has no TLS capability (the box protocol refuses StartTLS with TransportUnsupported).
      expect(transport.startTls).toBeUndefined()
      input.end()
      expect(yield* fastPathOf(transport)!.takeChunks!).toBeUndefined()
    }))

  it.scoped("close ends the output and lets go of the input without destroying it", () =>
    Effect.gen(function*() {
      const input = new PassThrough()
      const output = new PassThrough()
      const written = collect(output)
      const transport = yield* Stdio.transport(input, output)
      fastPathOf(transport)!.offer(bytes("bye"))
      yield* transport.close
      expect(yield* written.waitFor(100)).toBe("bye")
      expect(written.ended()).toBe(true)
      expect(input.destroyed).toBe(false)
      expect(yield* fastPathOf(transport)!.takeChunks!).toBeUndefined()
    }))

  it.scopedLive("an output that never finishes: close gives up after closeTimeoutMillis, and incoming ends", () =>
    Effect.gen(function*() {
      const input = new PassThrough()
      // A write that never completes: the output never emits 'finish'.
      const output = new Writable({ write: () => undefined })
      const transport = yield* Stdio.transport(input, output, { closeTimeoutMillis: 100 })
      fastPathOf(transport)!.offer(bytes("stuck"))
      const started = Date.now()
      yield* transport.close
      expect(Date.now() - started).toBeGreaterThanOrEqual(90)
      expect(output.writableFinished).toBe(false)
      expect(yield* fastPathOf(transport)!.takeChunks!).toBeUndefined()
      // Our own stdio is let go of, not destroyed.
      expect(input.destroyed).toBe(false)
    }))

  it.scoped("detach hands over the leftover, then the buffered bytes, then later ones", () =>
    Effect.gen(function*() {
      const input = new PassThrough()
      const output = new PassThrough()
      const written = collect(output)
      const transport = yield* Stdio.transport(input, output)
      input.write("AMP|one,")
      const first = yield* readBytes(transport, 8)
      input.write("two,")
      yield* Effect.yieldNow()
      while (readState(transport)!.bytes < 4) yield* Effect.yieldNow()
      const raw = yield* transport.detach(first.subarray(4))
      input.end("three")
      expect(yield* readStream(raw.incoming, 13)).toBe("one,two,three")
      yield* raw.write(bytes("ok"))
      expect(yield* written.waitFor(2)).toBe("ok")
    }))
})

describe("Stdio.spawn", () => {
  it.scopedLive("drives a child over its pipes: an echo", () =>
    Effect.gen(function*() {
      const child = yield* Stdio.spawn(process.execPath, [fixture("echo.mjs")])
      expect(child.transport.info()).toEqual({ kind: "child", peerAddress: `child:${child.process.pid}` })
      const payload = Buffer.alloc(200_000, 0x7a)
      fastPathOf(child.transport)!.offer(bytes("hello child;"))
      fastPathOf(child.transport)!.offer(payload)
      const back = yield* readBytes(child.transport, 12 + payload.length)
      expect(text(back.subarray(0, 12))).toBe("hello child;")
      expect(back.length).toBe(12 + payload.length)
      expect("startTls" in child.transport).toBe(false)
    }))

  it.scopedLive("closing the scope ends the child's stdin: it exits on its own", () =>
    Effect.gen(function*() {
      const scope = yield* Scope.make()
      const child = yield* Stdio.spawn(process.execPath, [fixture("echo.mjs")]).pipe(Scope.extend(scope))
      fastPathOf(child.transport)!.offer(bytes("x"))
      yield* readBytes(child.transport, 1)
      yield* Scope.close(scope, Exit.void)
      expect(child.process.exitCode).toBe(0)
      expect(child.process.stdin!.destroyed).toBe(true)
    }))

  it.scopedLive("the child's end is the transport's end", () =>
    Effect.gen(function*() {
      const child = yield* Stdio.spawn(process.execPath, ["-e", "process.stdout.write('last words')"])
      expect(text(yield* readToEnd(child.transport))).toBe("last words")
    }))

  it.scopedLive("a child that ignores its stdin closing gets SIGTERM; one that ignores SIGTERM gets SIGKILL", () =>
    Effect.gen(function*() {
      for (const [args, signal] of [[[], "SIGTERM"], [["--ignore-term"], "SIGKILL"]] as const) {
        const scope = yield* Scope.make()
        const child = yield* Stdio.spawn(process.execPath, [fixture("stubborn.mjs"), ...args], {
          exitTimeoutMillis: 100,
          killTimeoutMillis: 100
        }).pipe(Scope.extend(scope))
        expect(text(yield* readBytes(child.transport, 6))).toBe("ready\n")
        yield* Scope.close(scope, Exit.void)
        expect(child.process.signalCode).toBe(signal)
      }
    }))

  it.scopedLive("a program that does not exist: ConnectError, not found", () =>
    Effect.gen(function*() {
      const error = yield* Effect.flip(Stdio.spawn("/nonexistent/amp-worker", []))
      expect(error).toMatchObject({ _tag: "ConnectError", reason: "not found", address: "child:/nonexistent/amp-worker" })
    }))
})
