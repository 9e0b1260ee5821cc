/**
 * `effect-amp tap LISTEN TARGET`: a transparent proxy that prints every box
 * going through it (direction, connection number, time; answers and errors
 * with their ask's command and latency). Each chunk read from one side is
 * written to the other before it is looked at, unchanged and in order;
 * reading is a copy (`TapStream`), so nothing it finds, or fails to
 * parse, changes what is forwarded. Backpressure carries through: a side
 * that reads slowly slows the other side's sender.
 *
 * StartTLS: the handshake records are shown, the rest is marked opaque. The
 * tap does not terminate TLS: it would have to present its own certificate
 * to the client and make a second session to the target, so neither side
 * would get the other's bytes (or certificate) any more.
 *
 * @since 0.1.0
 */
import * as fs from "node:fs"
import * as net from "node:net"
import * as Args from "@effect/cli/Args"
import * as CliCommand from "@effect/cli/Command"
import * as Options from "@effect/cli/Options"
import * as Console from "effect/Console"
import * as Effect from "effect/Effect"
import type { AmpBox } from "../AmpBox.js"
import { decodeUtf8Lenient } from "../AmpBox.js"
import type { Address } from "../node/NodeConnect.js"
import { toJsonText } from "./BoxJson.js"
import { CliExit, exitWith } from "./Exit.js"
import * as Log from "./Log.js"
import * as Target from "./Target.js"
import * as TapStream from "./TapStream.js"

type Plain = Exclude<Address, { readonly _tag: "tls" }>

const plainAddress = (text: string, what: "LISTEN" | "TARGET"): Plain | string => {
  const a = Target.parse(text, { listen: what === "LISTEN" })
  if (typeof a === "string") return a
  if (a._tag === "tls") {
    return `${what} ${text}: the tap forwards bytes as they are and does not speak TLS itself; use tcp: or unix: (StartTLS inside AMP is shown)`
  }
  return a
}

const addressText = (a: Plain): string => (a._tag === "unix" ? `unix:${a.path}` : `tcp:${a.host.includes(":") ? `[${a.host}]` : a.host}:${a.port}`)

const clock = (epochMs: number): string => new Date(epochMs).toISOString().slice(11, 23)

const get = (box: AmpBox, key: string) => {
  const v = box.get(key)
  return v === undefined ? "" : decodeUtf8Lenient(v)
}

