/**
 * Idle connections are cheap: a server (the demo, in a child process of its
 * own, measured there after full GCs) holding a thousand connections that
 * each sent part of a box and then nothing keeps about the bytes it was
 * sent, not the reads they came in or the sizes the peer announced; and
 * once they close, its memory is back where it started.
 *
 * Three kinds of idle connection, in turn:
 * - `half`: half a box, alone (the read is the size of the bytes);
 * - `tail`: 600 whole boxes and half a box in one write (the read is ~18 KB;
 *   the half box must not keep it alive);
 * - `announce`: a value announced at 60,000 bytes, of which 400 arrive, then
 *   400 more in a later read (the decoder must not reserve what was only
 *   announced);
 * - `answered`: a `Sum` ask, whose answer it reads, then half a box (the
 *   server has written: its write path must not keep a slab per connection).
 *
 * The server runs as `effect-amp serve` runs it: compiled code on plain node
 * (the fixture bundled with esbuild), not through tsx, whose transform names
 * every function (`keepNames`) and so adds ~20 KB of property arrays to each
 * connection's closures.
 */
import { describe, expect, it } from "@effect/vitest"
import { fork } from "node:child_process"
import * as fs from "node:fs"
import * as net from "node:net"
import * as os from "node:os"
import * as path from "node:path"
import * as Effect from "effect/Effect"
import type * as Scope from "effect/Scope"

const N = 1000
/** Heap + buffers per idle connection, at most: issue 11's 16 KB (see the test). */
const TOTAL_BOUND = 16 * 1024

interface Measure {
  readonly connections: number
  /** Bytes read from the connections still open. */
  readonly bytesRead: number
  readonly heapUsed: number
  readonly external: number
  readonly arrayBuffers: number
  readonly rss: number
}

const field = (key: string, value: string | Uint8Array, length?: number): Buffer => {
  const k = Buffer.from(key, "latin1")
  const v = typeof value === "string" ? Buffer.from(value, "latin1") : Buffer.from(value)
  const out = Buffer.alloc(4 + k.length + v.length)
  out.writeUInt16BE(k.length, 0)
  k.copy(out, 2)
  out.writeUInt16BE(length ?? v.length, 2 + k.length)
  v.copy(out, 4 + k.length)
  return out
}
const END = Buffer.from([0, 0])

/** An `Echo` ask of 900 characters, cut in half: 467 bytes. */
const echo = Buffer.concat([field("_ask", "1"), field("_command", "Echo"), field("text", "x".repeat(900)), END])
const halfBox = echo.subarray(0, echo.length >> 1)
/** A `Sum` without `_ask`: dispatched, never answered (nothing is written back). */
const sum = Buffer.concat([field("_command", "Sum"), field("a", "1"), field("b", "2"), END])
const tail = Buffer.concat([...Array<Buffer>(600).fill(sum), halfBox])
/** A `Sum` ask (answered) and half a box. */
const asked = Buffer.concat([field("_ask", "1"), field("_command", "Sum"), field("a", "1"), field("b", "2"), END, halfBox])
/** An `Echo` whose `text` says 60,000 bytes; it gets 400, then 400 more. */
const announced = Buffer.concat([field("_ask", "1"), field("_command", "Echo"), field("text", "y".repeat(400), 60_000)])
const more = Buffer.alloc(400, 0x79)

type Kind = "half" | "tail" | "announce" | "answered"
const kinds: ReadonlyArray<Kind> = ["half", "tail", "announce", "answered"]
const first: Record<Kind, Buffer> = { half: halfBox, tail, announce: announced, answered: asked }

/**
 * The fixture compiled into one plain-node script in a temporary directory
 * (removed with the scope), with esbuild: tsx's own, as the benchmark's
 * children are bundled.
 */
const bundleFixture: Effect.Effect<string, never, Scope.Scope> = Effect.gen(function*() {
  const dir = yield* Effect.acquireRelease(
    Effect.sync(() => fs.mkdtempSync(path.join(os.tmpdir(), "effect-amp-idle-"))),
    (dir) => Effect.sync(() => fs.rmSync(dir, { recursive: true, force: true }))
  )
  const script = path.join(dir, "idle-server.mjs")
  yield* Effect.promise(async () => {
    const name = "esbuild" // tsx's and vite's, not a dependency of ours
    const esbuild = (await import(name)) as { readonly build: (o: Record<string, unknown>) => Promise<unknown> }
    await esbuild.build({
      entryPoints: [path.join(import.meta.dirname, "fixtures", "idle-server.ts")],
      bundle: true,
      platform: "node",
      format: "esm",
      target: "node20",
      outfile: script,
      logLevel: "silent"
    })
  })
  return script
})

