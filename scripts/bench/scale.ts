/**
 * The load generator of the server-scale workload, run by the harness in a
 * child process of its own, so that the server's process (whichever
 * implementation) is measured alone:
 *
 *   node scale.js PORT SERVER_PID CONFIG
 *
 * CONFIG is the JSON of a {@link ScaleConfig}. It speaks AMP by hand (the
 * raw-Node framing of impl/rawNode.ts; every ask is encoded once, up front),
 * so that its own cost is small and the same whatever server it drives.
 *
 * 1. Opens `idle` slow connections; each makes one Sum call a second, their
 *    first calls spread over the first second. Once every one has had an
 *    answer it prints `{"phase": "idle-ready"}` and waits for a line on stdin
 *    (the harness measures the server's memory meanwhile).
 * 2. Opens `busy` connections with `inflight` Sum calls outstanding on each,
 *    a new call as soon as an answer comes, for `warmup` seconds, then `runs`
 *    timed runs of `seconds` each, back to back, the slow connections calling
 *    on throughout.
 * 3. Prints one line of JSON (a list per figure, one entry per run) and exits:
 *    `callsPerSec` (busy answers/s), `idleCallsPerSec`, `idleP50ms` and
 *    `idleP99ms` (latency of the slow connections' calls), `serverCpuPct`
 *    and `cpuUsPerCall` (the server's user + system time from /proc, per
 *    answer of either kind), and `generatorCpuPct` (this process: near 100,
 *    it, not the server, may be the bottleneck).
 *
 * Every answer is checked (`total` 94); a connection that fails or closes
 * ends the run with an error on stderr and exit code 1.
 */
import { execFileSync } from "node:child_process"
import * as fs from "node:fs"
import * as net from "node:net"
import * as readline from "node:readline"
import { quantile } from "./common.js"
import { encode, parser } from "./impl/rawNode.js"

export interface ScaleConfig {
  readonly busy: number
  readonly inflight: number
  readonly idle: number
  readonly warmup: number
  readonly seconds: number
  readonly runs: number
}

const die = (message: string): never => {
  process.stderr.write(`scale.ts: ${message}\n`)
  process.exit(1)
}

const [portArg, pidArg, configArg] = process.argv.slice(2)
if (configArg === undefined) die("usage: scale.js PORT SERVER_PID CONFIG_JSON")
const port = Number(portArg)
const serverPid = Number(pidArg)
const config = JSON.parse(configArg!) as ScaleConfig

const clockTicks = (() => {
  try {
    return Number(execFileSync("getconf", ["CLK_TCK"], { encoding: "utf8" }).trim()) || 100
  } catch {
    return 100
  }
})()
/** The server's user + system CPU time so far, in µs (/proc/PID/stat, fields 14 and 15). */
const serverCpuUs = (): number => {
  const stat = fs.readFileSync(`/proc/${serverPid}/stat`, "utf8")
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ")
  return ((Number(fields[11]) + Number(fields[12])) * 1e6) / clockTicks
}
const ownCpuUs = (): number => {
  const u = process.cpuUsage()
  return u.user + u.system
}

let closing = false
const connect = (): Promise<net.Socket> =>
  new Promise((ok, ko) => {
    const s = net.createConnection({ host: "127.0.0.1", port })
    s.once("error", ko)
    s.once("connect", () => {
      s.off("error", ko)
      s.setNoDelay(true)
      s.on("error", (e) => closing || die(`connection error: ${e.message}`))
      s.on("close", () => closing || die("the server closed a connection"))
      ok(s)
    })
  })

const check = (total: string | undefined) => total === "94" || die(`Sum answered ${total}`)

// ---------------------------------------------------------------------------
// slow connections: one call a second each
// ---------------------------------------------------------------------------

let idleAnswered = 0
/** Latencies (ms) of slow calls answered during a timed run; undefined between runs. */
let idleLatencies: Array<number> | undefined
const timers: Array<ReturnType<typeof setInterval>> = []

const slowConnection = async (offsetMs: number, answeredOnce: () => void) => {
  const socket = await connect()
  const sentAt = new Map<string, number>()
  let tag = 0
  let first = true
  socket.on("data", parser((box) => {
    check(box.total)
    const t0 = sentAt.get(box._answer!)
    if (t0 === undefined) return die(`answer to an unknown ask ${box._answer}`)
    sentAt.delete(box._answer!)
    idleAnswered++
    idleLatencies?.push(performance.now() - t0)
    if (first) (first = false), answeredOnce()
  }))
  const call = () => {
    const ask = (++tag).toString(16)
    sentAt.set(ask, performance.now())
    socket.write(encode({ _command: "Sum", _ask: ask, a: "13", b: "81" }))
  }
  timers.push(setTimeout(() => (call(), timers.push(setInterval(call, 1000))), offsetMs))
  return socket
}

