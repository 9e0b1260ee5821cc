/**
 * `npm run bench`: every workload on effect-amp, a live Twisted peer and a
 * raw-Node baseline, in one run, printed side by side with ratios.
 *
 *   npm run bench [-- --quick] [--only NAME] [--runs N] [--write-results]
 *
 * Each figure is the median of several runs after a warm-up. The machine is
 * shared and noisy: compare the ratios, not the absolute numbers.
 */
import { type ChildProcess, execFileSync, spawn } from "node:child_process"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import * as readline from "node:readline"
import * as Effect from "effect/Effect"
import * as AmpBox from "../../src/AmpBox.js"
import * as BoxCodec from "../../src/BoxCodec.js"
import * as Argument from "../../src/Argument.js"
import * as Command from "../../src/Command.js"
import * as BinaryBoxProtocol from "../../src/BinaryBoxProtocol.js"
import * as BoxDispatcher from "../../src/BoxDispatcher.js"
import * as Responders from "../../src/Responders.js"
import * as NodeAmp from "../../src/node/NodeAmp.js"
import * as NodeConnect from "../../src/node/NodeConnect.js"
import * as ours from "./impl/effectAmp.js"
import * as raw from "./impl/rawNode.js"

const argv = process.argv.slice(2)
const quick = argv.includes("--quick")
const only = argv.includes("--only") ? argv[argv.indexOf("--only") + 1] : undefined
const runs = argv.includes("--runs") ? Number(argv[argv.indexOf("--runs") + 1]) : quick ? 3 : 5
const PYTHON = process.env.AMP_PYTHON ?? "/usr/bin/python3"
const here = path.dirname(new URL(import.meta.url).pathname)
const source = here.includes(`${path.sep}.bench${path.sep}`) ? path.join(here, "..", "..", "..", "scripts", "bench") : here
const TWISTED = path.join(source, "twisted_bench.py")
const scale = quick ? 0.2 : 1

const median = (xs: ReadonlyArray<number>) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!
const timed = async (f: () => Promise<void> | void) => {
  const t = performance.now()
  await f()
  return (performance.now() - t) / 1000
}
const python = (args: ReadonlyArray<string>) => JSON.parse(execFileSync(PYTHON, [TWISTED, ...args], { encoding: "utf8" })) as Record<string, number>

interface Row {
  readonly workload: string
  readonly unit: string
  readonly ours: number | undefined
  readonly twisted: number | undefined
  readonly raw: number | undefined
  /** true when smaller is better (latency, memory). */
  readonly lowerIsBetter?: boolean
}
const rows: Array<Row> = []
const want = (name: string) => only === undefined || name.includes(only)
const log = (s: string) => process.stderr.write(`${s}\n`)

// ---------------------------------------------------------------------------
// codec
// ---------------------------------------------------------------------------

