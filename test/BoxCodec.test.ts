/**
 * The codec on its own: properties at every chunking, and every error path.
 */
import { describe, expect, it } from "@effect/vitest"
import * as Chunk from "effect/Chunk"
import * as Effect from "effect/Effect"
import * as Equal from "effect/Equal"
import * as FastCheck from "effect/FastCheck"
import * as Stream from "effect/Stream"
import * as AmpBox from "../src/AmpBox.js"
import * as BoxCodec from "../src/BoxCodec.js"

const keyArb = FastCheck.uint8Array({ minLength: 1, maxLength: 255 }).map((b) => AmpBox.bytesToByteString(b))
const valueArb = FastCheck.oneof(
  { weight: 20, arbitrary: FastCheck.uint8Array({ maxLength: 300 }) },
  { weight: 1, arbitrary: FastCheck.uint8Array({ minLength: 65535, maxLength: 65535 }) }
)
const boxArb = FastCheck.array(FastCheck.tuple(keyArb, valueArb), { maxLength: 12 }).map((e) => AmpBox.fromEntries(e))
const boxesArb = FastCheck.array(boxArb, { minLength: 1, maxLength: 8 })

/** Decodes `bytes` cut at `cuts`, returning the boxes. */
const decodeCut = (bytes: Uint8Array, size: number): Array<AmpBox.AmpBox> => {
  const d = new BoxCodec.BoxDecoder()
  const out: Array<AmpBox.AmpBox> = []
  for (let i = 0; i < bytes.length; i += size) {
    d.push(bytes.subarray(i, i + size))
    for (let b = d.next(); b; b = d.next()) out.push(b)
  }
  d.end()
  return out
}

const sameBoxes = (a: ReadonlyArray<AmpBox.AmpBox>, b: ReadonlyArray<AmpBox.AmpBox>) =>
  a.length === b.length && a.every((x, i) => Equal.equals(x, b[i]!))

