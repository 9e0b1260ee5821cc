/**
 * Worker pools: `Sum` calls and a CPU-bound `Burn`, through a `ProcessPool`
 * of 2 workers and over one direct connection to one worker, for effect-amp
 * workers (pool-worker.ts, on Node) and Twisted workers (pool_worker.py),
 * the parent always effect-amp. The pool's per-call cost is
 * 1/(pool of 1, sequential) − 1/(direct, sequential), in µs.
 *
 *   npx tsx scripts/bench/pool.ts [options]
 *   tsc -p scripts/bench/tsconfig.json && node .bench/scripts/bench/pool.js [options]
 *
 *   --quick             one round of one short run (under 40 s; for smoke tests)
 *   --rounds R          rounds (default 3, quick 1): each round measures every
 *                       configuration once more, in turn, each in a fresh process
 *   --runs N            timed runs per measurement (default 2, quick 1)
 *   --seconds S         length of a timed run (default 0.75; quick 0.3)
 *   --warmup S          each half of the warm-up (default 0.5; quick 0.25): S seconds of Sum
 *                       calls 100 in flight, then S seconds of the measured load
 *   --burn N            rounds of work per Burn call (default 5000: 1.5 to 2.5 ms in CPython here, ~25 µs on Node)
 *   --json FILE         also write every figure (and every run) as JSON
 *   --write-results     also write the table to the "## Worker pools" section of
 *                       scripts/bench/RESULTS.md (text after its `<!-- pool notes -->` line is kept)
 *
 * Every measurement is a fresh driver process (pool-driver.ts) that starts its
 * worker(s) before timing, warms up, then times `runs` runs; each figure is the
 * median of every run of every round. The driver also reports its CPU time per
 * call (in the --json output only: on this VM it mostly counts the cost of
 * waking an idle peer with a write, not the pool's bookkeeping). The markdown table goes to stdout,
 * progress to stderr. A full run takes about 3 minutes, --quick about 40 s.
 */
import { type ChildProcess, spawn } from "node:child_process"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { fileURLToPath } from "node:url"
import { median, options } from "./common.js"
import { PYTHON, sourceDir, type Timing, twistedVersion } from "./contenders.js"
import type { DriverSpec } from "./pool-driver.js"
import { BURN_N } from "./poolCommands.js"

// ---------------------------------------------------------------------------
// options
// ---------------------------------------------------------------------------

