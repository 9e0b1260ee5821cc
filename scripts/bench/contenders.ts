/**
 * The three contenders as the harness drives them, workload by workload.
 * Node implementations (impl/*.ts adapters) are timed here, in this process
 * or in a child (child.ts); Twisted is timed by twisted_bench.py in a child
 * Python, with the same warm-up, run length and number of runs.
 */
import { type ChildProcess, spawn } from "node:child_process"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import * as readline from "node:readline"
import { fileURLToPath } from "node:url"
import { withFdLimit } from "./common.js"
import type { NodeImplId } from "./impl/index.js"
import type { ScaleConfig } from "./scale.js"

export type ContenderId = NodeImplId | "twisted"

/** Warm-up and timed runs. */
export interface Timing {
  readonly warmup: number
  readonly seconds: number
  readonly runs: number
}

/** One figure per timed run. */
export interface CodecRuns {
  readonly encodeSmall: ReadonlyArray<number>
  readonly decodeSmall: ReadonlyArray<number>
  readonly encodeBig: ReadonlyArray<number>
  readonly decodeBig: ReadonlyArray<number>
}

export interface CallRuns {
  readonly callsPerSec: ReadonlyArray<number>
  readonly p50us?: ReadonlyArray<number>
  readonly p99us?: ReadonlyArray<number>
}

/** MiB; heap only where the runtime has one to report. */
export interface MemoryResult {
  readonly heapWarm?: number
  readonly heapAfter?: number
  readonly rssWarm: number
  readonly rssAfter: number
}

/** Box counts for the slow responder. */
export interface Slow {
  readonly count: number
  readonly warm: number
}

/** A server in a child process. */
export interface ChildServer {
  readonly port: number
  readonly pid: number
  /** The next line the child prints after "listening ...". */
  readonly nextLine: (timeoutMs: number) => Promise<string>
  readonly stop: () => void
}

export interface Contender {
  readonly id: ContenderId
  readonly label: string
  readonly codec: (t: Timing) => Promise<CodecRuns>
  /** Sum calls with client and server in one process. */
  readonly inProcess: (inflight: number, t: Timing, sequential: boolean) => Promise<CallRuns>
  /**
   * A Sum server in a child process; with `slow`, the slow Slow responder
   * instead, which prints `{"warm_rss_mb"}` after `slow.warm` boxes and
   * `{"handled", "peak_rss_mb"}` after `slow.count`, then exits.
   */
  readonly startServer: (slow?: Slow) => Promise<ChildServer>
  /**
   * An Echo (and Sum) server in a child process, for peers that do not read
   * (never-read, idle). On SIGUSR2 it prints its memory after a full GC:
   * `{"rss_mb"}`, and for Node `{"heap_mb", "external_mb"}` too. With
   * `fds`, its open-file limit is raised to that first (server-scale).
   */
  readonly startEchoServer: (fds?: number) => Promise<ChildServer>
  /** This contender's Sum client against `port` (any contender's server). */
  readonly client: (port: number, inflight: number, t: Timing) => Promise<CallRuns>
  /** Heap and RSS in a fresh process, after `warmup` calls and after `calls` more (100 in flight). */
  readonly memory: (calls: number, warmup: number) => Promise<MemoryResult>
  /** Echo of a 60 KB text (`echo`) or BigEcho of 1 MiB of BigString (`big`), client and server in one process. */
  readonly large: (call: LargeCall, inflight: number, t: Timing) => Promise<CallRuns>
  /** An Echo, BigEcho and BigCheck server in a child process. */
  readonly startLargeServer: () => Promise<ChildServer>
  /** This contender's BigCheck round trips (0 B to 1 MiB) against `port`; rejects at the first difference. */
  readonly checkLarge: (port: number) => Promise<void>
}

export type LargeCall = "echo" | "big"

// ---------------------------------------------------------------------------
// children
// ---------------------------------------------------------------------------