describe("BoxCodec", () => {
  it("encodes the Sum box exactly as DESIGN.md shows", () => {
    const box = AmpBox.make({ _command: "Sum", _ask: "1f", a: "13", b: "81" })
    expect(Buffer.from(BoxCodec.encodeBox(box)).toString("hex")).toBe(
      "00085f636f6d6d616e64000353756d00045f61736b0002316600016100023133000162000238310000"
    )
  })

  it("decode(encode(boxes)) is the identity at every chunking, 1-byte chunks included", () =>
    FastCheck.assert(
      FastCheck.property(boxesArb, FastCheck.integer({ min: 1, max: 70000 }), (boxes, size) => {
        const bytes = BoxCodec.encodeBoxes(boxes)
        return sameBoxes(decodeCut(bytes, size), boxes) && sameBoxes(decodeCut(bytes, 1), boxes)
      }),
      { numRuns: 60 }
    ))

  it("encodeBoxes is the concatenation of encodeBox", () =>
    FastCheck.assert(
      FastCheck.property(boxesArb, (boxes) => {
        const one = BoxCodec.encodeBoxes(boxes)
        const parts = Buffer.concat(boxes.map((b) => BoxCodec.encodeBox(b)))
        return Buffer.from(one).equals(parts)
      }),
      { numRuns: 50 }
    ))

  it("takeLeftover hands back exactly the bytes after the last complete box, at every split", () => {
    const boxes = [AmpBox.make({ a: "1" }), AmpBox.make({ bb: "22", ccc: "333" }), AmpBox.make({ d: "x".repeat(100) })]
    const bytes = BoxCodec.encodeBoxes(boxes)
    const ends = [0]
    for (const b of boxes) ends.push(ends[ends.length - 1]! + BoxCodec.encodeBox(b).length)
    for (let split = 0; split <= bytes.length; split++) {
      for (const size of [1, 7, 1000]) {
        const d = new BoxCodec.BoxDecoder()
        let got = 0
        for (let i = 0; i < split; i += size) {
          d.push(bytes.subarray(i, Math.min(split, i + size)))
          while (d.next()) got++
        }
        const leftover = d.takeLeftover()
        expect(Buffer.from(leftover).equals(Buffer.from(bytes.subarray(ends[got]!, split)))).toBe(true)
        expect(d.offset).toBe(ends[got]!)
      }
    }
  })

  it("values handed out stay intact when more data arrives", () => {
    const d = new BoxCodec.BoxDecoder()
    const chunk = new Uint8Array(BoxCodec.encodeBox(AmpBox.make({ k: "hello" })))
    d.push(chunk)
    const box = d.next()!
    d.push(BoxCodec.encodeBox(AmpBox.make({ k: "other" })))
    d.next()
    expect(box.getText("k")).toBe("hello")
  })

  it("a lone 00 00 is an empty box, as in Twisted; duplicate keys keep the last value", () => {
    expect(BoxCodec.parse(new Uint8Array([0, 0])).map((b) => b.size)).toEqual([0])
    const dup = new Uint8Array([0, 1, 0x6b, 0, 1, 0x31, 0, 1, 0x6b, 0, 1, 0x32, 0, 0])
    expect(BoxCodec.parse(dup)[0]!.getText("k")).toBe("2")
  })

  describe("refuses what AMP cannot carry (TooLong, InvalidKey)", () => {
    it("a 256-byte key", () => {
      const error = (() => {
        try {
          BoxCodec.encodeBox(AmpBox.make({ ["k".repeat(256)]: "v" }))
        } catch (e) {
          return e
        }
      })()
      expect(error).toMatchObject({ _tag: "TooLong", isKey: true, isLocal: true, key: "k".repeat(256), length: 256 })
    })
    it.effect("a 65536-byte value", () =>
      Effect.gen(function*() {
        const error = yield* Effect.flip(BoxCodec.encode(AmpBox.make({ v: new Uint8Array(65536) })))
        expect(error).toMatchObject({ _tag: "TooLong", isKey: false, key: "v", length: 65536 })
        expect(error.message).toContain("65535")
      }))
    it.effect("the empty key", () =>
      Effect.gen(function*() {
        const error = yield* Effect.flip(BoxCodec.encode(AmpBox.make({ "": "v" })))
        expect(error).toMatchObject({ _tag: "TooLong", isKey: true, length: 0 })
        expect(error.message).toContain("empty key")
      }))
    it.effect("a key that is not a byte string", () =>
      Effect.gen(function*() {
        const error = yield* Effect.flip(BoxCodec.encode(AmpBox.make({ "é€": "v" })))
        expect(error).toMatchObject({ _tag: "InvalidKey", key: "é€" })
      }))
  })

  describe("decoding errors", () => {
    const good = BoxCodec.encodeBoxes([AmpBox.make({ a: "1" }), AmpBox.make({ b: "2" })])

    for (const length of [256, 0xffff]) {
      it.effect(`a key length prefix of ${length}: LengthLimitExceeded after the boxes before it`, () =>
        Effect.gen(function*() {
          const bad = new Uint8Array([...good, length >> 8, length & 0xff, 0x41])
          const d = new BoxCodec.BoxDecoder()
          d.push(bad)
          expect(d.next()?.getText("a")).toBe("1")
          expect(d.next()?.getText("b")).toBe("2")
          expect(() => d.next()).toThrow(/exceeds the AMP key limit/)
          const streamed = yield* Stream.make(bad.subarray(0, 5), bad.subarray(5)).pipe(
            BoxCodec.decode(),
            Stream.either,
            Stream.runCollect
          )
          const items = Chunk.toArray(streamed)
          expect(items.length).toBe(3)
          expect(items[2]).toMatchObject({ _tag: "Left", left: { _tag: "LengthLimitExceeded", length, offset: good.length } })
        }))
    }

    it("IncompleteBox at every truncation point, with its offsets", () => {
      const full = BoxCodec.encodeBox(AmpBox.make({ key: "value" }))
      const expecting = (cut: number) =>
        cut < 2 ? "key length" : cut < 5 ? (cut === 2 ? "key" : "key") : cut < 7 ? "value length" : cut < 12 ? "value" : "key length"
      for (let cut = 1; cut < full.length; cut++) {
        const bytes = new Uint8Array([...good, ...full.subarray(0, cut)])
        let error: unknown
        try {
          BoxCodec.parse(bytes)
        } catch (e) {
          error = e
        }
        expect(error).toMatchObject({
          _tag: "IncompleteBox",
          boxOffset: good.length,
          endOffset: good.length + cut,
          expecting: expecting(cut)
        })
      }
    })

    it("BoxTooLarge for the byte and key limits", () => {
      const many = BoxCodec.encodeBox(AmpBox.fromEntries(Array.from({ length: 20 }, (_, i) => [`k${i}`, "v"])))
      expect(() => BoxCodec.parse(many, { maxKeys: 10 })).toThrow(/more than the limit of 10 keys/)
      expect(() => BoxCodec.parse(many, { maxBoxBytes: 50 })).toThrow(/larger than the limit of 50 bytes/)
      expect(BoxCodec.parse(many, { maxKeys: 20 }).length).toBe(1)
    })
  })

  it.effect("the Stream form decodes chunks of any size, and encodeStream inverts it", () =>
    Effect.gen(function*() {
      const boxes = Array.from({ length: 50 }, (_, i) => AmpBox.make({ _ask: i.toString(16), v: "x".repeat(i * 7) }))
      const bytes = BoxCodec.encodeBoxes(boxes)
      const chunks = Array.from({ length: Math.ceil(bytes.length / 13) }, (_, i) => bytes.subarray(i * 13, i * 13 + 13))
      const decoded = yield* Stream.fromIterable(chunks).pipe(BoxCodec.decode(), Stream.runCollect)
      expect(sameBoxes(Chunk.toArray(decoded), boxes)).toBe(true)
      const reencoded = yield* Stream.fromIterable(boxes).pipe(BoxCodec.encodeStream, Stream.runCollect)
      expect(Buffer.concat(Chunk.toArray(reencoded)).equals(Buffer.from(bytes))).toBe(true)
    }))
})
