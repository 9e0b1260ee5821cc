/**
 * The timing loops for Node implementations, run inside child processes
 * (child.ts) so that every measurement starts in a fresh process: codec
 * rates, and Sum calls over loopback TCP.
 */
import { createHash, randomBytes } from "node:crypto"
import { gc, quantile } from "./common.js"
import type { CallRuns, CodecRuns, Timing } from "./contenders.js"
import { encode } from "./impl/rawNode.js"
import type { Drive, Fields, LargeClient, NodeAdapter } from "./impl/types.js"

/** The small Sum box of the codec workloads. */
export const SMALL: Fields = { _command: "Sum", _ask: "1f", a: "13", b: "81" }
/** A box with one 64 KiB - 1 value. */
export const BIG: Fields = { v: new Uint8Array(65535).fill(0x78) }

/**
 * `data` as 64 KiB reads, as a socket delivers it: each read in memory of its
 * own (copies, not views of one buffer), so that no decoder finds a value that
 * straddles two reads already contiguous, which real reads never are.
 */
const chunked = (data: Uint8Array, size = 65536): Array<Uint8Array> => {
  const out: Array<Uint8Array> = []
  for (let i = 0; i < data.length; i += size) out.push(Buffer.from(data.subarray(i, i + size)))
  return out
}
/** Decode input: 4096 Sum boxes (distinct `_ask`s), and 32 big boxes, in 64 KiB reads. */
const smallStream = Buffer.concat(Array.from({ length: 4096 }, (_, i) => encode({ ...SMALL, _ask: (i + 1).toString(16) })))
const bigStream = Buffer.concat(Array.from({ length: 32 }, () => encode(BIG)))

let sink = 0
/** Runs `op` (which returns units done) for about `seconds`; units per second. */
const rate = (op: () => number, seconds: number): number => {
  let units = 0
  const t0 = performance.now()
  const end = t0 + seconds * 1000
  let now: number
  do {
    units += op()
    now = performance.now()
  } while (now < end)
  return units / ((now - t0) / 1000)
}
const series = (op: () => number, t: Timing): Array<number> => {
  rate(op, t.warmup)
  // A full GC before each run, so that no run pays for the garbage of the one before.
  return Array.from({ length: t.runs }, () => (gc(), rate(op, t.seconds)))
}

export const nodeCodec = (a: NodeAdapter, t: Timing): CodecRuns => {
  const encSmall = a.codec.encoder(SMALL)
  const encBig = a.codec.encoder(BIG)
  const decoding = (stream: Uint8Array, perBox: number) => {
    const chunks = chunked(stream)
    const push = a.codec.decoder()
    return () => {
      let n = 0
      for (const c of chunks) n += push(c)
      return n * perBox
    }
  }
  return {
    encodeSmall: series(() => {
      for (let i = 0; i < 1000; i++) sink += encSmall().length
      return 1000
    }, t),
    decodeSmall: series(decoding(smallStream, 1), t),
    encodeBig: series(() => encBig().length, t).map((r) => r / 1e6),
    decodeBig: series(decoding(bigStream, bigStream.length / 32), t).map((r) => r / 1e6)
  }
}

/** Warm-up, then timed runs of a connected client. */
export const timedCalls = async (
  client: { readonly run: (d: Drive) => Promise<number> },
  inflight: number,
  t: Timing,
  sequential: boolean
): Promise<CallRuns> => {
  await client.run({ inflight, until: performance.now() + t.warmup * 1000 })
  const callsPerSec: Array<number> = []
  const p50us: Array<number> = []
  const p99us: Array<number> = []
  for (let i = 0; i < t.runs; i++) {
    gc()
    const latencies = sequential ? [] as Array<number> : undefined
    const t0 = performance.now()
    const n = await client.run({ inflight, until: t0 + t.seconds * 1000, ...(latencies ? { latencies } : {}) })
    callsPerSec.push(n / ((performance.now() - t0) / 1000))
    if (latencies) p50us.push(quantile(latencies, 0.5) * 1000), p99us.push(quantile(latencies, 0.99) * 1000)
  }
  return sequential ? { callsPerSec, p50us, p99us } : { callsPerSec }
}


/** The large workload's payloads (twisted_bench.py has the same): a 60 KB Echo text, 1 MiB of BigString. */
export const ECHO_TEXT = "x".repeat(60_000)
export const BIG_DATA = new Uint8Array(1024 * 1024).fill(0x78)

/** Echo (`echo`) or BigEcho (`big`) calls of those payloads, timed as {@link timedCalls} does. */
export const timedLarge = (client: LargeClient, call: "echo" | "big", inflight: number, t: Timing): Promise<CallRuns> =>
  timedCalls({ run: (d) => call === "echo" ? client.echo(d, ECHO_TEXT) : client.bigEcho(d, BIG_DATA) }, inflight, t, false)

/** BigCheck's sizes: empty, one byte, one full piece, one over, three pieces, and 1 MiB. */
export const CHECK_SIZES: ReadonlyArray<number> = [0, 1, 65535, 65536, 2 * 65535 + 1, 1024 * 1024]

/**
 * A BigCheck round trip of random bytes of each size: the server's digest
 * checks what it received (client to server), the echo what came back
 * (server to client). Throws at the first difference.
 */
export const checkLarge = async (client: LargeClient): Promise<ReadonlyArray<number>> => {
  for (const size of CHECK_SIZES) {
    const data = randomBytes(size)
    const r = await client.bigCheck(data)
    const digest = createHash("sha256").update(data).digest("hex")
    if (r.digest !== digest) throw new Error(`BigCheck of ${size} bytes: the server received other bytes (digest ${r.digest})`)
    if (!Buffer.from(r.data).equals(data)) throw new Error(`BigCheck of ${size} bytes: ${r.data.length} other bytes came back`)
  }
  return CHECK_SIZES
}