const argv = process.argv.slice(2)
function fail(message: string): never {
  process.stderr.write(`pool.ts: ${message}\n`)
  process.exit(2)
}
if (argv.includes("--help") || argv.includes("-h")) {
  const doc = fs.readFileSync(new URL(import.meta.url), "utf8").match(/\/\*\*([\s\S]*?)\*\//)?.[1] ?? ""
  process.stdout.write(`${doc.replace(/^ \* ?/gm, "").trim()}\n`)
  process.exit(0)
}
const valued = new Set(["--rounds", "--runs", "--seconds", "--warmup", "--burn", "--json"])
for (let i = 0; i < argv.length; i++) {
  const a = argv[i]!
  if (valued.has(a)) i++
  else if (a !== "--quick" && a !== "--write-results") fail(`unknown option ${a} (see --help)`)
}
const { numberOption, option } = options(argv, fail)
const quick = argv.includes("--quick")
const rounds = numberOption("--rounds") ?? (quick ? 1 : 3)
const timing: Timing = {
  warmup: numberOption("--warmup") ?? (quick ? 0.25 : 0.5),
  seconds: numberOption("--seconds") ?? (quick ? 0.3 : 0.75),
  runs: numberOption("--runs") ?? (quick ? 1 : 2)
}
const burnN = Math.round(numberOption("--burn") ?? BURN_N)
const jsonFile = option("--json")

const t0 = performance.now()
const log = (s: string) => process.stderr.write(`[${((performance.now() - t0) / 1000).toFixed(1).padStart(5)}s] ${s}\n`)

const PIPELINED = 100
const BURN_INFLIGHT = 4
const POOL_CONCURRENCY = 50

// ---------------------------------------------------------------------------
// children
// ---------------------------------------------------------------------------

const here = path.dirname(fileURLToPath(import.meta.url))
const ext = path.extname(fileURLToPath(import.meta.url))

/**
 * The driver and the Node worker as plain-node scripts: bundled once with
 * esbuild (a devDependency) into a temporary folder, from the .ts sources
 * under tsx or from the compiled .js files, as contenders.ts does for
 * child.ts. A bundle starts in a fraction of a second, where the compiled
 * ESM tree of effect takes about 2 s to load here and tsx adds its loader
 * thread (a second busy thread on a 2-core machine). Without esbuild: the
 * files themselves (through tsx's loader from .ts).
 */
const scripts = async (): Promise<{ readonly flags: ReadonlyArray<string>; readonly driver: string; readonly worker: string }> => {
  const driver = path.join(here, `pool-driver${ext}`)
  const worker = path.join(here, `pool-worker${ext}`)
  try {
    const name = "esbuild" // a devDependency: typed here, loaded at run time
    const esbuild = (await import(name)) as { readonly build: (o: Record<string, unknown>) => Promise<unknown> }
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "effect-amp-pool-bench-"))
    process.on("exit", () => fs.rmSync(dir, { recursive: true, force: true }))
    await esbuild.build({
      entryPoints: { "pool-driver": driver, "pool-worker": worker },
      bundle: true,
      platform: "node",
      format: "esm",
      target: "node20",
      outdir: dir,
      outExtension: { ".js": ".mjs" },
      logLevel: "silent"
    })
    return { flags: [], driver: path.join(dir, "pool-driver.mjs"), worker: path.join(dir, "pool-worker.mjs") }
  } catch (e) {
    log(`(no esbuild bundle, children start slower: ${e instanceof Error ? e.message : String(e)})`)
    return { flags: ext === ".ts" ? process.execArgv : [], driver, worker }
  }
}

const children = new Set<ChildProcess>()
const stopChildren = () => {
  for (const c of children) c.kill()
  children.clear()
}
process.on("exit", stopChildren)

/** Runs one driver to completion; its last stdout line is the JSON result. */
const drive = (flags: ReadonlyArray<string>, driver: string, spec: DriverSpec): Promise<DriverResult> =>
  new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [...flags, "--expose-gc", driver, JSON.stringify(spec)], { stdio: ["ignore", "pipe", "pipe"] })
    children.add(child)
    let out = ""
    let err = ""
    child.stdout.setEncoding("utf8").on("data", (s: string) => (out += s))
    child.stderr.setEncoding("utf8").on("data", (s: string) => (err = (err + s).slice(-4096)))
    const budget = (2 * spec.timing.warmup + spec.timing.seconds * spec.timing.runs) * 4000 + 30_000
    const timer = setTimeout(() => (child.kill(), reject(new Error(`timed out after ${budget} ms`))), budget)
    child.once("error", reject)
    child.once("close", (code) => {
      clearTimeout(timer)
      children.delete(child)
      const last = out.trim().split("\n").pop() ?? ""
      if (code !== 0) return reject(new Error(`exit ${code}: ${err.trim().split("\n").slice(-3).join(" | ")}`))
      try {
        resolve(JSON.parse(last) as DriverResult)
      } catch {
        reject(new Error(`no JSON from the driver: ${last}`))
      }
    })
  })

interface DriverResult {
  readonly callsPerSec: ReadonlyArray<number>
  readonly cpuUsPerCall: ReadonlyArray<number>
}

// ---------------------------------------------------------------------------
// measurements
// ---------------------------------------------------------------------------

type WorkerKind = "node" | "twisted"
const KINDS: ReadonlyArray<WorkerKind> = ["node", "twisted"]
const KIND_LABEL: Record<WorkerKind, string> = { node: "effect-amp workers (Node)", twisted: "Twisted workers" }