const here = path.dirname(fileURLToPath(import.meta.url))
const ext = path.extname(fileURLToPath(import.meta.url))
/** This folder in the source tree (`npm run bench` runs a compiled copy under .bench/). */
export const sourceDir = fs.existsSync(path.join(here, "twisted_bench.py"))
  ? here
  : path.resolve(here, "..", "..", "..", "scripts", "bench")
export const PYTHON = process.env.AMP_PYTHON ?? "/usr/bin/python3"
const TWISTED = path.join(sourceDir, "twisted_bench.py")
const CHILD = path.join(here, `child${ext}`)
const SCALE = path.join(here, `scale${ext}`)

const children = new Set<ChildProcess>()
/** Stops every child this process started (on exit, and on Ctrl-C). */
export const stopChildren = (): void => {
  for (const c of children) c.kill()
  children.clear()
}
process.on("exit", stopChildren)

const track = (child: ChildProcess) => {
  children.add(child)
  child.once("exit", () => children.delete(child))
  return child
}

/**
 * How to start a child script (child.ts, scale.ts). Compiled (`npm run bench`): plain node. From .ts
 * (tsx): bundled once with esbuild (tsx's own) into a temporary .mjs run by
 * plain node, because tsx's loader thread would add about 80 MiB to every
 * child's RSS and seconds to its start; without esbuild, through tsx.
 */
const childEntry: (entry?: string) => Promise<{ readonly flags: ReadonlyArray<string>; readonly script: string }> = (() => {
  const bundle = async (entry: string) => {
    if (ext !== ".ts") return { flags: [], script: entry }
    try {
      const name = "esbuild" // not a dependency of ours: typed here, loaded if present
      const esbuild = (await import(name)) as {
        readonly build: (o: Record<string, unknown>) => Promise<unknown>
      }
      const dir = fs.mkdtempSync(path.join(os.tmpdir(), "effect-amp-bench-"))
      process.on("exit", () => fs.rmSync(dir, { recursive: true, force: true }))
      const script = path.join(dir, `${path.basename(entry, ext)}.mjs`)
      await esbuild.build({
        entryPoints: [entry],
        bundle: true,
        platform: "node",
        format: "esm",
        target: "node20",
        outfile: script,
        logLevel: "silent"
      })
      return { flags: [], script }
    } catch (e) {
      process.stderr.write(`(children run through tsx: no esbuild bundle: ${e instanceof Error ? e.message : String(e)})\n`)
      return { flags: process.execArgv, script: entry }
    }
  }
  const entries = new Map<string, ReturnType<typeof bundle>>()
  return (entry = CHILD) => {
    let e = entries.get(entry)
    if (e === undefined) entries.set(entry, e = bundle(entry))
    return e
  }
})()

/** Arguments for `node` running child.ts. */
const nodeArgs = async (extra: ReadonlyArray<string>, ...args: ReadonlyArray<string>) => {
  const { flags, script } = await childEntry()
  return [...flags, ...extra, script, ...args]
}

/** The gist of a failed child's stderr: its error line, else its last line. */
const gist = (stderr: string): string => {
  const lines = stderr.split("\n").map((l) => l.trim()).filter((l) => l && !l.startsWith("at ") && !l.startsWith("Node.js v"))
  return lines.find((l) => /^\w*(Error|Exception)\b/.test(l)) ?? lines.pop() ?? "(no stderr)"
}

/** Runs a child to completion; resolves with the JSON of its last stdout line. */
const runJson = (cmd: string, args: ReadonlyArray<string>, timeoutMs: number): Promise<Record<string, unknown>> =>
  new Promise((resolve, reject) => {
    const child = track(spawn(cmd, [...args], { stdio: ["ignore", "pipe", "pipe"] }))
    let out = ""
    let err = ""
    child.stdout!.setEncoding("utf8").on("data", (s: string) => (out += s))
    child.stderr!.setEncoding("utf8").on("data", (s: string) => (err += s))
    const timer = setTimeout(() => (child.kill(), reject(new Error(`timed out after ${timeoutMs} ms: ${args.join(" ")}`))), timeoutMs)
    child.once("error", reject)
    child.once("close", (code) => {
      clearTimeout(timer)
      const last = out.trim().split("\n").pop() ?? ""
      if (code !== 0) return reject(new Error(`exit ${code}: ${gist(err)}`))
      try {
        resolve(JSON.parse(last) as Record<string, unknown>)
      } catch {
        reject(new Error(`no JSON from ${args.join(" ")}: ${last}`))
      }
    })
  })