// ---------------------------------------------------------------------------
// busy connections: `inflight` calls outstanding each
// ---------------------------------------------------------------------------

let busyAnswered = 0
let busyRunning = true

const busyConnection = async () => {
  const socket = await connect()
  // One ask per slot: a slot has one call outstanding at a time, so its ask is reused.
  const asks = new Map<string, Buffer>()
  for (let i = 0; i < config.inflight; i++) {
    const ask = i.toString(16)
    asks.set(ask, encode({ _command: "Sum", _ask: ask, a: "13", b: "81" }))
  }
  // The next calls go out as soon as a read is parsed, one write for the read, not at the end of the
  // event-loop turn: so the server can start on this connection's calls while the other connections'
  // answers are read, and the calls do not travel in one wave of every connection's at once.
  let again: Array<Buffer> = []
  const parse = parser((box) => {
    check(box.total)
    const next = asks.get(box._answer!)
    if (next === undefined) return die(`answer to an unknown ask ${box._answer}`)
    busyAnswered++
    if (busyRunning) again.push(next)
  })
  socket.on("data", (chunk: Buffer) => {
    parse(chunk)
    if (again.length === 0) return
    socket.write(again.length === 1 ? again[0]! : Buffer.concat(again))
    again = []
  })
  socket.write(Buffer.concat([...asks.values()]))
  return socket
}

// ---------------------------------------------------------------------------
// the run
// ---------------------------------------------------------------------------

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))
const print = (o: unknown) => process.stdout.write(`${JSON.stringify(o)}\n`)

const main = async () => {
  const sockets: Array<net.Socket> = []
  let pending = config.idle
  let signalReady!: () => void
  const ready = new Promise<void>((ok) => (signalReady = ok))
  if (pending === 0) signalReady()
  const t0 = performance.now()
  for (let i = 0; i < config.idle; i++) {
    sockets.push(await slowConnection((i * 1000) / config.idle, () => --pending === 0 && signalReady()))
  }
  const connectMs = performance.now() - t0
  await ready
  print({ phase: "idle-ready", idle: config.idle, connectMs: Math.round(connectMs) })
  await new Promise<void>((ok) => readline.createInterface({ input: process.stdin }).once("line", () => ok()))

  for (let i = 0; i < config.busy; i++) sockets.push(await busyConnection())
  await sleep(config.warmup * 1000)
  const out = {
    callsPerSec: [] as Array<number>,
    idleCallsPerSec: [] as Array<number>,
    idleP50ms: [] as Array<number>,
    idleP99ms: [] as Array<number>,
    serverCpuPct: [] as Array<number>,
    cpuUsPerCall: [] as Array<number>,
    generatorCpuPct: [] as Array<number>
  }
  for (let r = 0; r < config.runs; r++) {
    const lat: Array<number> = []
    idleLatencies = lat
    const [b0, i0, c0, g0, w0] = [busyAnswered, idleAnswered, serverCpuUs(), ownCpuUs(), performance.now()]
    await sleep(config.seconds * 1000)
    const [b1, i1, c1, g1, w1] = [busyAnswered, idleAnswered, serverCpuUs(), ownCpuUs(), performance.now()]
    idleLatencies = undefined
    const wallUs = (w1 - w0) * 1000
    out.callsPerSec.push(((b1 - b0) * 1e6) / wallUs)
    out.idleCallsPerSec.push(((i1 - i0) * 1e6) / wallUs)
    if (lat.length > 0) out.idleP50ms.push(quantile(lat, 0.5)), out.idleP99ms.push(quantile(lat, 0.99))
    out.serverCpuPct.push(((c1 - c0) * 100) / wallUs)
    if (b1 - b0 + i1 - i0 > 0) out.cpuUsPerCall.push((c1 - c0) / (b1 - b0 + i1 - i0))
    out.generatorCpuPct.push(((g1 - g0) * 100) / wallUs)
  }
  busyRunning = false
  closing = true
  for (const t of timers) clearInterval(t)
  for (const s of sockets) s.destroy()
  print(out)
  process.exit(0)
}

main().catch((e) => die(e instanceof Error ? e.message : String(e)))