const codec = () => {
  const n = Math.round(1_000_000 * scale)
  const box = AmpBox.make({ _command: "Sum", _ask: "1f", a: "13", b: "81" })
  const enc = () => {
    const t = performance.now()
    for (let i = 0; i < n; i++) BoxCodec.encodeBox(box)
    return n / ((performance.now() - t) / 1000)
  }
  const rawEnc = () => {
    const pairs = [["_command", "Sum"], ["_ask", "1f"], ["a", "13"], ["b", "81"]] as const
    const t = performance.now()
    for (let i = 0; i < n; i++) raw.encode(pairs)
    return n / ((performance.now() - t) / 1000)
  }
  const many = Buffer.from(BoxCodec.encodeBoxes(Array.from({ length: 1000 }, () => box)))
  const dec = () => {
    const d = new BoxCodec.BoxDecoder()
    const t = performance.now()
    let count = 0
    for (let i = 0; i < n / 1000; i++) {
      d.push(many)
      while (d.next()) count++
    }
    return count / ((performance.now() - t) / 1000)
  }
  const rawDec = () => {
    let count = 0
    const p = raw.parser(() => count++)
    const t = performance.now()
    for (let i = 0; i < n / 1000; i++) p(many)
    return count / ((performance.now() - t) / 1000)
  }
  const big = Buffer.from(BoxCodec.encodeBox(AmpBox.make({ v: new Uint8Array(65535).fill(120) })))
  const bigRounds = Math.round(20_000 * scale)
  const dec64 = () => {
    const d = new BoxCodec.BoxDecoder()
    const t = performance.now()
    for (let i = 0; i < bigRounds; i++) {
      d.push(big)
      d.next()
    }
    return (big.length * bigRounds) / ((performance.now() - t) / 1000) / 1e6
  }
  const rawDec64 = () => {
    const p = raw.parser(() => undefined)
    const t = performance.now()
    for (let i = 0; i < bigRounds; i++) p(big)
    return (big.length * bigRounds) / ((performance.now() - t) / 1000) / 1e6
  }
  const results = { enc: [] as Array<number>, rawEnc: [] as Array<number>, dec: [] as Array<number>, rawDec: [] as Array<number>, dec64: [] as Array<number>, rawDec64: [] as Array<number> }
  enc(), rawEnc(), dec(), rawDec(), dec64(), rawDec64() // warm-up
  for (let r = 0; r < runs; r++) {
    results.enc.push(enc())
    results.rawEnc.push(rawEnc())
    results.dec.push(dec())
    results.rawDec.push(rawDec())
    results.dec64.push(dec64())
    results.rawDec64.push(rawDec64())
  }
  const tw = Array.from({ length: Math.min(runs, 3) }, () => python(["codec", String(Math.round(200_000 * scale))]))
  rows.push({ workload: "encode small Sum box", unit: "boxes/s", ours: median(results.enc), twisted: median(tw.map((t) => t.encode_small!)), raw: median(results.rawEnc) })
  rows.push({ workload: "decode small Sum box", unit: "boxes/s", ours: median(results.dec), twisted: median(tw.map((t) => t.decode_small!)), raw: median(results.rawDec) })
  rows.push({ workload: "decode 64 KiB value", unit: "MB/s", ours: median(results.dec64), twisted: median(tw.map((t) => t.decode_64k_mbps!)), raw: median(results.rawDec64) })
}

// ---------------------------------------------------------------------------
// calls
// ---------------------------------------------------------------------------

const oursInProcess = async (inflight: number, calls: number, latencies?: Array<number>) => {
  const server = await ours.serve(0)
  const client = await ours.connect(server.port)
  await client.run(inflight, Math.max(1000, calls / 10))
  const seconds = await timed(() => client.run(inflight, calls, latencies))
  await client.close()
  await server.close()
  return calls / seconds
}

const rawInProcess = async (inflight: number, calls: number, latencies?: Array<number>) => {
  const server = await raw.serve(0)
  const client = await raw.connect((server.address() as { port: number }).port)
  const drive = async (n: number, lat?: Array<number>) => {
    let next = 0
    await Promise.all(Array.from({ length: inflight }, async () => {
      while (next < n) {
        next++
        const t0 = lat ? performance.now() : 0
        await client.call()
        if (lat) lat.push(performance.now() - t0)
      }
    }))
  }
  await drive(Math.max(1000, calls / 10))
  const seconds = await timed(() => drive(calls, latencies))
  client.close()
  server.close()
  return calls / seconds
}

const pipelined = async (inflight: number) => {
  const calls = Math.round((inflight >= 1000 ? 200_000 : 100_000) * scale)
  const o: Array<number> = []
  const r: Array<number> = []
  const t: Array<number> = []
  for (let i = 0; i < runs; i++) {
    o.push(await oursInProcess(inflight, calls))
    r.push(await rawInProcess(inflight, calls))
    if (i < 3) t.push(python(["pipelined", String(inflight), String(Math.round(calls / 4))]).calls_per_s!)
  }
  rows.push({ workload: `pipelined Sum, ${inflight} in flight, one process`, unit: "calls/s", ours: median(o), twisted: median(t), raw: median(r) })
}

const percentile = (xs: Array<number>, p: number) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length * p)]!

const sequential = async () => {
  const calls = Math.round(20_000 * scale)
  const o: Array<number> = []
  const r: Array<number> = []
  const t: Array<Record<string, number>> = []
  const oLat: Array<number> = []
  const rLat: Array<number> = []
  for (let i = 0; i < runs; i++) {
    oLat.length = 0
    rLat.length = 0
    o.push(await oursInProcess(1, calls, oLat))
    r.push(await rawInProcess(1, calls, rLat))
    if (i < 3) t.push(python(["sequential", String(Math.round(calls / 2))]))
  }
  rows.push({ workload: "sequential Sum (1 in flight)", unit: "calls/s", ours: median(o), twisted: median(t.map((x) => x.calls_per_s!)), raw: median(r) })
  rows.push({ workload: "sequential latency p50", unit: "µs", ours: percentile(oLat, 0.5) * 1000, twisted: median(t.map((x) => x.p50_us!)), raw: percentile(rLat, 0.5) * 1000, lowerIsBetter: true })
  rows.push({ workload: "sequential latency p99", unit: "µs", ours: percentile(oLat, 0.99) * 1000, twisted: median(t.map((x) => x.p99_us!)), raw: percentile(rLat, 0.99) * 1000, lowerIsBetter: true })
}