/** How one event is printed. */
const render = (json: boolean, conn: number, e: TapStream.Event | { readonly kind: "open" | "close" | "fail"; readonly at: number; readonly detail: string }, epoch: number): string => {
  const wall = epoch + e.at
  if (json) {
    const base: Record<string, unknown> = { time: new Date(wall).toISOString(), conn }
    switch (e.kind) {
      case "open":
      case "close":
      case "fail":
        return JSON.stringify({ ...base, kind: e.kind, detail: e.detail })
      case "ask":
        return `${JSON.stringify({ ...base, dir: e.dir, kind: e.kind, tag: e.tag, command: e.command }).slice(0, -1)},"box":${toJsonText(e.box)}}`
      case "note":
        return `${JSON.stringify({ ...base, dir: e.dir, kind: e.kind, command: e.command }).slice(0, -1)},"box":${toJsonText(e.box)}}`
      case "answer":
      case "error": {
        const head = JSON.stringify({
          ...base,
          dir: e.dir,
          kind: e.kind,
          tag: e.tag,
          ...(e.command !== undefined ? { command: e.command } : {}),
          ...(e.latencyMs !== undefined ? { latencyMs: Math.round(e.latencyMs * 1000) / 1000 } : {})
        })
        return `${head.slice(0, -1)},"box":${toJsonText(e.box)}}`
      }
      case "box":
        return `${JSON.stringify({ ...base, dir: e.dir, kind: e.kind }).slice(0, -1)},"box":${toJsonText(e.box)}}`
      case "tls":
        return JSON.stringify({ ...base, dir: e.dir, kind: e.kind, record: e.record, bytes: e.bytes })
      case "opaque":
      case "raw":
        return JSON.stringify({ ...base, dir: e.dir, kind: e.kind, bytes: e.bytes, total: e.total })
      case "violation":
        return JSON.stringify({ ...base, dir: e.dir, kind: e.kind, offset: e.offset, detail: e.detail })
    }
  }
  const head = `${clock(wall)} #${conn}`
  switch (e.kind) {
    case "open":
      return `${head} open ${e.detail}`
    case "close":
      return `${head} closed ${e.detail}`
    case "fail":
      return `${head} failed ${e.detail}`
    default:
  }
  const arrow = e.dir === "c>s" ? "->" : "<-"
  const ms = (x: number | undefined) => (x === undefined ? "(ask not seen)" : `${x.toFixed(1)}ms`)
  switch (e.kind) {
    case "ask":
      return `${head} ${arrow} ask ${e.tag} ${e.command} ${toJsonText(e.box, ["_command", "_ask"])}`
    case "note":
      return `${head} ${arrow} call ${e.command} (no answer wanted) ${toJsonText(e.box, ["_command"])}`
    case "answer":
      return `${head} ${arrow} answer ${e.tag} ${e.command ?? "?"} ${ms(e.latencyMs)} ${toJsonText(e.box, ["_answer"])}`
    case "error":
      return `${head} ${arrow} error ${e.tag} ${e.command ?? "?"} ${ms(e.latencyMs)} ${get(e.box, "_error_code")}: ${get(e.box, "_error_description")}`
    case "box":
      return `${head} ${arrow} box ${toJsonText(e.box)}`
    case "tls":
      return `${head} ${arrow} tls ${e.record} (${e.bytes} bytes)`
    case "opaque":
      return `${head} ${arrow} opaque ${e.bytes} bytes (${e.total} encrypted so far)`
    case "raw":
      return `${head} ${arrow} raw ${e.bytes} bytes (${e.total} so far)`
    case "violation":
      return `${head} ${arrow} violation at byte ${e.offset}: ${e.detail}; forwarded as is, the rest counted as raw bytes`
  }
}

/** Forwards `from` to `to` unchanged, pausing `from` while `to` is full; `seen` gets a copy after the write. */
const forward = (from: net.Socket, to: net.Socket, seen: (chunk: Buffer) => void, ended: () => void) => {
  from.on("data", (chunk: Buffer) => {
    if (!to.write(chunk)) {
      from.pause()
      to.once("drain", () => from.resume())
    }
    seen(chunk)
  })
  // What was written is flushed before the half-close, so nothing already read is lost.
  from.on("end", () => {
    ended()
    to.end()
  })
}