/** One configuration: a target and a load. */
interface Config {
  readonly id: string
  readonly target: DriverSpec["target"]
  readonly load: DriverSpec["load"]
  readonly inflight: number
}
const direct = { _tag: "direct" } as const
const pool = (size: number, concurrency = 1) => ({ _tag: "pool", size, concurrency }) as const
const CONFIGS: ReadonlyArray<Config> = [
  { id: "sum-seq-direct", target: direct, load: "sum", inflight: 1 },
  { id: "sum-seq-pool1", target: pool(1), load: "sum", inflight: 1 },
  { id: "sum-seq-pool2", target: pool(2), load: "sum", inflight: 1 },
  { id: "sum-pipe-direct", target: direct, load: "sum", inflight: PIPELINED },
  { id: "sum-pipe-pool2", target: pool(2), load: "sum", inflight: PIPELINED },
  { id: "sum-pipe-pool2-c", target: pool(2, POOL_CONCURRENCY), load: "sum", inflight: PIPELINED },
  { id: "burn-direct", target: direct, load: "burn", inflight: BURN_INFLIGHT },
  { id: "burn-pool2", target: pool(2), load: "burn", inflight: BURN_INFLIGHT }
]

/** results[kind][config id] = one DriverResult per round (undefined: failed). */
type Results = Record<WorkerKind, Record<string, Array<DriverResult | undefined>>>

const measureAll = async (): Promise<Results> => {
  const { driver, flags, worker } = await scripts()
  const command: Record<WorkerKind, { readonly command: string; readonly args: ReadonlyArray<string> }> = {
    node: { command: process.execPath, args: [...flags, worker] },
    twisted: { command: PYTHON, args: ["-u", path.join(sourceDir, "pool_worker.py")] }
  }
  const results: Results = { node: {}, twisted: {} }
  for (let r = 1; r <= rounds; r++) {
    for (const config of CONFIGS) {
      for (const kind of KINDS) {
        log(`round ${r} of ${rounds}: ${config.id}, ${kind}`)
        const spec: DriverSpec = { ...command[kind], target: config.target, load: config.load, inflight: config.inflight, burnN, timing }
        const result = await drive(flags, driver, spec).catch((e: unknown) => {
          log(`  n/a: ${e instanceof Error ? e.message : String(e)}`)
          return undefined
        })
        ;(results[kind][config.id] ??= []).push(result)
      }
    }
  }
  return results
}

// ---------------------------------------------------------------------------
// the table
// ---------------------------------------------------------------------------

/** Every run of every round of a configuration, or undefined if any round failed. */
const runsOf = (results: Results, kind: WorkerKind, id: string, key: keyof DriverResult = "callsPerSec") => {
  const rs = results[kind][id] ?? []
  if (rs.length === 0 || rs.some((x) => x === undefined)) return undefined
  return rs.flatMap((x) => [...x![key]])
}
const med = (results: Results, kind: WorkerKind, id: string, key: keyof DriverResult = "callsPerSec") => {
  const xs = runsOf(results, kind, id, key)
  return xs === undefined ? undefined : median(xs)
}

/**
 * The pool's per-call cost, µs: each round's 1/pool − 1/direct (the medians of
 * that round's runs), then the median and the range of the rounds.
 */
const cost = (results: Results, kind: WorkerKind, poolId: string) => {
  const p = results[kind][poolId] ?? []
  const d = results[kind]["sum-seq-direct"] ?? []
  const perRound: Array<number> = []
  for (let i = 0; i < Math.min(p.length, d.length); i++) {
    const pr = p[i]
    const dr = d[i]
    if (pr === undefined || dr === undefined) return undefined
    perRound.push((1 / median(pr.callsPerSec) - 1 / median(dr.callsPerSec)) * 1e6)
  }
  return perRound.length === 0 ? undefined : { median: median(perRound), min: Math.min(...perRound), max: Math.max(...perRound), perRound }
}

const figure = (n: number | undefined): string =>
  n === undefined
    ? "n/a"
    : Math.abs(n) >= 100
    ? Math.round(n).toLocaleString("en-US")
    : Math.abs(n) >= 10
    ? n.toFixed(1)
    : n.toFixed(2)
const times = (a: number | undefined, b: number | undefined) =>
  a === undefined || b === undefined ? "n/a" : `${(a / b).toFixed(2)}x`