// ---------------------------------------------------------------------------
// two processes, and mixed
// ---------------------------------------------------------------------------

const startChild = (cmd: string, args: ReadonlyArray<string>) =>
  new Promise<{ child: ChildProcess; port: number }>((resolve, reject) => {
    const child = spawn(cmd, [...args], { stdio: ["ignore", "pipe", "inherit"] })
    readline.createInterface({ input: child.stdout! }).once("line", (line) => {
      const port = Number(line.trim().split(/[ :]/).pop())
      Number.isInteger(port) ? resolve({ child, port }) : reject(new Error(`unexpected: ${line}`))
    })
  })

const serverScript = path.join(here, "server.js")

const twoProcesses = async () => {
  const calls = Math.round(100_000 * scale)
  const o: Array<number> = []
  const r: Array<number> = []
  const t: Array<number> = []
  const mixedTwClient: Array<number> = []
  const mixedOurClient: Array<number> = []
  for (let i = 0; i < runs; i++) {
    const oursServer = await startChild(process.execPath, [serverScript, "effect-amp"])
    const c = await ours.connect(oursServer.port)
    await c.run(100, calls / 10)
    o.push(calls / (await timed(() => c.run(100, calls))))
    await c.close()
    if (i < 3) mixedTwClient.push(python(["client", String(oursServer.port), "100", String(calls / 4)]).calls_per_s!)
    oursServer.child.kill()

    const rawServer = await startChild(process.execPath, [serverScript, "raw"])
    const rc = await raw.connect(rawServer.port)
    const drive = async (n: number) => {
      let next = 0
      await Promise.all(Array.from({ length: 100 }, async () => {
        while (next++ < n) await rc.call()
      }))
    }
    await drive(calls / 10)
    r.push(calls / (await timed(() => drive(calls))))
    rc.close()
    rawServer.child.kill()

    if (i < 3) {
      const twServer = await startChild(PYTHON, [TWISTED, "serve"])
      t.push(python(["client", String(twServer.port), "100", String(calls / 4)]).calls_per_s!)
      const oc = await ours.connect(twServer.port)
      await oc.run(100, calls / 20)
      mixedOurClient.push((calls / 4) / (await timed(() => oc.run(100, calls / 4))))
      await oc.close()
      twServer.child.kill()
    }
  }
  rows.push({ workload: "pipelined Sum, 100 in flight, two processes", unit: "calls/s", ours: median(o), twisted: median(t), raw: median(r) })
  rows.push({ workload: "mixed: Twisted client → server (ours vs Twisted's)", unit: "calls/s", ours: median(mixedTwClient), twisted: median(t), raw: undefined })
  rows.push({ workload: "mixed: client (ours vs Twisted's) → Twisted server", unit: "calls/s", ours: median(mixedOurClient), twisted: median(t), raw: undefined })
}

// ---------------------------------------------------------------------------
// memory
// ---------------------------------------------------------------------------

const gc = () => (globalThis as { gc?: () => void }).gc?.()
const mb = (n: number) => n / 1024 / 1024

const memory = async () => {
  const calls = quick ? 200_000 : 1_000_000
  const server = await ours.serve(0)
  const client = await ours.connect(server.port)
  await client.run(100, 50_000)
  gc()
  const heapBefore = process.memoryUsage().heapUsed
  await client.run(100, calls)
  gc()
  const heapAfter = process.memoryUsage().heapUsed
  const rss = process.memoryUsage().rss
  await client.close()
  await server.close()
  rows.push({ workload: `heap growth after ${calls / 1000}k calls (after GC)`, unit: "MB", ours: mb(heapAfter - heapBefore), twisted: undefined, raw: undefined, lowerIsBetter: true })
  rows.push({ workload: `RSS after ${calls / 1000}k calls`, unit: "MB", ours: mb(rss), twisted: undefined, raw: undefined, lowerIsBetter: true })
  rows.push({ workload: "peak RSS, peer floods 64 KiB boxes at a 1 box/ms responder", unit: "MB", ours: await flood(), twisted: undefined, raw: undefined, lowerIsBetter: true })
}