/** Starts a child server; resolves once it prints "listening tcp HOST PORT". */
const startChild = (cmd: string, args: ReadonlyArray<string>): Promise<ChildServer> =>
  new Promise((resolve, reject) => {
    const child = track(spawn(cmd, [...args], { stdio: ["ignore", "pipe", "pipe"] }))
    let err = ""
    child.stderr!.setEncoding("utf8").on("data", (s: string) => (err += s).length > 4096 && (err = err.slice(-4096)))
    const lines: Array<string> = []
    const waiters: Array<(line: string) => void> = []
    const rl = readline.createInterface({ input: child.stdout! })
    rl.on("line", (line) => (waiters.length ? waiters.shift()!(line) : lines.push(line)))
    const timer = setTimeout(() => (child.kill(), reject(new Error(`no "listening" from ${args.join(" ")}`))), 30_000)
    child.once("error", reject)
    child.once("exit", (code) => {
      clearTimeout(timer)
      reject(new Error(`exit ${code} before listening: ${gist(err)}`))
    })
    const first = (line: string) => {
      clearTimeout(timer)
      const m = /^listening tcp \S+ (\d+)$/.exec(line.trim())
      if (!m) return reject(new Error(`unexpected line from ${args.join(" ")}: ${line}`))
      resolve({
        port: Number(m[1]),
        pid: child.pid!,
        nextLine: (timeoutMs) =>
          lines.length
            ? Promise.resolve(lines.shift()!)
            : new Promise((ok, fail) => {
              const t = setTimeout(() => fail(new Error(`no output within ${timeoutMs} ms`)), timeoutMs)
              const onExit = (code: number | null) => fail(new Error(`exit ${code}: ${gist(err)}`))
              child.once("exit", onExit)
              waiters.push((line) => (clearTimeout(t), child.off("exit", onExit), ok(line)))
            }),
        stop: () => void child.kill()
      })
    }
    waiters.push(first)
  })

/** The server-scale load generator (scale.ts) in a child process of its own. */
export interface ScaleGenerator {
  /** The JSON of the next line it prints. */
  readonly nextLine: (timeoutMs: number) => Promise<Record<string, unknown>>
  /** Lets it go on past "idle-ready" (a line on its stdin). */
  readonly go: () => void
  readonly stop: () => void
}

/** Starts scale.ts against the server at `port` (process `serverPid`), its open-file limit raised to `fds`. */
export const startScaleGenerator = async (port: number, serverPid: number, config: ScaleConfig, fds: number): Promise<ScaleGenerator> => {
  const { flags, script } = await childEntry(SCALE)
  const child = track(spawn(...withFdLimit(fds, process.execPath, [...flags, script, String(port), String(serverPid), JSON.stringify(config)]), {
    stdio: ["pipe", "pipe", "pipe"]
  }))
  let err = ""
  child.stderr!.setEncoding("utf8").on("data", (s: string) => (err += s).length > 4096 && (err = err.slice(-4096)))
  const lines: Array<string> = []
  const waiters: Array<(line: string) => void> = []
  readline.createInterface({ input: child.stdout! }).on("line", (line) => (waiters.length ? waiters.shift()!(line) : lines.push(line)))
  child.stdin!.on("error", () => undefined) // a generator that died is reported by nextLine
  let exit: string | undefined
  let closed = false
  child.once("exit", (code, signal) => (exit = `exit ${code ?? signal}: ${gist(err)}`))
  child.once("close", () => (closed = true))
  const parse = (line: string): Record<string, unknown> => {
    try {
      return JSON.parse(line) as Record<string, unknown>
    } catch {
      throw new Error(`scale.ts: not JSON: ${line}`)
    }
  }
  return {
    nextLine: (timeoutMs) =>
      lines.length
        ? Promise.resolve(parse(lines.shift()!))
        : new Promise((ok, fail) => {
          if (closed) return fail(new Error(`scale.ts: ${exit ?? "closed"}`))
          const t = setTimeout(() => fail(new Error(`scale.ts: no output within ${timeoutMs} ms`)), timeoutMs)
          // "close", not "exit": a last line may still be in the pipe when the process exits.
          const onClose = () => fail(new Error(`scale.ts: ${exit ?? "closed"}`))
          child.once("close", onClose)
          waiters.push((line) => {
            clearTimeout(t)
            child.off("close", onClose)
            try {
              ok(parse(line))
            } catch (e) {
              fail(e)
            }
          })
        }),
    go: () => void child.stdin!.write("go\n"),
    stop: () => void child.kill()
  }
}