const table = (results: Results): string => {
  const row = (label: string, f: (k: WorkerKind) => string) => `| ${label} | ${KINDS.map(f).join(" | ")} |`
  const calls = (id: string) => (k: WorkerKind) => figure(med(results, k, id))
  const ratio = (a: string, b: string) => (k: WorkerKind) => times(med(results, k, a), med(results, k, b))
  const costOf = (id: string) => (k: WorkerKind) => {
    const c = cost(results, k, id)
    return c === undefined ? "n/a" : rounds > 1 ? `${figure(c.median)} (${figure(c.min)} to ${figure(c.max)})` : figure(c.median)
  }
  return [
    `| workload (parent: effect-amp) | ${KINDS.map((k) => KIND_LABEL[k]).join(" | ")} |`,
    `|---|${KINDS.map(() => "---:|").join("")}`,
    row("Sum, sequential: direct connection to one worker (calls/s)", calls("sum-seq-direct")),
    row("Sum, sequential: pool of 1 (calls/s)", calls("sum-seq-pool1")),
    row("Sum, sequential: pool of 2 (calls/s)", calls("sum-seq-pool2")),
    row("**pool's per-call cost**: 1/pool of 1 − 1/direct, sequential Sum (µs)", costOf("sum-seq-pool1")),
    row("same, pool of 2 (µs)", costOf("sum-seq-pool2")),
    row(`Sum, ${PIPELINED} in flight: direct connection to one worker (calls/s)`, calls("sum-pipe-direct")),
    row(`Sum, ${PIPELINED} in flight: pool of 2, 1 call per worker at a time (calls/s)`, calls("sum-pipe-pool2")),
    row(`Sum, ${PIPELINED} in flight: pool of 2, ${POOL_CONCURRENCY} calls per worker (calls/s)`, calls("sum-pipe-pool2-c")),
    row(`Sum, ${PIPELINED} in flight: pool of 2 (1 per worker) / direct`, ratio("sum-pipe-pool2", "sum-pipe-direct")),
    row(`Sum, ${PIPELINED} in flight: pool of 2 (${POOL_CONCURRENCY} per worker) / direct`, ratio("sum-pipe-pool2-c", "sum-pipe-direct")),
    row(`Burn(${burnN}), ${BURN_INFLIGHT} in flight: direct connection to one worker (calls/s)`, calls("burn-direct")),
    row(`Burn(${burnN}), ${BURN_INFLIGHT} in flight: pool of 2 (calls/s)`, calls("burn-pool2")),
    row(`**Burn: pool of 2 / direct**`, ratio("burn-pool2", "burn-direct"))
  ].join("\n")
}

const LEGEND = [
  "The parent is effect-amp in every row (a fresh driver process per figure); the columns name the workers:",
  "`scripts/bench/pool-worker.ts` (effect-amp on Node) and `scripts/bench/pool_worker.py` (Twisted), children",
  "on fds 3/4 started before timing. \"Direct\": `Child.spawn` + `NodeAmp.over`, one child; \"pool of N\":",
  "`ProcessPool.make` with min = max = N and the default of one call per worker at a time (ampoule's), unless the row",
  `says ${POOL_CONCURRENCY} per worker. Warm-up: Sum calls 100 in flight, then the measured load. Calls/s: the median`,
  "of every timed run of every round. Per-call cost: each round's 1/pool − 1/direct from that round's medians, then the",
  "median of the rounds (and their range). `Burn(n)`: n rounds of a 32-bit LCG step and an xorshift, the same",
  `n (${burnN}) and the same result in both languages: about 1.5 to 2.5 ms a call in CPython here, about 25 µs on Node.`,
  "The machine is shared: compare figures of the same run."
].join("\n")

// ---------------------------------------------------------------------------
// main
// ---------------------------------------------------------------------------

const commandLine = (): string => {
  const args = argv.map((a) => (/^[\w./,=:-]+$/.test(a) ? a : `'${a}'`)).join(" ")
  const script = path.relative(process.cwd(), process.argv[1] ?? "scripts/bench/pool.ts")
  const viaTsx = process.execArgv.some((a) => a.includes("tsx"))
  return `${viaTsx ? "npx tsx" : "node"} ${script}${args ? ` ${args}` : ""}`
}

