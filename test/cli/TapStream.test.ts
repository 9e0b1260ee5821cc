/**
 * The tap's reader on its own: however the bytes are cut into chunks, it
 * finds the same boxes, TLS records and raw bytes; it holds a switch's
 * bytes until the answer says what they are.
 */
import { describe, expect, it } from "@effect/vitest"
import * as AmpBox from "../../src/AmpBox.js"
import { encodeBoxes } from "../../src/BoxCodec.js"
import * as TapStream from "../../src/cli/TapStream.js"

const boxes = (...records: ReadonlyArray<Record<string, string>>) => Buffer.from(encodeBoxes(records.map((r) => AmpBox.make(r))))

/** A TLS record: type, version 3.3, length, body. */
const record = (type: number, body: Uint8Array) => Buffer.concat([Buffer.from([type, 3, 3, body.length >> 8, body.length & 0xff]), body])

type Step = readonly [TapStream.Dir, Buffer]

/** Events (without times) of feeding `steps`, each cut into `size`-byte chunks. */
const events = (steps: ReadonlyArray<Step>, size: number, options: TapStream.Options = {}) => {
  const out: Array<unknown> = []
  const tap = TapStream.make((e) => {
    const { at: _at, ...rest } = e as TapStream.Event & { box?: AmpBox.AmpBox }
    out.push("box" in rest && rest.box !== undefined ? { ...rest, box: Object.fromEntries([...rest.box].map(([k, v]) => [k, Buffer.from(v).toString("latin1")])) } : rest)
  }, { ...options, now: () => 0 })
  for (const [dir, bytes] of steps) for (let i = 0; i < bytes.length; i += size) tap.push(dir, bytes.subarray(i, i + size))
  tap.end("c>s")
  tap.end("s>c")
  // Raw and opaque counts depend on chunking; their totals do not.
  const merged: Array<unknown> = []
  for (const e of out as Array<{ kind: string; dir: string; bytes: number; total: number }>) {
    const last = merged.at(-1) as typeof e | undefined
    if ((e.kind === "raw" || e.kind === "opaque") && last?.kind === e.kind && last.dir === e.dir) {
      merged[merged.length - 1] = { ...last, bytes: last.bytes + e.bytes, total: e.total }
    } else merged.push(e)
  }
  return merged
}

const STARTTLS: ReadonlyArray<Step> = [
  ["c>s", boxes({ _command: "Sum", _ask: "1", a: "1" }, { _command: "StartTLS", _ask: "2" })],
  ["s>c", boxes({ _answer: "1", total: "2" }, { _answer: "2" })],
  ["c>s", record(22, Buffer.from([1, 0, 0, 1, 0]))],
  ["s>c", Buffer.concat([record(22, Buffer.from([2, 0, 0, 0])), record(20, Buffer.from([1])), record(23, Buffer.alloc(300, 7))])],
  ["c>s", record(23, Buffer.alloc(70000 % 16384, 9))]
]

describe("TapStream", () => {
  it("finds the same boxes and TLS records however the bytes are cut", () => {
    const whole = events(STARTTLS, 1 << 20)
    for (const size of [1, 2, 3, 5, 7, 64]) expect(events(STARTTLS, size)).toEqual(whole)
    expect(whole).toEqual([
      { kind: "ask", dir: "c>s", tag: "1", command: "Sum", box: { _command: "Sum", _ask: "1", a: "1" } },
      { kind: "ask", dir: "c>s", tag: "2", command: "StartTLS", box: { _command: "StartTLS", _ask: "2" } },
      { kind: "answer", dir: "s>c", tag: "1", command: "Sum", latencyMs: 0, box: { _answer: "1", total: "2" } },
      { kind: "answer", dir: "s>c", tag: "2", command: "StartTLS", latencyMs: 0, box: { _answer: "2" } },
      { kind: "tls", dir: "c>s", record: "handshake ClientHello", bytes: 10 },
      { kind: "tls", dir: "s>c", record: "handshake ServerHello", bytes: 9 },
      { kind: "tls", dir: "s>c", record: "change_cipher_spec", bytes: 6 },
      { kind: "opaque", dir: "s>c", bytes: 305, total: 305 },
      { kind: "opaque", dir: "c>s", bytes: 70000 % 16384 + 5, total: 70000 % 16384 + 5 }
    ])
  })

  it("a TLS record without a StartTLS answer is a violation, then raw bytes", () => {
    const e = events([["c>s", Buffer.concat([boxes({ a: "1" }), record(22, Buffer.from([1]))])]], 3)
    expect(e).toEqual([
      { kind: "box", dir: "c>s", box: { a: "1" } },
      { kind: "violation", dir: "c>s", offset: 8, detail: "key length prefix 5635 (AMP keys are at most 255 bytes)" },
      { kind: "raw", dir: "c>s", bytes: 6, total: 6 }
    ])
  })

  it("a switch's bytes are held until the answer: raw when it succeeds, boxes when it is refused", () => {
    const after = boxes({ _command: "Sum", _ask: "2" })
    const steps = (answer: Record<string, string>): ReadonlyArray<Step> => [
      ["c>s", Buffer.concat([boxes({ _command: "Go", _ask: "1" }), after])],
      ["s>c", Buffer.concat([boxes(answer), Buffer.from("raw!")])]
    ]
    for (const size of [1, 4, 1000]) {
      expect(events(steps({ _answer: "1" }), size, { switches: ["Go"] }).map((e) => (e as { kind: string }).kind)).toEqual(["ask", "answer", "raw", "raw"])
      const refused = events(steps({ _error: "1", _error_code: "NO", _error_description: "no" }), size, { switches: ["Go"] })
      expect(refused.map((e) => (e as { kind: string; command?: string }).command ?? (e as { kind: string }).kind)).toEqual([
        "Go",
        "Go",
        "Sum",
        "violation",
        "raw"
      ])
    }
  })

  it("a stream that ends inside a box is reported", () => {
    expect(events([["s>c", boxes({ a: "1" }).subarray(0, 5)]], 2)).toEqual([
      { kind: "violation", dir: "s>c", offset: 0, detail: "the stream ended inside a box (5 bytes of it)" },
      { kind: "raw", dir: "s>c", bytes: 5, total: 5 }
    ])
  })
})
