/**
 * The harness's child processes (Node implementations), one job each:
 *
 *   child.ts serve IMPL sum            serves Sum; prints "listening tcp 127.0.0.1 PORT"; runs until killed
 *   child.ts serve IMPL echo           serves Echo and Sum; prints "listening tcp 127.0.0.1 PORT"; runs until
 *                                      killed; on SIGUSR2, a full GC, then {"heap_mb", "external_mb", "rss_mb"}
 *   child.ts serve IMPL slow COUNT WARM
 *                                      serves Slow (1 box/ms); prints {"warm_rss_mb"} after WARM
 *                                      boxes, {"handled", "peak_rss_mb"} after COUNT, and exits
 *   child.ts memory IMPL CALLS WARMUP  Sum client and server in this process: heap (after GC)
 *                                      and RSS after WARMUP calls, then after CALLS more
 *   child.ts codec IMPL TIMING         codec rates; prints {"encodeSmall", "decodeSmall", ...}
 *   child.ts calls IMPL INFLIGHT pipelined|sequential TIMING
 *                                      Sum client and server in this process; prints {"callsPerSec"
 *                                      (, "p50us", "p99us")}
 *   child.ts client IMPL PORT INFLIGHT TIMING
 *                                      Sum client against a server elsewhere; prints {"callsPerSec"}
 *   child.ts serve IMPL large          serves Echo, BigEcho and BigCheck; prints "listening tcp 127.0.0.1 PORT"
 *   child.ts large IMPL echo|big INFLIGHT TIMING
 *                                      Echo of a 60 KB text or BigEcho of 1 MiB, client and server in
 *                                      this process; prints {"callsPerSec"}
 *   child.ts check IMPL PORT           BigCheck round trips against a server elsewhere; prints
 *                                      {"checked": [sizes]}, or exits 1 at the first difference
 *
 * TIMING is the JSON of a `Timing` ({"warmup", "seconds", "runs"}).
 *
 * IMPL is an id of impl/index.ts (effect-amp, raw).
 */
import { gc, listeningLine, MiB } from "./common.js"
import type { Timing } from "./contenders.js"
import { isNodeImplId, nodeImpls } from "./impl/index.js"
import { checkLarge, nodeCodec, timedCalls, timedLarge } from "./measure.js"

const [mode, id, a, b, c] = process.argv.slice(2)
if (!isNodeImplId(id)) throw new Error(`unknown implementation ${id}; one of ${Object.keys(nodeImpls).join(", ")}`)
const impl = await nodeImpls[id]()
const print = (o: unknown) => process.stdout.write(`${typeof o === "string" ? o : JSON.stringify(o)}\n`)

if (mode === "serve" && a === "sum") {
  const server = await impl.serveSum(0)
  print(listeningLine(server.port))
} else if (mode === "serve" && a === "echo") {
  const server = await impl.serveEcho(0)
  process.on("SIGUSR2", () => {
    gc(), gc()
    const m = process.memoryUsage()
    print({ heap_mb: MiB(m.heapUsed), external_mb: MiB(m.external), rss_mb: MiB(m.rss) })
  })
  print(listeningLine(server.port))
} else if (mode === "serve" && a === "large") {
  const server = await impl.serveLarge(0)
  print(listeningLine(server.port))
} else if (mode === "serve" && a === "slow") {
  const target = Number(b)
  const warm = Number(c ?? 32)
  let handled = 0
  const rss = () => MiB(process.memoryUsage().rss)
  const server = await impl.serveSlow(0, () => {
    handled++
    if (handled === warm) print({ warm_rss_mb: rss() })
    if (handled === target) {
      print({ handled, peak_rss_mb: process.resourceUsage().maxRSS / 1024 })
      process.exit(0)
    }
  })
  print(listeningLine(server.port))
} else if (mode === "memory") {
  const calls = Number(a)
  const server = await impl.serveSum(0)
  const client = await impl.connectSum(server.port)
  await client.run({ inflight: 100, calls: Number(b ?? 50_000) })
  gc(), gc()
  const warm = process.memoryUsage()
  await client.run({ inflight: 100, calls })
  gc(), gc()
  const after = process.memoryUsage()
  print({
    calls,
    heap_warm_mb: MiB(warm.heapUsed),
    heap_after_mb: MiB(after.heapUsed),
    rss_warm_mb: MiB(warm.rss),
    rss_after_mb: MiB(after.rss)
  })
  await client.close()
  await server.close()
  process.exit(0)
} else if (mode === "codec") {
  print(nodeCodec(impl, JSON.parse(a!) as Timing))
  process.exit(0)
} else if (mode === "calls") {
  const server = await impl.serveSum(0)
  const client = await impl.connectSum(server.port)
  print(await timedCalls(client, Number(a), JSON.parse(c!) as Timing, b === "sequential"))
  await client.close()
  await server.close()
  process.exit(0)
} else if (mode === "client") {
  const client = await impl.connectSum(Number(a))
  print(await timedCalls(client, Number(b), JSON.parse(c!) as Timing, false))
  await client.close()
  process.exit(0)
} else if (mode === "large" && (a === "echo" || a === "big")) {
  const server = await impl.serveLarge(0)
  const client = await impl.connectLarge(server.port)
  print(await timedLarge(client, a, Number(b), JSON.parse(c!) as Timing))
  await client.close()
  await server.close()
  process.exit(0)
} else if (mode === "check") {
  const client = await impl.connectLarge(Number(a))
  print({ checked: await checkLarge(client) })
  await client.close()
  process.exit(0)
} else {
  throw new Error(`usage: child.ts serve IMPL sum|echo|large | serve IMPL slow COUNT WARM | memory IMPL CALLS WARMUP | codec IMPL TIMING | calls IMPL N pipelined|sequential TIMING | client IMPL PORT N TIMING | large IMPL echo|big N TIMING | check IMPL PORT (got ${process.argv.slice(2).join(" ")})`)
}
