/**
 * Black-box helpers for the hostile suite (test/hostile/): the real
 * `effect-amp serve` in a child process, run from source as the CLI tests
 * run it, and raw `node:net` clients that write whatever bytes a test
 * crafts and decode what comes back.
 *
 * - {@link startServe}: the server; its port, pid, RSS, exit; killed when the test ends.
 * - {@link rawClient}: a socket that collects every answer box, or reads nothing until told.
 * - {@link ask}, {@link keyLength}: bytes of a valid request box, and of a bare length prefix.
 */
import { type ChildProcess, spawn } from "node:child_process"
import * as fs from "node:fs"
import * as net from "node:net"
import * as path from "node:path"
import * as readline from "node:readline"
import { onTestFinished } from "vitest"
import * as AmpBox from "../../src/AmpBox.js"
import * as BoxCodec from "../../src/BoxCodec.js"
import { PYTHON, requireTwisted } from "./twisted.js"

const root = path.join(import.meta.dirname, "..", "..")
const main = path.join(root, "src", "cli", "main.ts")

/** A running `effect-amp serve`. */
export interface Served {
  readonly child: ChildProcess
  readonly pid: number
  readonly port: number
  /** Lines the server printed after its first (its logs, today on stdout), the last 2000. */
  readonly lines: Array<string>
  /** Its stderr, the last 64 KiB. */
  readonly stderr: () => string
  /** Resolves when the process exits. */
  readonly exited: Promise<{ readonly code: number | null; readonly signal: NodeJS.Signals | null }>
  /** The server's resident set, in bytes (VmRSS of /proc/PID/status). */
  readonly rss: () => number
}

/** Which server a case runs against: ours, or Twisted's with the same demo commands (twisted_demo.py). */
export type ServerKind = "effect-amp" | "twisted"

/**
 * Starts `effect-amp serve --port 0 ...args` (or, for "twisted", Twisted's
 * demo server; `args` are then ignored) and resolves once it prints
 * `listening on tcp:HOST:PORT`. Its stdout is drained for the rest of its
 * life: a pipe left unread would block the server on its own log lines.
 * The process is killed (SIGKILL) when the current test finishes.
 */
export const startServe = (args: ReadonlyArray<string> = [], kind: ServerKind = "effect-amp"): Promise<Served> => {
  if (kind === "twisted") requireTwisted()
  const [cmd, argv] = kind === "twisted"
    ? [PYTHON, ["-u", path.join(import.meta.dirname, "twisted_demo.py")]]
    : [process.execPath, ["--import", "tsx", main, "serve", "--port", "0", ...args]]
  const child = spawn(cmd, argv, { cwd: root, stdio: ["ignore", "pipe", "pipe"] })
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.once("exit", (code, signal) => resolve({ code, signal }))
  )
  onTestFinished(async () => {
    if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL")
    await exited
  })
  let err = ""
  child.stderr!.setEncoding("utf8").on("data", (s: string) => {
    err += s
    if (err.length > 65536) err = err.slice(-65536)
  })
  const lines: Array<string> = []
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`serve printed nothing within 30 s; stderr: ${err}`)), 30_000)
    child.once("exit", (code) => reject(new Error(`serve exited (${code}) before listening; stderr: ${err}`)))
    let first = true
    readline.createInterface({ input: child.stdout! }).on("line", (line) => {
      if (!first) {
        lines.push(line)
        if (lines.length > 2000) lines.shift()
        return
      }
      first = false
      clearTimeout(timer)
      const m = /^listening on tcp:127\.0\.0\.1:(\d+)$/.exec(line)
      if (!m) return reject(new Error(`unexpected first line from serve: ${line}`))
      resolve({ child, pid: child.pid!, port: Number(m[1]), lines, stderr: () => err, exited, rss: () => rssOf(child.pid!) })
    })
  })
}

/** VmRSS of a process, in bytes. */
export const rssOf = (pid: number): number => {
  const m = /^VmRSS:\s+(\d+) kB$/m.exec(fs.readFileSync(`/proc/${pid}/status`, "utf8"))
  if (!m) throw new Error(`no VmRSS for process ${pid}`)
  return Number(m[1]) * 1024
}

export const MiB = 1024 * 1024

/** The bytes of one request box: `_command`, `_ask` (unless undefined), then `fields`. */
export const ask = (command: string, askId: string | undefined, fields: Readonly<Record<string, string | Uint8Array>>): Uint8Array =>
  BoxCodec.encodeBox(AmpBox.fromEntries([
    ["_command", command],
    ...(askId === undefined ? [] : [["_ask", askId] as const]),
    ...Object.entries(fields)
  ]))

/** A bare 16-bit length prefix, as a hostile peer writes one. */
export const keyLength = (n: number): Uint8Array => Uint8Array.of(n >> 8, n & 0xff)

export const concat = (parts: ReadonlyArray<Uint8Array>): Uint8Array => Buffer.concat(parts)

