/**
 * What the benchmark harness needs from a Node implementation of AMP. Each
 * implementation is one module under `impl/` exporting a {@link NodeAdapter};
 * the harness (run.ts) owns every timing loop, so all of them are measured
 * the same way. Twisted is driven from contenders.ts, through a child Python.
 */

/** Box fields for the codec workloads: byte-string keys, ASCII-string or byte values. */
export type Fields = Readonly<Record<string, string | Uint8Array>>

/** The codec primitives. */
export interface CodecAdapter {
  /** Prepares the box once; the returned function encodes it to bytes (called in the timed loop). */
  readonly encoder: (fields: Fields) => () => Uint8Array
  /** A fresh incremental decoder: push one chunk, get how many boxes it completed. */
  readonly decoder: () => (chunk: Uint8Array) => number
}

/** How many calls a client makes, and what it records. */
export interface Drive {
  /** Calls outstanding at once (1: sequential). */
  readonly inflight: number
  /** Stop starting new calls once this many have started... */
  readonly calls?: number
  /** ...or once `performance.now()` has passed this. */
  readonly until?: number
  /** When given, the latency (ms) of every call is pushed here. */
  readonly latencies?: Array<number>
}

/** A connected Sum client. */
export interface SumClient {
  /**
   * Calls `Sum(a: 13, b: 81)` as `drive` says, checks every `total` is 94
   * (rejects otherwise), and resolves with the number of calls completed.
   */
  readonly run: (drive: Drive) => Promise<number>
  readonly close: () => Promise<void>
}

/**
 * A connected client of the large workload's commands: `Echo(text:
 * Unicode) -> text`, `BigEcho(data: BigString) -> data` and `BigCheck(data:
 * BigString) -> data, digest: Unicode` (BigString: bytes split across
 * `data`, `data.2`, `data.3`... in pieces of at most 65535 bytes).
 */
export interface LargeClient {
  /** Echo calls of `text` as `drive` says; rejects on an answer of another length; resolves with the calls completed. */
  readonly echo: (drive: Drive, text: string) => Promise<number>
  /** BigEcho calls of `data`, likewise. */
  readonly bigEcho: (drive: Drive, data: Uint8Array) => Promise<number>
  /** One BigCheck: what came back, and the SHA-256 (hex) of what the server received. */
  readonly bigCheck: (data: Uint8Array) => Promise<{ readonly data: Uint8Array; readonly digest: string }>
  readonly close: () => Promise<void>
}

/** A listening server. */
export interface Server {
  readonly port: number
  readonly close: () => Promise<void>
}

/** One Node implementation, as the harness sees it. */
export interface NodeAdapter {
  readonly name: string
  readonly codec: CodecAdapter
  /** Serves `Sum(a: Integer, b: Integer) -> total: Integer` on 127.0.0.1 (`port` 0: any free one). */
  readonly serveSum: (port: number) => Promise<Server>
  /**
   * Serves `Slow(blob: String)` (Twisted's `requiresAnswer = False`: no
   * `_ask`, no answer), handling one box at a time, each taking 1 ms and
   * using its blob; `onHandled` runs after each box.
   */
  readonly serveSlow: (port: number, onHandled: () => void) => Promise<Server>
  /**
   * Serves `Echo(text: Unicode) -> text: Unicode` and Sum on 127.0.0.1, as a
   * server a peer may not read from (the never-read and idle workloads).
   */
  readonly serveEcho: (port: number) => Promise<Server>
  /** Connects a Sum client to 127.0.0.1:`port`. */
  readonly connectSum: (port: number) => Promise<SumClient>
  /** Serves Echo, BigEcho and BigCheck (see {@link LargeClient}) on 127.0.0.1. */
  readonly serveLarge: (port: number) => Promise<Server>
  /** Connects a {@link LargeClient} to 127.0.0.1:`port`. */
  readonly connectLarge: (port: number) => Promise<LargeClient>
}

/** The stop test of a drive loop: true while another call may start (counts it). */
export const budget = (drive: Drive): () => boolean => {
  const { calls, until } = drive
  let started = 0
  if (until === undefined) return () => calls === undefined || started++ < calls
  if (calls === undefined) return () => performance.now() < until
  return () => performance.now() < until && started++ < calls
}
