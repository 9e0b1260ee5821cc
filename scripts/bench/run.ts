/**
 * The benchmark: every workload on effect-amp, a live Twisted peer and a
 * raw-Node baseline, in one run, side by side with ratios.
 *
 *   npx tsx scripts/bench/run.ts [options]        (or: npm run bench -- [options])
 *
 *   --quick             fewer, shorter runs (under a minute; for smoke tests)
 *   --only W[,W...]     only these workloads: codec, pipelined, sequential, large,
 *                       two-process, mixed, memory, flood, never-read, idle, server-scale
 *   --json FILE         also write every figure (and every run) as JSON
 *   --write-results     also write the table to scripts/bench/RESULTS.md
 *   --runs N            timed runs per round (default 2, quick 3)
 *   --rounds R          rounds of codec, pipelined, sequential and large figures (default 3, quick 1):
 *                       each round measures every implementation once more, in turn, in a
 *                       fresh process, so that a slow spell of a shared machine is spread
 *                       over all of them rather than landing on one
 *   --seconds S         length of a timed run (default 1; codec 0.5; quick 0.12, codec 0.08)
 *   --calls N           calls for the memory workload (default 1,000,000; quick 5,000)
 *   --flood-mib N       bytes the flooding peer sends (default 200; quick 16)
 *   --never-read-seconds S   how long the never-reading peer writes (default 5; quick 2)
 *   --idle N            connections of the idle workload (default 1000)
 *   --scale-busy N      server-scale: busy connections (default 64; quick 16)
 *   --scale-inflight N  server-scale: calls in flight on each busy connection (default 16)
 *   --scale-idle N      server-scale: slow connections, 1 call/s each (default 1000; quick 250)
 *   --scale-seconds S   server-scale: length of a timed run (default 3; quick 0.5), after a
 *                       warm-up of the same length (at least 1 s; quick 0.5 s)
 *
 * Each figure is the median of the timed runs, after a warm-up (1 s; codec
 * 0.5 s; quick: 0.3 s for calls, 0.08 s for the codec) and a full GC. The markdown table goes to stdout, progress to stderr. A figure
 * that could not be measured (an implementation not wired yet, a peer that
 * failed) prints "n/a" and the reason goes to stderr.
 *
 * Implementations are pluggable: a Node one is an adapter under impl/
 * (see impl/types.ts, impl/index.ts); Twisted is twisted_bench.py.
 */
import * as fs from "node:fs"
import * as net from "node:net"
import * as os from "node:os"
import * as path from "node:path"
import { median, options } from "./common.js"
import {
  type CallRuns,
  type ChildServer,
  type Contender,
  type ContenderId,
  contenders,
  nums,
  type ScaleGenerator,
  sourceDir,
  startScaleGenerator,
  stopChildren,
  type Timing,
  twistedVersion
} from "./contenders.js"
import { encode, parser } from "./impl/rawNode.js"
import type { ScaleConfig } from "./scale.js"

// ---------------------------------------------------------------------------
// options
// ---------------------------------------------------------------------------

const WORKLOADS = ["codec", "pipelined", "sequential", "large", "two-process", "mixed", "memory", "flood", "never-read", "idle", "server-scale"] as const
type Workload = typeof WORKLOADS[number]

const argv = process.argv.slice(2)
const flag = (name: string) => argv.includes(name)
const { numberOption, option } = options(argv, fail)
function fail(message: string): never {
  process.stderr.write(`run.ts: ${message}\n`)
  process.exit(2)
}