/** How a raw connection ended. */
export interface Ending {
  /** "end": the server closed cleanly (FIN); "error": a reset or another socket error. */
  readonly how: "end" | "error"
  readonly error?: string
  /** When, in ms since the connection was opened. */
  readonly at: number
}

/** A raw client connection. */
export interface RawClient {
  readonly socket: net.Socket
  /** Every box decoded so far, in arrival order (unless `onBox` was given). */
  readonly boxes: Array<AmpBox.AmpBox>
  /** Bytes received so far. */
  readonly received: () => number
  /** A decode failure in what the server sent (a half-written or corrupt box), if any. */
  readonly decodeError: () => unknown
  /** Whether bytes of an unfinished box are left in the decoder. */
  readonly midBox: () => boolean
  /** Resolves when the connection is closed, however. */
  readonly ended: Promise<Ending>
  readonly isEnded: () => boolean
  /** Writes bytes; resolves once Node has handed them to the kernel. */
  readonly write: (bytes: Uint8Array) => Promise<void>
  /** Starts reading (for a client created with `paused`). */
  readonly startReading: () => void
  /** Resolves once `pred()` holds, or rejects after `ms` saying `what`. */
  readonly until: (pred: () => boolean, ms: number, what: string) => Promise<void>
}

/**
 * Connects to 127.0.0.1:`port`. Answers are decoded with the project's
 * BoxDecoder as they arrive; `paused` reads nothing until `startReading`.
 * `onBox`, when given, sees each box instead of it being kept. The socket is
 * destroyed when the test finishes.
 */
export const rawClient = (
  port: number,
  options: { readonly paused?: boolean; readonly onBox?: (box: AmpBox.AmpBox) => void } = {}
): Promise<RawClient> =>
  new Promise((resolve, reject) => {
    const t0 = performance.now()
    const socket = net.createConnection({ host: "127.0.0.1", port })
    onTestFinished(() => void socket.destroy())
    const boxes: Array<AmpBox.AmpBox> = []
    const decoder = new BoxCodec.BoxDecoder()
    let received = 0
    let decodeError: unknown = undefined
    let ended: Ending | undefined
    const waiters = new Set<() => void>()
    const poke = () => {
      for (const w of waiters) w()
    }
    let endResolve: (e: Ending) => void = () => undefined
    const endedP = new Promise<Ending>((r) => (endResolve = r))
    const finish = (e: Omit<Ending, "at">) => {
      if (ended) return
      ended = { ...e, at: performance.now() - t0 }
      endResolve(ended)
      poke()
    }
    if (options.paused) socket.pause()
    socket.on("data", (chunk: Buffer) => {
      received += chunk.length
      if (decodeError !== undefined) return
      decoder.push(chunk)
      try {
        for (let box = decoder.next(); box !== undefined; box = decoder.next()) {
          if (options.onBox) options.onBox(box)
          else boxes.push(box)
        }
      } catch (e) {
        decodeError = e
      }
      poke()
    })
    socket.on("end", () => {
      finish({ how: "end" })
      socket.destroy()
    })
    socket.on("error", (e) => finish({ how: "error", error: e.message }))
    socket.on("close", () => finish({ how: "end" }))
    socket.once("connect", () => {
      socket.off("error", reject)
      resolve({
        socket,
        boxes,
        received: () => received,
        decodeError: () => decodeError,
        midBox: () => decoder.midBox,
        ended: endedP,
        isEnded: () => ended !== undefined,
        write: (bytes) =>
          new Promise<void>((ok) => {
            if (socket.destroyed) return ok()
            socket.write(bytes, () => ok())
          }),
        startReading: () => void socket.resume(),
        until: (pred, ms, what) =>
          new Promise<void>((ok, ko) => {
            const check = () => {
              if (!pred()) return
              clearTimeout(timer)
              waiters.delete(check)
              ok()
            }
            const timer = setTimeout(() => {
              waiters.delete(check)
              ko(new Error(`timed out after ${ms} ms waiting for ${what}`))
            }, ms)
            waiters.add(check)
            check()
          })
      })
    })
    socket.once("error", reject)
  })

/** The text of `key` in `box` (UTF-8), or undefined. */
export const text = (box: AmpBox.AmpBox, key: string): string | undefined => box.getText(key)

/** Resolves after `ms`. */
export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms))

/** A simple seeded PRNG (mulberry32): the fuzz run is the same on every machine. */
export const prng = (seed: number): () => number => {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6d2b79f5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

/** One Sum call on a fresh connection: resolves with the total's text. */
export const sumOnce = async (port: number, a: bigint, b: bigint, ms = 10_000): Promise<string | undefined> => {
  const c = await rawClient(port)
  await c.write(ask("Sum", "1", { a: String(a), b: String(b) }))
  await c.until(() => c.boxes.length > 0 || c.isEnded(), ms, "a Sum answer")
  c.socket.destroy()
  return c.boxes[0]?.getText("total")
}