export const nums = (o: Record<string, unknown>, key: string): ReadonlyArray<number> => {
  const v = o[key]
  if (!Array.isArray(v) || v.some((x) => typeof x !== "number")) throw new Error(`bad "${key}" in ${JSON.stringify(o)}`)
  return v as ReadonlyArray<number>
}
const num = (o: Record<string, unknown>, key: string): number => {
  const v = o[key]
  if (typeof v !== "number") throw new Error(`bad "${key}" in ${JSON.stringify(o)}`)
  return v
}

// ---------------------------------------------------------------------------
// Node contenders
// ---------------------------------------------------------------------------

const callRuns = (o: Record<string, unknown>): CallRuns =>
  "p50us" in o
    ? { callsPerSec: nums(o, "callsPerSec"), p50us: nums(o, "p50us"), p99us: nums(o, "p99us") }
    : { callsPerSec: nums(o, "callsPerSec") }

const nodeContender = (id: NodeImplId, label: string): Contender => {
  return {
    id,
    label,
    // Each measurement runs in a fresh process, as Twisted's do: no JIT state
    // or heap left over from another workload or implementation.
    codec: async (t) => {
      const o = await runJson(process.execPath, await nodeArgs(["--expose-gc"], "codec", id, JSON.stringify(t)), budgetMs(t) * 5)
      return {
        encodeSmall: nums(o, "encodeSmall"),
        decodeSmall: nums(o, "decodeSmall"),
        encodeBig: nums(o, "encodeBig"),
        decodeBig: nums(o, "decodeBig")
      }
    },
    inProcess: async (inflight, t, sequential) =>
      callRuns(
        await runJson(
          process.execPath,
          await nodeArgs(["--expose-gc"], "calls", id, String(inflight), sequential ? "sequential" : "pipelined", JSON.stringify(t)),
          budgetMs(t)
        )
      ),
    startServer: async (slow) =>
      startChild(process.execPath, await nodeArgs([], "serve", id, ...(slow === undefined ? ["sum"] : ["slow", String(slow.count), String(slow.warm)]))),
    startEchoServer: async (fds) => {
      const args = await nodeArgs([], "serve", id, "echo")
      return fds === undefined ? startChild(process.execPath, args) : startChild(...withFdLimit(fds, process.execPath, args))
    },
    client: async (port, inflight, t) =>
      callRuns(
        await runJson(process.execPath, await nodeArgs(["--expose-gc"], "client", id, String(port), String(inflight), JSON.stringify(t)), budgetMs(t))
      ),
    large: async (call, inflight, t) =>
      callRuns(await runJson(process.execPath, await nodeArgs(["--expose-gc"], "large", id, call, String(inflight), JSON.stringify(t)), budgetMs(t))),
    startLargeServer: async () => startChild(process.execPath, await nodeArgs([], "serve", id, "large")),
    checkLarge: async (port) => void (await runJson(process.execPath, await nodeArgs([], "check", id, String(port)), 60_000)),
    memory: async (calls, warmup) => {
      const args = await nodeArgs(["--expose-gc"], "memory", id, String(calls), String(warmup))
      const o = await runJson(process.execPath, args, 900_000)
      return {
        heapWarm: num(o, "heap_warm_mb"),
        heapAfter: num(o, "heap_after_mb"),
        rssWarm: num(o, "rss_warm_mb"),
        rssAfter: num(o, "rss_after_mb")
      }
    }
  }
}

