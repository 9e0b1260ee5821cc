/**
 * Descriptor passing: calls over the descriptor-capable UNIX transport
 * (native/fdpass.c) against calls over the plain `net.Socket` UNIX
 * transport, and descriptors per second. Client and server in one process,
 * 100 calls in flight; rounds alternate the two transports so a slow spell
 * of a shared machine lands on both. Each figure is the median of the rounds.
 *
 *   npx tsx scripts/bench/descriptors.ts [--seconds S] [--rounds R]
 *
 * Prints a markdown table on stdout (progress on stderr).
 */
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import * as Effect from "effect/Effect"
import * as Argument from "../../src/Argument.js"
import * as Demo from "../../src/cli/Demo.js"
import * as Command from "../../src/Command.js"
import * as Responders from "../../src/Responders.js"
import * as NodeAmp from "../../src/node/NodeAmp.js"
import * as UnixDescriptorTransport from "../../src/node/UnixDescriptorTransport.js"

const argv = process.argv.slice(2)
const opt = (name: string, dflt: number) => {
  const i = argv.indexOf(name)
  return i >= 0 ? Number(argv[i + 1]) : dflt
}
const seconds = opt("--seconds", 1)
const rounds = opt("--rounds", 3)
const INFLIGHT = 100

const TakeFd = Command.make("TakeFd", { arguments: { fd: Argument.Descriptor }, response: { ok: Argument.Boolean } })
const responders = Responders.layer(
  ...Demo.responders,
  Responders.respond(TakeFd, ({ fd }) => Effect.sync(() => (fs.closeSync(fd), { ok: true })))
)
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "amp-fd-bench-"))
let n = 0

/** Calls per second of `call`, INFLIGHT at once, for `secs` after a warm-up of the same length. */
const rate = <E>(call: Effect.Effect<unknown, E>, secs: number) =>
  Effect.gen(function*() {
    const runFor = (ms: number) =>
      Effect.gen(function*() {
        const end = Date.now() + ms
        let done = 0
        const worker = Effect.gen(function*() {
          while (Date.now() < end) {
            yield* call
            done++
          }
        })
        const t0 = performance.now()
        yield* Effect.all(Array.from({ length: INFLIGHT }, () => worker), { concurrency: "unbounded", discard: true })
        return done / ((performance.now() - t0) / 1000)
      })
    yield* runFor(secs * 1000)
    return yield* runFor(secs * 1000)
  })

const measure = (descriptors: boolean, withFds: boolean) =>
  Effect.gen(function*() {
    const where = path.join(tmp, `b${n++}.sock`)
    yield* NodeAmp.serve({ _tag: "unix", path: where }, { descriptors })
    const amp = yield* NodeAmp.connect({ _tag: "unix", path: where }, { descriptors })
    const [r, w] = yield* UnixDescriptorTransport.pipe()
    const call = withFds
      ? amp.callRemote(TakeFd, { fd: w })
      : amp.callRemote(Demo.Sum, { a: 13n, b: 81n })
    const result = yield* rate(call, seconds)
    fs.closeSync(r)
    fs.closeSync(w)
    return result
  }).pipe(Effect.provide(responders), Effect.scoped)

const median = (xs: ReadonlyArray<number>) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!

const main = Effect.gen(function*() {
  if (!UnixDescriptorTransport.available()) throw new Error(UnixDescriptorTransport.unavailableReason())
  const plain: Array<number> = []
  const fd: Array<number> = []
  const fds: Array<number> = []
  for (let i = 0; i < rounds; i++) {
    plain.push(yield* measure(false, false))
    fd.push(yield* measure(true, false))
    fds.push(yield* measure(true, true))
    process.stderr.write(`round ${i + 1}: plain ${plain[i]!.toFixed(0)}, fdpass ${fd[i]!.toFixed(0)}, descriptors ${fds[i]!.toFixed(0)}\n`)
  }
  const p = median(plain)
  const f = median(fd)
  const d = median(fds)
  // Each round's own ratio, then their median: a slow spell hits both sides of a round alike.
  const paired = median(fd.map((x, i) => x / plain[i]!))
  const k = (x: number) => Math.round(x).toLocaleString("en-US")
  process.stdout.write(
    [
      `| workload (${INFLIGHT} in flight, one process, median of ${rounds}) | plain net.Socket UNIX | descriptor-capable UNIX | ratio of medians | median of round ratios |`,
      "|---|---|---|---|---|",
      `| Sum calls/s | ${k(p)} | ${k(f)} | ${(f / p).toFixed(2)}x | ${paired.toFixed(2)}x |`,
      `| calls/s with one descriptor each (descriptors/s) | n/a | ${k(d)} | | |`,
      ""
    ].join("\n")
  )
})

Effect.runPromise(main).then(() => process.exit(0), (e) => {
  console.error(e)
  process.exit(1)
})