if (flag("--help") || flag("-h")) {
  const doc = fs.readFileSync(new URL(import.meta.url), "utf8").match(/\/\*\*([\s\S]*?)\*\//)?.[1] ?? ""
  process.stdout.write(`${doc.replace(/^ \* ?/gm, "").trim()}\n`)
  process.exit(0)
}
const known = new Set(["--quick", "--only", "--json", "--write-results", "--runs", "--rounds", "--seconds", "--calls", "--flood-mib", "--never-read-seconds", "--idle", "--scale-busy", "--scale-inflight", "--scale-idle", "--scale-seconds"])
for (let i = 0; i < argv.length; i++) {
  const a = argv[i]!
  if (!known.has(a)) fail(`unknown option ${a} (see --help)`)
  if (!["--quick", "--write-results"].includes(a)) i++
}

const quick = flag("--quick")
const only: ReadonlyArray<Workload> = (() => {
  const v = option("--only")
  if (v === undefined) return WORKLOADS
  return v.split(",").map((w) => {
    const hit = WORKLOADS.find((x) => x === w) ?? WORKLOADS.find((x) => x.startsWith(w))
    return hit ?? fail(`--only: unknown workload ${w}; one of ${WORKLOADS.join(", ")}`)
  })
})()
const runs = numberOption("--runs") ?? (quick ? 3 : 2)
const rounds = numberOption("--rounds") ?? (quick ? 1 : 3)
const seconds = numberOption("--seconds")
// effect-amp needs about 0.3 s of calls before the JIT has it warm: the quick warm-up is longer than its runs.
const rpcTiming: Timing = { warmup: Math.max(seconds ?? 0, quick ? 0.3 : 1), seconds: seconds ?? (quick ? 0.12 : 1), runs }
const codecTiming: Timing = { warmup: seconds ?? (quick ? 0.08 : 0.5), seconds: seconds ?? (quick ? 0.08 : 0.5), runs }
const memoryCalls = numberOption("--calls") ?? (quick ? 5_000 : 1_000_000)
const memoryWarmup = quick ? 1_000 : 50_000
const floodMiB = numberOption("--flood-mib") ?? (quick ? 16 : 200)
const neverReadSeconds = numberOption("--never-read-seconds") ?? (quick ? 2 : 5)
const idleConnections = numberOption("--idle") ?? 1000
const scaleSeconds = numberOption("--scale-seconds") ?? (quick ? 0.5 : 3)
const scale: ScaleConfig = {
  busy: numberOption("--scale-busy") ?? (quick ? 16 : 64),
  inflight: numberOption("--scale-inflight") ?? 16,
  idle: numberOption("--scale-idle") ?? (quick ? 250 : 1000),
  warmup: quick ? 0.5 : Math.max(1, scaleSeconds),
  seconds: scaleSeconds,
  runs
}
const jsonFile = option("--json")

// ---------------------------------------------------------------------------
// rows
// ---------------------------------------------------------------------------

type PerContender<A> = Partial<Record<ContenderId, A>>

interface Row {
  readonly workload: string
  readonly unit: string
  /** Latency and memory: smaller is better. */
  readonly lowerIsBetter: boolean
  readonly values: PerContender<number>
  readonly runs: PerContender<ReadonlyArray<number>>
  /** Contenders whose measurement failed ("n/a"); a figure that does not apply prints "–". */
  readonly failed: ReadonlyArray<ContenderId>
}
const rows: Array<Row> = []
const t0 = performance.now()
const log = (s: string) => process.stderr.write(`[${((performance.now() - t0) / 1000).toFixed(1).padStart(5)}s] ${s}\n`)

/** Runs one measurement; a failure is logged and becomes "n/a". */
const attempt = async <A>(what: string, f: () => Promise<A>): Promise<A | undefined> => {
  try {
    return await f()
  } catch (e) {
    log(`  n/a: ${what}: ${e instanceof Error ? e.message : String(e)}`)
    return undefined
  }
}

/** One row from per-contender results; `pick` takes the runs out of a result. */
const addRow = <A>(
  workload: string,
  unit: string,
  results: PerContender<A | undefined>,
  pick: (a: A) => ReadonlyArray<number> | number | undefined,
  lowerIsBetter = false
) => {
  const values: PerContender<number> = {}
  const runsOf: PerContender<ReadonlyArray<number>> = {}
  const failed: Array<ContenderId> = []
  for (const c of contenders) {
    const r = results[c.id]
    if (r === undefined) failed.push(c.id)
    const p = r === undefined ? undefined : pick(r)
    if (p === undefined) continue
    const xs = typeof p === "number" ? [p] : p
    if (xs.length === 0) continue
    values[c.id] = median(xs)
    runsOf[c.id] = xs
  }
  rows.push({ workload, unit, lowerIsBetter, values, runs: runsOf, failed })
}

/** `f` for each contender in turn, with progress and n/a handling. */
const each = async <A>(what: string, f: (c: Contender) => Promise<A>): Promise<PerContender<A | undefined>> => {
  const out: PerContender<A | undefined> = {}
  for (const c of contenders) {
    log(`${what}: ${c.label}`)
    out[c.id] = await attempt(`${c.label} ${what}`, () => f(c))
  }
  return out
}

/**
 * {@link each}, `rounds` times over, the runs of every round put together.
 * A contender that fails in any round is "n/a".
 */
const eachRound = async <A extends { readonly [K in keyof A]?: ReadonlyArray<number> }>(what: string, f: (c: Contender) => Promise<A>): Promise<PerContender<A | undefined>> => {
  const all: Array<PerContender<A | undefined>> = []
  for (let r = 1; r <= rounds; r++) all.push(await each(rounds > 1 ? `${what} (round ${r} of ${rounds})` : what, f))
  const out: PerContender<A | undefined> = {}
  for (const c of contenders) {
    const results = all.map((round) => round[c.id])
    if (results.some((x) => x === undefined)) continue
    const merged: Record<string, Array<number>> = {}
    for (const x of results as Array<A>) {
      for (const [k, v] of Object.entries(x) as Array<[string, ReadonlyArray<number> | undefined]>) {
        (merged[k] ??= []).push(...(v ?? []))
      }
    }
    out[c.id] = merged as unknown as A
  }
  return out
}

const calls = (r: CallRuns) => r.callsPerSec
/** Calls/s as MB/s (10^6 bytes) of a `bytes`-long payload, one way. */
const megabytes = (bytes: number) => (r: CallRuns) => r.callsPerSec.map((n) => (n * bytes) / 1e6)
/** Echo calls in flight in the large workload (as many as the pipelined workload's first row). */
const ECHO_INFLIGHT = 100
const byId = (id: ContenderId) => contenders.find((c) => c.id === id)!

// ---------------------------------------------------------------------------
// workloads
// ---------------------------------------------------------------------------

const workloads: Record<Workload, () => Promise<void>> = {
  codec: async () => {
    const r = await eachRound("codec", (c) => c.codec(codecTiming))
    addRow("encode small Sum box (boxes/s)", "boxes/s", r, (x) => x.encodeSmall)
    addRow("decode small Sum box (boxes/s)", "boxes/s", r, (x) => x.decodeSmall)
    addRow("encode box with a 64 KiB-1 value (MB/s)", "MB/s", r, (x) => x.encodeBig)
    addRow("decode box with a 64 KiB-1 value (MB/s)", "MB/s", r, (x) => x.decodeBig)
  },

  pipelined: async () => {
    for (const inflight of [100, 1000]) {
      const r = await eachRound(`pipelined ${inflight}, one process`, (c) => c.inProcess(inflight, rpcTiming, false))
      addRow(`pipelined Sum, ${inflight} in flight, one process (calls/s)`, "calls/s", r, calls)
    }
  },

  sequential: async () => {
    const r = await eachRound("sequential, one process", (c) => c.inProcess(1, rpcTiming, true))
    addRow("sequential Sum, 1 in flight, one process (calls/s)", "calls/s", r, calls)
    addRow("sequential latency p50 (µs)", "µs", r, (x) => x.p50us, true)
    addRow("sequential latency p99 (µs)", "µs", r, (x) => x.p99us, true)
  },

  large: async () => {
    await checkLargeWire()
    const echo = await eachRound(`large: pipelined 60 KB Echo, ${ECHO_INFLIGHT} in flight`, (c) => c.large("echo", ECHO_INFLIGHT, rpcTiming))
    addRow(`pipelined Echo of 60 KB texts, ${ECHO_INFLIGHT} in flight, one process (calls/s)`, "calls/s", echo, calls)
    addRow("pipelined Echo of 60 KB texts: text each way (MB/s)", "MB/s", echo, megabytes(60_000))
    for (const inflight of [1, 4]) {
      const how = inflight === 1 ? "sequential" : `${inflight} in flight`
      const r = await eachRound(`large: 1 MiB BigString, ${how}`, (c) => c.large("big", inflight, rpcTiming))
      addRow(`BigString 1 MiB round trips, ${how}, one process (round trips/s)`, "round trips/s", r, calls)
      addRow(`BigString 1 MiB, ${how}: bytes each way (MB/s)`, "MB/s", r, megabytes(1024 * 1024))
    }
  },

  // Both run on the same child servers: see childServers.
  "two-process": () => childServers(true, only.includes("mixed")),
  mixed: () => only.includes("two-process") ? Promise.resolve() : childServers(false, true),

  memory: async () => {
    const r = await each(`memory, ${memoryCalls.toLocaleString("en-US")} calls`, (c) => c.memory(memoryCalls, memoryWarmup))
    const n = memoryCalls >= 1e6 ? `${memoryCalls / 1e6}M` : memoryCalls >= 1e3 ? `${memoryCalls / 1e3}k` : `${memoryCalls}`
    addRow("heap after warm-up, after GC (MiB)", "MiB", r, (x) => x.heapWarm, true)
    addRow(`heap after ${n} calls, after GC (MiB)`, "MiB", r, (x) => x.heapAfter, true)
    addRow(`RSS after ${n} calls (MiB)`, "MiB", r, (x) => x.rssAfter, true)
  },

  flood: async () => {
    const r = await each(`flood, ${floodMiB} MiB at a 1 box/ms responder`, (c) => flood(c))
    addRow(`flood: peak RSS, ${floodMiB} MiB of 64 KiB boxes at a 1 box/ms responder (MiB)`, "MiB", r, (x) => x.peak, true)
    addRow("flood: peak RSS − RSS when warm (MiB)", "MiB", r, (x) => x.peak - x.warm, true)
  },

  "never-read": async () => {
    const r = await each(`never-read, ${neverReadSeconds} s of 60 KB Echo asks`, (c) => neverRead(c))
    addRow(`never-reading peer: peak server RSS, ${neverReadSeconds} s of pipelined 60 KB Echo asks (MiB)`, "MiB", r, (x) => x.peak, true)
    addRow("never-reading peer: peak RSS − RSS before (MiB)", "MiB", r, (x) => x.peak - x.before, true)
    addRow("never-reading peer: bytes the server took from it (MiB)", "MiB", r, (x) => x.taken, true)
  },

  idle: async () => {
    const n = idleConnections
    const r = await each(`idle, ${n} connections holding a partial box`, (c) => idle(c, n))
    addRow(`idle: server RSS per connection, ${n} holding a partial box of 400 B (KiB)`, "KiB", r, (x) => ((x.rssHeld - x.rssBefore) * 1024) / n, true)
    addRow("idle: heap + external per connection, after GC (KiB)", "KiB", r, (x) => x.heldBefore === undefined ? undefined : ((x.heapHeld! - x.heldBefore) * 1024) / n, true)
    addRow(`idle: server RSS after all ${n} closed − RSS before (MiB)`, "MiB", r, (x) => x.rssAfter - x.rssBefore, true)
    addRow("idle: heap + external after all closed − before, after GC (MiB)", "MiB", r, (x) => x.heldBefore === undefined ? undefined : x.heapAfter! - x.heldBefore, true)
  },

  "server-scale": async () => {
    const { busy, idle, inflight } = scale
    const r = await eachRound(`server-scale, ${busy} × ${inflight} in flight + ${idle} slow`, (c) => serverScale(c))
    addRow(`server-scale: busy Sum calls/s, ${busy} connections × ${inflight} in flight, beside ${idle} slow ones at 1 call/s`, "calls/s", r, (x) => x.callsPerSec)
    addRow("server-scale: server CPU per call, busy and slow (µs)", "µs", r, (x) => x.cpuUsPerCall, true)
    addRow("server-scale: slow connections' call latency p99, under the busy load (ms)", "ms", r, (x) => x.idleP99ms, true)
    addRow(`server-scale: server RSS per slow connection, ${idle} after a call each (KiB)`, "KiB", r, (x) => x.rssPerSlow, true)
    addRow("server-scale: heap + external per slow connection, after GC (KiB)", "KiB", r, (x) => x.heldPerSlow, true)
    addRow("server-scale: of which external (KiB)", "KiB", r, (x) => x.externalPerSlow, true)
  }
}

/**
 * BigCheck round trips (0 B to 1 MiB of random bytes) between Twisted and
 * each Node implementation, both ways: Twisted's client against each Node
 * server, each Node client against Twisted's server. The server answers the
 * SHA-256 of what it received, and the client compares the echo too. A
 * difference stops the run: the rows would time a wire format that the
 * peers do not share.
 */
const checkLargeWire = async () => {
  const twisted = byId("twisted")
  for (const s of contenders) {
    const server = await s.startLargeServer()
    try {
      for (const c of s.id === "twisted" ? contenders.filter((x) => x.id !== "twisted") : [twisted]) {
        log(`large: BigCheck, ${c.label} client → ${s.label} server`)
        await c.checkLarge(server.port).catch((e: unknown) => {
          throw new Error(`large: BigCheck failed, ${c.label} client → ${s.label} server: ${e instanceof Error ? e.message : String(e)}`)
        })
      }
    } finally {
      server.stop()
    }
  }
}

/** A server child's resident set (VmRSS), in MiB. */
const rssMiB = (pid: number): number => {
  const m = /^VmRSS:\s+(\d+) kB$/m.exec(fs.readFileSync(`/proc/${pid}/status`, "utf8"))
  if (!m) throw new Error(`no VmRSS for process ${pid}`)
  return Number(m[1]) / 1024
}

/** Asks a server child (SIGUSR2) for its memory after a full GC (MiB; heap + external and external for Node). */
const memoryOf = async (server: ChildServer): Promise<{ readonly rss: number; readonly held?: number; readonly external?: number }> => {
  const line = server.nextLine(10_000)
  process.kill(server.pid, "SIGUSR2")
  const o = JSON.parse(await line) as { readonly rss_mb: number; readonly heap_mb?: number; readonly external_mb?: number }
  const held = o.heap_mb === undefined ? undefined : o.heap_mb + (o.external_mb ?? 0)
  return { rss: rssMiB(server.pid), ...(held === undefined ? {} : { held, external: o.external_mb ?? 0 }) }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

/** Connects to the server child; resolves once connected. */
const connectRaw = (port: number): Promise<net.Socket> =>
  new Promise((ok, ko) => {
    const s = net.createConnection({ host: "127.0.0.1", port })
    s.once("connect", () => (s.off("error", ko), s.on("error", () => undefined), ok(s)))
    s.once("error", ko)
  })

/**
 * A peer pipelines 60 KB Echo asks (at most 5000, 300 MB) for
 * `neverReadSeconds`, as fast as the socket takes them, and never reads.
 * The server's RSS is sampled every 50 ms from /proc; "before" is after 32
 * warm-up Echoes on a reading connection; "taken" is what the peer's socket
 * handed to the kernel (the server's share plus the kernel's buffers).
 */
const neverRead = async (c: Contender) => {
  const server = await c.startEchoServer()
  try {
    const text = "x".repeat(60_000)
    const warm = await connectRaw(server.port)
    await new Promise<void>((ok) => {
      let got = 0
      warm.on("data", parser(() => ++got === 32 && ok()))
      for (let i = 0; i < 32; i++) warm.write(encode({ _command: "Echo", _ask: String(i), text }))
    })
    warm.destroy()
    await sleep(300)
    const before = rssMiB(server.pid)
    const peer = await connectRaw(server.port)
    peer.pause()
    let taken = 0
    let stop = false
    const writer = (async () => {
      for (let i = 0; i < 5000 && !stop; i++) {
        const box = encode({ _command: "Echo", _ask: String(i), text })
        if (!peer.write(box, () => (taken += box.length))) await new Promise((ok) => (peer.once("drain", ok), setTimeout(ok, 100)))
      }
    })()
    let peak = before
    const until = performance.now() + neverReadSeconds * 1000
    while (performance.now() < until) {
      peak = Math.max(peak, rssMiB(server.pid))
      await sleep(50)
    }
    stop = true
    peak = Math.max(peak, rssMiB(server.pid))
    peer.destroy()
    await writer
    return { before, peak, taken: taken / 1024 / 1024 }
  } finally {
    server.stop()
  }
}

/** Warms a server's code paths: `calls` Sum asks pipelined on one connection, all answered. */
const warmUp = async (port: number, calls: number) => {
  const warm = await connectRaw(port)
  await new Promise<void>((ok) => {
    let got = 0
    warm.on("data", parser(() => ++got === calls && ok()))
    for (let i = 0; i < calls; i++) warm.write(encode({ _command: "Sum", _ask: String(i), a: "13", b: "81" }))
  })
  warm.destroy()
}

/**
 * One server (the contender's Echo and Sum server, in a child, its open-file
 * limit raised), warmed with 2000 Sum calls, and the load generator
 * (scale.ts) in a child of its own: first the slow connections alone, each
 * making a call a second; once every one has been answered, the server's
 * memory after a full GC, against its memory before they connected, per slow
 * connection. Then the busy connections join, and the generator times the
 * busy calls and the server's CPU (/proc) over the runs.
 */
const serverScale = async (c: Contender) => {
  const fds = scale.idle + scale.busy + 256
  const server = await c.startEchoServer(fds)
  let generator: ScaleGenerator | undefined
  try {
    await warmUp(server.port, 2000)
    await sleep(300)
    const m0 = await memoryOf(server)
    generator = await startScaleGenerator(server.port, server.pid, scale, fds)
    const ready = await generator.nextLine(30_000 + scale.idle * 20)
    if (ready.phase !== "idle-ready") throw new Error(`scale.ts: expected idle-ready, got ${JSON.stringify(ready)}`)
    const m1 = await memoryOf(server)
    generator.go()
    const o = await generator.nextLine((scale.warmup + scale.seconds * scale.runs) * 3000 + 30_000)
    const per = (before: number | undefined, after: number | undefined) =>
      before === undefined || after === undefined ? [] : [((after - before) * 1024) / scale.idle]
    const fixed = (xs: ReadonlyArray<number>) => xs.map((x) => x.toFixed(0)).join(", ")
    log(
      `  ${c.label}: busy ${fixed(nums(o, "callsPerSec"))} calls/s; slow ${fixed(nums(o, "idleCallsPerSec"))} calls/s; ` +
        `server CPU ${fixed(nums(o, "serverCpuPct"))}%, generator CPU ${fixed(nums(o, "generatorCpuPct"))}% of a core; ` +
        `${scale.idle} slow connections in ${ready.connectMs} ms`
    )
    return {
      callsPerSec: nums(o, "callsPerSec"),
      cpuUsPerCall: nums(o, "cpuUsPerCall"),
      idleP99ms: nums(o, "idleP99ms"),
      rssPerSlow: per(m0.rss, m1.rss),
      heldPerSlow: per(m0.held, m1.held),
      externalPerSlow: per(m0.external, m1.external)
    }
  } finally {
    generator?.stop()
    server.stop()
  }
}

/**
 * `n` connections each send the first 400 bytes of a Sum ask (a 600-byte
 * argument cut short) and then nothing. Memory (RSS; for Node, heap +
 * external after a full GC) before, while they are held, and 1 s after they
 * have all closed.
 */
const idle = async (c: Contender, n: number) => {
  const server = await c.startEchoServer()
  try {
    // Warm the server's code paths on one connection first.
    await warmUp(server.port, 100)
    await sleep(300)
    const m0 = await memoryOf(server)
    const partial = encode({ _command: "Sum", _ask: "1", a: "1".repeat(600), b: "1" }).subarray(0, 400)
    const sockets: Array<net.Socket> = []
    for (let i = 0; i < n; i++) {
      const s = await connectRaw(server.port)
      s.write(partial)
      sockets.push(s)
    }
    await sleep(1000)
    const m1 = await memoryOf(server)
    for (const s of sockets) s.destroy()
    await sleep(1000)
    const m2 = await memoryOf(server)
    return {
      rssBefore: m0.rss,
      rssHeld: m1.rss,
      rssAfter: m2.rss,
      ...(m0.held === undefined ? {} : { heldBefore: m0.held, heapHeld: m1.held, heapAfter: m2.held })
    }
  }
  finally {
    server.stop()
  }
}

/**
 * Each contender's Sum server in a child process, in turn. Two processes:
 * the contender's own client against it, 100 and 1000 in flight. Mixed:
 * Twisted's client against each server (the columns name the server), and
 * each client against Twisted's server (the columns name the client);
 * Twisted against Twisted is the same figure in both rows.
 */
const childServers = async (two: boolean, mixed: boolean) => {
  const twisted = byId("twisted")
  const r100: PerContender<CallRuns | undefined> = {}
  const r1000: PerContender<CallRuns | undefined> = {}
  const toServer: PerContender<CallRuns | undefined> = {}
  const fromClient: PerContender<CallRuns | undefined> = {}
  for (const s of contenders) {
    log(`${s.label} server in a child process`)
    const server = await attempt(`${s.label} server`, () => s.startServer())
    if (!server) continue
    try {
      if (two) {
        log(`  two processes: ${s.label} client, 100 and 1000 in flight`)
        r100[s.id] = await attempt(`${s.label} two-process 100`, () => s.client(server.port, 100, rpcTiming))
        r1000[s.id] = await attempt(`${s.label} two-process 1000`, () => s.client(server.port, 1000, rpcTiming))
      }
      if (!mixed) continue
      if (s.id === "twisted") {
        toServer.twisted = fromClient.twisted = r100.twisted ??
          (await attempt("twisted client -> twisted server", () => twisted.client(server.port, 100, rpcTiming)))
        for (const c of contenders) {
          if (c.id === "twisted") continue
          log(`  mixed: ${c.label} client -> twisted server`)
          fromClient[c.id] = await attempt(`${c.label} client -> twisted server`, () => c.client(server.port, 100, rpcTiming))
        }
      } else {
        log(`  mixed: twisted client -> ${s.label} server`)
        toServer[s.id] = await attempt(`twisted client -> ${s.label} server`, () => twisted.client(server.port, 100, rpcTiming))
      }
    } finally {
      server.stop()
    }
  }
  if (two) {
    addRow("pipelined Sum, 100 in flight, two processes (calls/s)", "calls/s", r100, calls)
    addRow("pipelined Sum, 1000 in flight, two processes (calls/s)", "calls/s", r1000, calls)
  }
  if (mixed) {
    addRow("mixed: Twisted client → server in column, 100 in flight (calls/s)", "calls/s", toServer, calls)
    addRow("mixed: client in column → Twisted server, 100 in flight (calls/s)", "calls/s", fromClient, calls)
  }
}

/**
 * A raw peer floods a responder that handles one box per millisecond with
 * `floodMiB` of `Slow` boxes (64 KiB each, no `_ask`), as fast as the socket
 * takes them. The responder's process reports its RSS once the first 32
 * boxes are handled (code warm, nothing queued) and its peak RSS once it
 * has handled them all.
 */
const flood = async (c: Contender): Promise<{ readonly warm: number; readonly peak: number }> => {
  const box = encode({ _command: "Slow", blob: new Uint8Array(65535).fill(1) })
  const warmBoxes = 32
  const count = Math.max(warmBoxes + 1, Math.ceil((floodMiB * 1024 * 1024) / box.length))
  const server = await c.startServer({ count, warm: warmBoxes })
  try {
    const socket = net.createConnection({ host: "127.0.0.1", port: server.port })
    socket.on("error", () => undefined) // the child exits when done
    await new Promise<void>((ok, ko) => (socket.once("connect", ok), socket.once("error", ko)))
    const send = async (n: number) => {
      for (let i = 0; i < n; i++) if (!socket.write(box)) await new Promise((ok) => socket.once("drain", ok))
    }
    await send(warmBoxes)
    const warm = JSON.parse(await server.nextLine(60_000)) as { readonly warm_rss_mb: number }
    const report = server.nextLine(count * 20 + 60_000)
    await send(count - warmBoxes)
    const end = JSON.parse(await report) as { readonly handled: number; readonly peak_rss_mb: number }
    socket.destroy()
    if (end.handled !== count) throw new Error(`handled ${end.handled} of ${count} boxes`)
    return { warm: warm.warm_rss_mb, peak: end.peak_rss_mb }
  } finally {
    server.stop()
  }
}

// ---------------------------------------------------------------------------
// output
// ---------------------------------------------------------------------------

const fmt = (row: Row, id: ContenderId): string => {
  const n = row.values[id]
  return n === undefined ? (row.failed.includes(id) ? "n/a" : "–") : figure(n)
}
const figure = (n: number): string =>
  Math.abs(n) >= 100
    ? Math.round(n).toLocaleString("en-US")
    : Math.abs(n) >= 10
    ? n.toFixed(1)
    : n.toFixed(2)

/** effect-amp against `other`, oriented so that above 1x means effect-amp is better. */
const ratio = (row: Row, other: ContenderId): string => {
  const ours = row.values["effect-amp"]
  const theirs = row.values[other]
  if (ours === undefined || theirs === undefined || ours <= 0 || theirs <= 0) return "–"
  return `${(row.lowerIsBetter ? theirs / ours : ours / theirs).toFixed(2)}x`
}

/** Columns: every contender, then effect-amp's ratio to each other one. */
const table = (): string => {
  const others = contenders.filter((c) => c.id !== "effect-amp")
  return [
    `| workload | ${contenders.map((c) => c.label).join(" | ")} | ${others.map((c) => `ratio vs ${c.id}`).join(" | ")} |`,
    `|---|${contenders.map(() => "---:|").join("")}${others.map(() => "---:|").join("")}`,
    ...rows.map((r) =>
      `| ${r.workload} | ${contenders.map((c) => fmt(r, c.id)).join(" | ")} | ${
        others.map((c) => ratio(r, c.id)).join(" | ")
      } |`
    )
  ].join("\n")
}

const LEGEND = [
  "Ratios: effect-amp against the column, oriented so that **above 1x means effect-amp is better**",
  "(throughput: ours / theirs; latency and memory: theirs / ours).",
  "Each figure is the median of the timed runs, after a warm-up. \"One process\": client and server",
  "share one process (and one core) over loopback TCP; \"two processes\": the server runs in a child.",
  "Mixed rows: the column names the server (Twisted client →) or the client (→ Twisted server).",
  "Large rows: one process; MB/s is the payload one way (10^6 bytes); Twisted's sockets get TCP_NODELAY, as the others'",
  "have; BigString is split in pieces of 65535 bytes (Twisted: an amp.Argument subclass in twisted_bench.py).",
  "Memory rows run in a fresh process per implementation, client and server together, 100 in flight;",
  "Python has no heap figure comparable to V8's (\"–\"; \"n/a\" means the measurement failed). Flood: the responder handles one box at a time,",
  "1 ms each (effect-amp: `maxConcurrentCommands: 1`; raw node: pauses the socket at 16 queued boxes;",
  "Twisted: a `DeferredLock`, AMP keeps reading). Codec decode input arrives in 64 KiB reads.",
  "Never-read and idle: each server in a child process, its RSS read from /proc; raw node pauses reading past 1 MiB",
  "of unwritten answers; heap + external (Node only) after a full GC in the server.",
  "Server-scale: one server child, the load from another (scale.ts, raw framing); the server's CPU from /proc;",
  "its memory per slow connection measured with the slow connections alone, each answered at least once.",
  "The machine is shared: compare ratios, not absolute figures."
].join("\n")

/** The command line as typed, as near as we can tell. */
const commandLine = (): string => {
  const args = argv.map((a) => (/^[\w./,=:-]+$/.test(a) ? a : `'${a}'`)).join(" ")
  if (process.env.npm_lifecycle_event === "bench") return `npm run bench${args ? ` -- ${args}` : ""}`
  const script = path.relative(process.cwd(), process.argv[1] ?? "scripts/bench/run.ts")
  const viaTsx = process.execArgv.some((a) => a.includes("tsx"))
  const nodeFlags = process.execArgv.filter((a, i, all) => !a.includes("tsx") && !(all[i + 1]?.includes("tsx") && a.startsWith("--")))
  return `${viaTsx ? "npx tsx" : "node"}${nodeFlags.length ? ` ${nodeFlags.join(" ")}` : ""} ${script}${args ? ` ${args}` : ""}`
}

const main = async () => {
  process.once("SIGINT", () => (stopChildren(), process.exit(130)))
  const twistedV = await twistedVersion()
  log(`workloads: ${only.join(", ")}${quick ? " (quick)" : ""}; ${rounds} round(s) of ${runs} runs`)
  for (const w of only) await workloads[w]()
  const cpus = os.cpus()
  const meta = {
    date: new Date().toISOString(),
    node: process.version,
    cpu: cpus[0]?.model ?? "unknown",
    cores: cpus.length,
    twisted: twistedV,
    command: commandLine(),
    quick,
    runs,
    rounds,
    rpcTiming,
    codecTiming,
    memoryCalls,
    floodMiB,
    neverReadSeconds,
    idleConnections,
    scale,
    seconds: Math.round((performance.now() - t0) / 100) / 10
  }
  const header = [
    `- Date: ${meta.date}`,
    `- Node ${meta.node}; Twisted ${meta.twisted} (${PYTHON_NAME}); CPU: ${meta.cpu}, ${meta.cores} cores (os.cpus())`,
    `- Command: \`${meta.command}\`${quick ? " (quick: short runs, rough figures)" : ""}`,
    `- ${rounds} round${rounds === 1 ? "" : "s"} of ${runs} timed run${runs === 1 ? "" : "s"} of ${rpcTiming.seconds} s per codec, pipelined, sequential and large figure (codec: ${codecTiming.seconds} s), each round in fresh processes after a warm-up; ${runs} runs for the other call figures; took ${meta.seconds} s`
  ].join("\n")
  const markdown = `${header}\n\n${table()}\n\n${LEGEND}\n`
  process.stdout.write(markdown)
  if (flag("--write-results")) {
    const file = path.join(sourceDir, "RESULTS.md")
    const previous = fs.existsSync(file) ? fs.readFileSync(file, "utf8") : ""
    const notes = previous.includes(NOTES) ? previous.slice(previous.indexOf(NOTES)) : `${NOTES}\n`
    fs.writeFileSync(file, `# Benchmark results\n\n${markdown}\n${notes}`)
    log(`wrote ${file}`)
  }
  if (jsonFile !== undefined) {
    fs.writeFileSync(jsonFile, `${JSON.stringify({ meta, rows }, null, 2)}\n`)
    log(`wrote ${jsonFile}`)
  }
}

const NOTES = "<!-- notes -->"
const PYTHON_NAME = path.basename(process.env.AMP_PYTHON ?? "/usr/bin/python3")

main().then(
  () => (stopChildren(), process.exit(0)),
  (e) => {
    console.error(e)
    stopChildren()
    process.exit(1)
  }
)