// ---------------------------------------------------------------------------
// Twisted
// ---------------------------------------------------------------------------

const timingArgs = (t: Timing) => ["--warmup", String(t.warmup), "--seconds", String(t.seconds), "--runs", String(t.runs)]
const budgetMs = (t: Timing) => (t.warmup + t.seconds * t.runs) * 4000 + 30_000
const python = (args: ReadonlyArray<string>, timeoutMs: number) => runJson(PYTHON, ["-u", TWISTED, ...args], timeoutMs)

const twisted: Contender = {
  id: "twisted",
  label: "twisted",
  codec: async (t) => {
    const o = await python(["--codec", ...timingArgs(t)], budgetMs(t) * 5)
    return {
      encodeSmall: nums(o, "encode_small"),
      decodeSmall: nums(o, "decode_small"),
      encodeBig: nums(o, "encode_64k_mbps"),
      decodeBig: nums(o, "decode_64k_mbps")
    }
  },
  inProcess: async (inflight, t, sequential) => {
    const o = await python(
      [sequential ? "--sequential" : "--pipelined", "--inflight", String(inflight), ...timingArgs(t)],
      budgetMs(t)
    )
    return sequential
      ? { callsPerSec: nums(o, "calls_per_s"), p50us: nums(o, "p50_us"), p99us: nums(o, "p99_us") }
      : { callsPerSec: nums(o, "calls_per_s") }
  },
  startServer: (slow) => startChild(PYTHON, ["-u", TWISTED, "--serve", ...(slow === undefined ? [] : ["--slow", String(slow.count), "--slow-warm", String(slow.warm)])]),
  startEchoServer: (fds) => {
    const args = ["-u", TWISTED, "--serve", "--echo"]
    return fds === undefined ? startChild(PYTHON, args) : startChild(...withFdLimit(fds, PYTHON, args))
  },
  client: async (port, inflight, t) => {
    const o = await python(["--client", "127.0.0.1", String(port), "--inflight", String(inflight), ...timingArgs(t)], budgetMs(t))
    return { callsPerSec: nums(o, "calls_per_s") }
  },
  memory: async (calls, warmup) => {
    const o = await python(["--memory", "--calls", String(calls), "--warmup-calls", String(warmup)], 900_000)
    return { rssWarm: num(o, "rss_warm_mb"), rssAfter: num(o, "rss_after_mb") }
  },
  large: async (call, inflight, t) => {
    const o = await python(["--large", call, "--inflight", String(inflight), ...timingArgs(t)], budgetMs(t))
    return { callsPerSec: nums(o, "calls_per_s") }
  },
  startLargeServer: () => startChild(PYTHON, ["-u", TWISTED, "--serve", "--big"]),
  checkLarge: async (port) => void (await python(["--check", "127.0.0.1", String(port)], 60_000))
}

/** Twisted's version, from the Python the peers run on. */
export const twistedVersion = (): Promise<string> =>
  new Promise((resolve) => {
    const child = spawn(PYTHON, ["-c", "import twisted; print(twisted.__version__)"], { stdio: ["ignore", "pipe", "ignore"] })
    let out = ""
    child.stdout.setEncoding("utf8").on("data", (s: string) => (out += s))
    child.once("error", () => resolve("not found"))
    child.once("close", (code) => resolve(code === 0 ? out.trim() : "not found"))
  })

/** The contenders, in table order. */
export const contenders: ReadonlyArray<Contender> = [
  nodeContender("effect-amp", "effect-amp"),
  twisted,
  nodeContender("raw", "raw node")
]