/** The fixture server, with a way to ask it for its memory; killed with the scope. */
const startServer: Effect.Effect<{ readonly port: number; readonly measure: Effect.Effect<Measure> }, never, Scope.Scope> =
  Effect.gen(function*() {
    const script = yield* bundleFixture
    const child = yield* Effect.acquireRelease(
      Effect.sync(() =>
        fork(script, [], {
          execArgv: ["--expose-gc"],
          stdio: ["ignore", "inherit", "inherit", "ipc"]
        })
      ),
      (child) => Effect.sync(() => child.kill("SIGKILL"))
    )
    const reply = <A>(op: string | undefined) =>
      Effect.async<A>((resume) => {
        const on = (m: { readonly op: string } & A) => {
          if (op === undefined ? m.op === "listening" : m.op === op) {
            child.off("message", on)
            resume(Effect.succeed(m))
          }
        }
        child.on("message", on)
        if (op !== undefined) child.send({ op })
      })
    const { port } = yield* reply<{ readonly port: number }>(undefined).pipe(
      Effect.timeoutFail({ duration: "20 seconds", onTimeout: () => new Error("the fixture server did not start") }),
      Effect.orDie
    )
    return { port, measure: reply<Measure>("measure") }
  })

/**
 * Opens a connection that sends `bytes` and keeps it (destroyed with the scope, or by the caller); with
 * `answered`, once the first bytes of an answer have come back.
 */
const open = (port: number, bytes: Uint8Array, answered: boolean): Effect.Effect<net.Socket, never, Scope.Scope> =>
  Effect.acquireRelease(
    Effect.async<net.Socket>((resume) => {
      const socket = net.createConnection({ host: "127.0.0.1", port }, () => {
        socket.write(bytes)
        if (answered) socket.once("data", () => resume(Effect.succeed(socket)))
        else resume(Effect.succeed(socket))
      })
      socket.on("error", () => undefined)
    }),
    (socket) => Effect.sync(() => socket.destroy())
  )

/** Measures until `ready` holds, at most 60 tries 200 ms apart. */
const measureWhen = (measure: Effect.Effect<Measure>, ready: (m: Measure) => boolean, what: string) =>
  Effect.gen(function*() {
    let m = yield* measure
    for (let i = 0; i < 60 && !ready(m); i++) {
      yield* Effect.sleep("200 millis")
      m = yield* measure
    }
    if (!ready(m)) return yield* Effect.dieMessage(`${what}: not reached, last measure ${JSON.stringify(m)}`)
    return m
  })

/**
 * Opens `n` idle connections of every kind in turn and waits until the server
 * has read their first parts; then sends the `announce` ones their second
 * part (a later read) and waits until that is read too. Returns the sockets
 * and the server's memory then.
 */
const holdIdle = (port: number, measure: Effect.Effect<Measure>, n: number) =>
  Effect.gen(function*() {
    const sockets = yield* Effect.forEach(
      Array.from({ length: n }, (_, i) => kinds[i % kinds.length]!),
      (kind) => Effect.map(open(port, first[kind], kind === "answered"), (socket) => ({ kind, socket })),
      { concurrency: 50 }
    )
    let sent = 0
    for (const { kind } of sockets) sent += first[kind].length
    yield* measureWhen(measure, (m) => m.connections === n && m.bytesRead === sent, `${n} connections, first parts read`)
    for (const { kind, socket } of sockets) {
      if (kind !== "announce") continue
      socket.write(more)
      sent += more.length
    }
    const held = yield* measureWhen(measure, (m) => m.bytesRead === sent, "second parts read")
    return { sockets: sockets.map((s) => s.socket), held }
  })

describe("idle connections", () => {
  it.scopedLive(`${N} connections holding part of a box cost the server little beyond those bytes; closed, nothing stays`, () =>
    Effect.gen(function*() {
      const { measure, port } = yield* startServer
      // Warm-up: the same connections once, closed, so that compiled code and caches are in the baseline.
      yield* Effect.scoped(holdIdle(port, measure, 90))
      yield* measureWhen(measure, (m) => m.connections === 0, "warm-up connections closed")
      const base = yield* measure

      const { held, sockets } = yield* holdIdle(port, measure, N)
      const buffers = (held.external - base.external) / N
      const total = (held.heapUsed + held.external - base.heapUsed - base.external) / N
      const report = `per connection: buffers ${buffers.toFixed(0)} B, heap+buffers ${total.toFixed(0)} B, ` +
        `rss ${((held.rss - base.rss) / N).toFixed(0)} B`
      // What a connection keeps of its read: about the bytes of its box, not its read (18 KB) or its announced value
      // (60 KB). The margin covers the 1 MiB piece of memory that boxes spanning reads are gathered in (~1 KB each).
      expect(buffers, report).toBeLessThanOrEqual(4 * 1024)
      // Everything a connection costs, heap and buffers: its socket, transport, box protocol, dispatcher and the
      // one fiber that reads for it. ~55 KB three rounds ago, 25.8 KB before the last round; about 12 KB since the
      // transport, the protocol, the dispatcher and the server's connections became classes (no closure per step)
      // and the server's fiber stopped keeping an onExit/Scope.extend region per connection.
      expect(total, report).toBeLessThanOrEqual(TOTAL_BOUND)

      for (const s of sockets) s.destroy()
      const after = yield* measureWhen(measure, (m) => m.connections === 0, "connections closed")
      const grown = after.heapUsed + after.external - base.heapUsed - base.external
      expect(grown, `heap+buffers after close: ${grown} B over the start`).toBeLessThanOrEqual(2 * 1024 * 1024)
    }), 60_000)
})