/** The `tap` subcommand. */
export const command = CliCommand.make(
  "tap",
  {
    listen: Args.text({ name: "LISTEN" }).pipe(Args.withDescription("where clients connect: tcp:HOST:PORT (port 0 picks one) or unix:PATH")),
    target: Args.text({ name: "TARGET" }).pipe(Args.withDescription("the AMP server: tcp:HOST:PORT or unix:PATH")),
    json: Options.boolean("json").pipe(Options.withDescription("print one JSON object per event instead of text")),
    switches: Options.text("switch").pipe(
      Options.repeated,
      Options.withDescription("a command whose successful answer switches protocols (repeatable): the bytes after it are counted as raw")
    ),
    logFormat: Log.formatOption
  },
  (o) =>
    Effect.gen(function*() {
      const listen = plainAddress(o.listen, "LISTEN")
      if (typeof listen === "string") return yield* exitWith(2, listen)
      const target = plainAddress(o.target, "TARGET")
      if (typeof target === "string") return yield* exitWith(2, target)
      const epoch = Date.now() - performance.now()
      const print = (line: string) => void process.stdout.write(`${line}\n`)
      let connections = 0
      const sockets = new Set<net.Socket>()

      const onClient = (client: net.Socket) => {
        const conn = ++connections
        const say = (e: Parameters<typeof render>[2]) => print(render(o.json, conn, e, epoch))
        const peer = client.remoteAddress !== undefined ? `${client.remoteAddress}:${client.remotePort}` : "unix"
        client.pause()
        sockets.add(client)
        const upstream = target._tag === "unix"
          ? net.connect({ path: target.path, allowHalfOpen: true })
          : net.connect({ host: target.host, port: target.port, allowHalfOpen: true })
        sockets.add(upstream)
        let broken = false
        const reader = TapStream.make((e) => {
          if (!broken) say(e)
        }, { switches: o.switches })
        // The reader only looks: whatever it throws, the bytes keep flowing.
        const look = (dir: TapStream.Dir, f: () => void) => {
          if (broken) return
          try {
            f()
          } catch (e) {
            broken = true
            say({ kind: "fail", at: performance.now(), detail: `cannot read the ${dir} stream any further (${(e as Error).message}); still forwarding` })
          }
        }
        let connected = false
        let open = 2
        const closed = (why: string) => {
          if (--open === 0) say({ kind: "close", at: performance.now(), detail: why })
        }
        upstream.once("connect", () => {
          connected = true
          say({ kind: "open", at: performance.now(), detail: `${peer} -> ${addressText(target)}` })
          forward(client, upstream, (c) => look("c>s", () => reader.push("c>s", c)), () => look("c>s", () => reader.end("c>s")))
          forward(upstream, client, (c) => look("s>c", () => reader.push("s>c", c)), () => look("s>c", () => reader.end("s>c")))
          client.resume()
        })
        let why = "both sides finished"
        for (const [s, other, name] of [[client, upstream, "client"], [upstream, client, "target"]] as const) {
          s.on("error", (e: NodeJS.ErrnoException) => {
            if (!connected && s === upstream) {
              say({ kind: "fail", at: performance.now(), detail: `cannot connect to ${addressText(target)}: ${e.message}` })
            } else {
              why = `${name}: ${e.code ?? e.message}`
            }
            // Whatever reached us is written before the other side closes.
            other.end()
          })
          s.on("close", () => {
            sockets.delete(s)
            if (connected) closed(why)
            else other.destroy()
          })
        }
      }

      const server = net.createServer({ allowHalfOpen: true, pauseOnConnect: true }, onClient)
      yield* Effect.acquireRelease(
        Effect.async<void, Error>((resume) => {
          server.once("error", (e) => resume(Effect.fail(e)))
          if (listen._tag === "unix") {
            if (fs.existsSync(listen.path) && fs.statSync(listen.path).isSocket()) fs.unlinkSync(listen.path)
            server.listen(listen.path, () => resume(Effect.void))
          } else {
            server.listen(listen.port, listen.host, () => resume(Effect.void))
          }
        }),
        () =>
          Effect.async<void>((resume) => {
            server.close(() => resume(Effect.void))
            for (const s of sockets) s.end()
            setTimeout(() => sockets.forEach((s) => s.destroy()), 1000).unref()
          })
      )
      const bound = server.address()
      const where = typeof bound === "object" && bound !== null
        ? addressText({ _tag: "tcp", host: bound.address, port: bound.port })
        : addressText(listen)
      yield* Console.log(`listening on ${where}`)
      yield* Effect.logInfo(`tap: ${where} -> ${addressText(target)}`)
      return yield* Effect.never
    }).pipe(
      Effect.scoped,
      Effect.catchAll((e) => (e instanceof CliExit ? Effect.fail(e) : exitWith(2, `effect-amp tap: cannot listen on ${o.listen}: ${e.message}`))),
      Log.withFormat(o.logFormat)
    )
).pipe(CliCommand.withDescription("A transparent proxy that prints every box between an AMP client and server"))