/** A raw peer writes as fast as the socket takes it; the responder handles one box per millisecond. */
const flood = async () => {
  const total = quick ? 40 * 1024 * 1024 : 200 * 1024 * 1024
  const Slow = Command.make("Slow", { arguments: { blob: Argument.String }, requiresAnswer: false })
  let handled = 0
  const layer = Responders.layer(Responders.respond(Slow, () => Effect.as(Effect.sleep("1 millis"), {}).pipe(Effect.tap(() => void handled++))))
  let peak = process.memoryUsage().rss
  const sampler = setInterval(() => (peak = Math.max(peak, process.memoryUsage().rss)), 20)
  const program = Effect.gen(function*() {
    const server = yield* NodeAmp.serve({ _tag: "tcp", host: "127.0.0.1", port: 0 }, { dispatcher: { maxConcurrentCommands: 1 } })
    const port = (server.address as { port: number }).port
    const transport = yield* NodeConnect.tcp("127.0.0.1", port)
    const protocol = yield* BinaryBoxProtocol.make(transport)
    void BoxDispatcher
    const box = AmpBox.make({ _command: "Slow", blob: new Uint8Array(65000).fill(1) })
    const n = Math.ceil(total / 65000)
    for (let i = 0; i < n; i++) yield* protocol.sendBox(box)
    while (handled < n) yield* Effect.sleep("50 millis")
  }).pipe(Effect.scoped, Effect.provide(layer))
  await Effect.runPromise(program)
  clearInterval(sampler)
  return mb(peak)
}

// ---------------------------------------------------------------------------

const fmt = (n: number | undefined) =>
  n === undefined ? "–" : n >= 1000 ? Math.round(n).toLocaleString("en-US") : n >= 10 ? n.toFixed(1) : n.toFixed(2)
const ratio = (a: number | undefined, b: number | undefined, lower?: boolean) =>
  a === undefined || b === undefined || b === 0 ? "–" : `${(lower ? b / a : a / b).toFixed(2)}x`

const main = async () => {
  const twistedVersion = execFileSync(PYTHON, ["-c", "import twisted; print(twisted.__version__)"], { encoding: "utf8" }).trim()
  if (want("codec")) (log("codec..."), codec())
  if (want("pipelined")) {
    log("pipelined 100...")
    await pipelined(100)
    log("pipelined 1000...")
    await pipelined(1000)
  }
  if (want("sequential")) (log("sequential..."), await sequential())
  if (want("two")) (log("two processes and mixed..."), await twoProcesses())
  if (want("memory")) (log("memory..."), await memory())
  const header = "| workload | unit | effect-amp | Twisted | raw Node | vs Twisted | vs raw Node |\n|---|---|---:|---:|---:|---:|---:|"
  const table = [header, ...rows.map((r) =>
    `| ${r.workload} | ${r.unit} | ${fmt(r.ours)} | ${fmt(r.twisted)} | ${fmt(r.raw)} | ${ratio(r.ours, r.twisted, r.lowerIsBetter)} | ${ratio(r.ours, r.raw, r.lowerIsBetter)} |`
  )].join("\n")
  const cpu = os.cpus()[0]?.model ?? "unknown CPU"
  const meta = [
    `Date: ${new Date().toISOString()}`,
    `Node ${process.version}, Twisted ${twistedVersion}, ${cpu}, ${os.cpus().length} cores`,
    `Command: \`npm run bench${argv.length ? ` -- ${argv.join(" ")}` : ""}\` (median of ${runs} runs after a warm-up; ratios > 1x mean effect-amp is better)`
  ].join("\n\n")
  console.log(`${meta}\n\n${table}`)
  if (argv.includes("--write-results")) {
    const file = path.join(source, "RESULTS.md")
    const notes = fs.existsSync(file) ? fs.readFileSync(file, "utf8").split("<!-- notes -->")[1] ?? "" : ""
    fs.writeFileSync(file, `# Benchmark results\n\n${meta}\n\n${table}\n\n<!-- notes -->${notes}`)
    log(`wrote ${file}`)
  }
  process.exit(0)
}

main().catch((e) => {
  console.error(e)
  process.exit(1)
})