const POOL_HEADING = "## Worker pools"
const POOL_NOTES = "<!-- pool notes -->"
const NOTES = "<!-- notes -->"

/**
 * RESULTS.md with `section` as its "## Worker pools" section: in place of
 * the old one (keeping the text after its `<!-- pool notes -->` line, up to
 * the next "## " heading), or else first after run.ts's `<!-- notes -->`
 * line, where run.ts's `--write-results` keeps it.
 */
const withSection = (previous: string, section: string): string => {
  const at = previous.indexOf(`\n${POOL_HEADING}\n`)
  if (at >= 0) {
    const next = previous.indexOf("\n## ", at + 1)
    const end = next < 0 ? previous.length : next + 1
    const old = previous.slice(at + 1, end)
    const kept = old.includes(POOL_NOTES) ? old.slice(old.indexOf(POOL_NOTES) + POOL_NOTES.length).replace(/^\n/, "") : ""
    return `${previous.slice(0, at + 1)}${section}${POOL_NOTES}\n${kept || "\n"}${previous.slice(end)}`
  }
  const notes = previous.indexOf(NOTES)
  if (notes < 0) return `${previous}${previous.endsWith("\n") ? "" : "\n"}\n${NOTES}\n\n${section}${POOL_NOTES}\n\n`
  const after = notes + NOTES.length + 1
  return `${previous.slice(0, after)}\n${section}${POOL_NOTES}\n\n${previous.slice(after).replace(/^\n/, "")}`
}

const main = async () => {
  process.once("SIGINT", () => (stopChildren(), process.exit(130)))
  const twistedV = await twistedVersion()
  log(`${CONFIGS.length} configurations x ${KINDS.length} kinds of worker, ${rounds} round(s) of ${timing.runs} run(s) of ${timing.seconds} s after 2 x ${timing.warmup} s of warm-up${quick ? " (quick)" : ""}`)
  const results = await measureAll()
  const cpus = os.cpus()
  const seconds = Math.round((performance.now() - t0) / 100) / 10
  const date = new Date().toISOString()
  const header = [
    `- Date: ${date}`,
    `- Node ${process.version}; Twisted ${twistedV} (${path.basename(PYTHON)}); CPU: ${cpus[0]?.model ?? "unknown"}, ${cpus.length} cores (os.cpus()), shared`,
    `- Command: \`${commandLine()}\`${quick ? " (quick: short runs, rough figures)" : ""}`,
    `- ${rounds} round${rounds === 1 ? "" : "s"} of ${timing.runs} timed run${timing.runs === 1 ? "" : "s"} of ${timing.seconds} s per figure, after 2 × ${timing.warmup} s of warm-up, each in a fresh process; took ${seconds} s`
  ].join("\n")
  const markdown = `${header}\n\n${table(results)}\n\n${LEGEND}\n`
  process.stdout.write(markdown)
  if (argv.includes("--write-results")) {
    const file = path.join(sourceDir, "RESULTS.md")
    const previous = fs.existsSync(file) ? fs.readFileSync(file, "utf8") : "# Benchmark results\n"
    fs.writeFileSync(file, withSection(previous, `${POOL_HEADING}\n\n${markdown}\n`))
    log(`wrote ${file}`)
  }
  if (jsonFile !== undefined) {
    const costs = Object.fromEntries(KINDS.map((k) => [k, { pool1: cost(results, k, "sum-seq-pool1"), pool2: cost(results, k, "sum-seq-pool2") }]))
    fs.writeFileSync(jsonFile, `${JSON.stringify({ meta: { date, command: commandLine(), rounds, timing, burnN, seconds }, results, costs }, null, 2)}\n`)
    log(`wrote ${jsonFile}`)
  }
}

main().then(
  () => (stopChildren(), process.exit(0)),
  (e) => {
    console.error(e)
    stopChildren()
    process.exit(1)
  }
)
