/**
 * The codec on its own (no Twisted here; see BoxCodecTwisted.test.ts):
 * encode/decode identity at every chunking, leftover bytes at every split,
 * every error with its fields, the Stream form, and values that stay intact.
 *
 * Expected decoder behaviour comes from `model` below: a deliberately naive
 * byte-by-byte reading of the wire format that the real, chunk-walking
 * decoder must match exactly, whatever the chunking.
 */
import { describe, expect, it } from "@effect/vitest"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import * as NodeFileSystem from "@effect/platform-node/NodeFileSystem"
import * as Chunk from "effect/Chunk"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Equal from "effect/Equal"
import * as FastCheck from "effect/FastCheck"
import * as Stream from "effect/Stream"
import * as AmpBox from "../src/AmpBox.js"
import {
  BoxTooLarge,
  IncompleteBox,
  InvalidKey,
  LengthLimitExceeded,
  TooLong
} from "../src/AmpError.js"
import * as BoxCodec from "../src/BoxCodec.js"

// ---------------------------------------------------------------------------
// Arbitraries
// ---------------------------------------------------------------------------

/** Keys: 1..255 bytes of any value, as byte strings; short ones common, 255 bytes now and then. */
const keyArb = FastCheck.oneof(
  { weight: 6, arbitrary: FastCheck.uint8Array({ minLength: 1, maxLength: 10 }) },
  { weight: 3, arbitrary: FastCheck.uint8Array({ minLength: 1, maxLength: 255 }) },
  { weight: 1, arbitrary: FastCheck.uint8Array({ minLength: 255, maxLength: 255 }) }
).map((b) => AmpBox.bytesToByteString(b))

/** Values: 0..2000 bytes, empty often, and a few of the maximum 65535. */
const valueArb = (big: boolean) =>
  FastCheck.oneof(
    { weight: 30, arbitrary: FastCheck.uint8Array({ maxLength: 2000 }) },
    { weight: 4, arbitrary: FastCheck.constant(new Uint8Array(0)) },
    { weight: big ? 1 : 0, arbitrary: FastCheck.uint8Array({ minLength: 65535, maxLength: 65535 }) }
  )

const boxArb = (big = true) =>
  FastCheck.array(FastCheck.tuple(keyArb, valueArb(big)), { maxLength: 12 }).map((e) => AmpBox.fromEntries(e))
const boxesArb = (big = true) => FastCheck.array(boxArb(big), { minLength: 1, maxLength: 8 })

/** Split points as fractions of the stream, turned into offsets once its length is known. */
const cutsArb = FastCheck.array(FastCheck.double({ min: 0, max: 1, noNaN: true }), { maxLength: 40 })
const cutsAt = (length: number, fractions: ReadonlyArray<number>) =>
  fractions.map((f) => Math.floor(f * length)).sort((a, b) => a - b)

// ---------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------

const hex = (bytes: Uint8Array) => Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length).toString("hex")
/** A box as ordered [key, hex value] pairs: compares key order and bytes, not just content. */
const pairs = (box: AmpBox.AmpBox) => [...box].map(([k, v]) => [k, hex(v)] as const)
const allPairs = (boxes: ReadonlyArray<AmpBox.AmpBox>) => boxes.map(pairs)
/** Cheap exact comparison for properties (pairs() of 65535-byte values is slow to build). */
const sameBytes = (a: Uint8Array, b: Uint8Array) => Buffer.from(a.buffer, a.byteOffset, a.length).equals(Buffer.from(b.buffer, b.byteOffset, b.length))
const sameBox = (a: AmpBox.AmpBox, b: AmpBox.AmpBox) => {
  const x = [...a]
  const y = [...b]
  return x.length === y.length && x.every(([k, v], i) => k === y[i]![0] && sameBytes(v, y[i]![1]))
}
const sameBoxes = (a: ReadonlyArray<AmpBox.AmpBox>, b: ReadonlyArray<AmpBox.AmpBox>) =>
  a.length === b.length && a.every((x, i) => sameBox(x, b[i]!))

const concat = (...parts: ReadonlyArray<ArrayLike<number>>) => {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0))
  let at = 0
  for (const p of parts) {
    out.set(p, at)
    at += p.length
  }
  return out
}
const u16 = (n: number) => [n >> 8, n & 0xff]

/** Pieces of `bytes` cut at `cuts` (sorted offsets; duplicates and 0 give empty pieces, which are fine to push). */
const piecesAt = (bytes: Uint8Array, cuts: ReadonlyArray<number>) => {
  const out: Array<Uint8Array> = []
  let from = 0
  for (const to of [...cuts, bytes.length]) {
    out.push(bytes.subarray(from, Math.max(from, to)))
    from = Math.max(from, to)
  }
  return out
}
const everyN = (length: number, n: number) => Array.from({ length: Math.ceil(length / n) }, (_, i) => i * n)

/** Pushes the pieces one by one, draining boxes after each; then `end()`. */
const decodePieces = (pieces: ReadonlyArray<Uint8Array>, limits?: BoxCodec.DecoderLimits) => {
  const d = new BoxCodec.BoxDecoder(limits)
  const boxes: Array<AmpBox.AmpBox> = []
  let error: unknown
  try {
    for (const p of pieces) {
      d.push(p)
      for (let b = d.next(); b !== undefined; b = d.next()) boxes.push(b)
    }
    d.end()
  } catch (e) {
    error = e
  }
  return { boxes, error, decoder: d }
}

const thrown = (f: () => unknown): unknown => {
  try {
    f()
  } catch (e) {
    return e
  }
  throw new Error("expected a throw")
}

// ---------------------------------------------------------------------------
// The reference model
// ---------------------------------------------------------------------------

type ModelError =
  | { readonly _tag: "LengthLimitExceeded"; readonly length: number; readonly offset: number }
  | { readonly _tag: "IncompleteBox"; readonly boxOffset: number; readonly endOffset: number; readonly expecting: string }
  | { readonly _tag: "BoxTooLarge"; readonly limit: "bytes" | "keys"; readonly max: number; readonly boxOffset: number }

/**
 * The wire format read the slow, obvious way. Returns the complete boxes, the
 * offset where each ends, and the error a decoder must report (a key length
 * over 255; the stream ending inside a box; a box over the limits, detected at
 * the first length prefix that proves it).
 */
const model = (bytes: Uint8Array, limits: Required<BoxCodec.DecoderLimits> = BoxCodec.defaultLimits) => {
  const boxes: Array<AmpBox.AmpBox> = []
  const ends: Array<number> = []
  const n = bytes.length
  let i = 0
  const u16At = (at: number) => (bytes[at]! << 8) | bytes[at + 1]!
  while (i < n) {
    const boxOffset = i
    const entries = new Map<string, Uint8Array>()
    const incomplete = (expecting: string) => ({ boxes, ends, error: { _tag: "IncompleteBox", boxOffset, endOffset: n, expecting } as ModelError })
    for (;;) {
      if (i + 2 > n) return incomplete("key length")
      const keyLength = u16At(i)
      if (keyLength === 0) {
        i += 2
        boxes.push(AmpBox.fromEntries(entries))
        ends.push(i)
        break
      }
      if (keyLength > 255) return { boxes, ends, error: { _tag: "LengthLimitExceeded", length: keyLength, offset: i } as ModelError }
      if (entries.size >= limits.maxKeys) {
        return { boxes, ends, error: { _tag: "BoxTooLarge", limit: "keys", max: limits.maxKeys, boxOffset } as ModelError }
      }
      i += 2
      if (i + keyLength > n) return incomplete("key")
      const key = AmpBox.bytesToByteString(bytes, i, i + keyLength)
      i += keyLength
      if (i + 2 > n) return incomplete("value length")
      const valueLength = u16At(i)
      i += 2
      // Everything so far, this value and the closing 00 00 must fit.
      if (i + valueLength + 2 - boxOffset > limits.maxBoxBytes) {
        return { boxes, ends, error: { _tag: "BoxTooLarge", limit: "bytes", max: limits.maxBoxBytes, boxOffset } as ModelError }
      }
      if (i + valueLength > n) return incomplete("value")
      entries.set(key, bytes.slice(i, i + valueLength))
      i += valueLength
    }
  }
  return { boxes, ends, error: undefined }
}

// ---------------------------------------------------------------------------

describe("BoxCodec", () => {
  describe("encoding", () => {
    it("the Sum box is byte for byte what DESIGN.md shows", () => {
      const box = AmpBox.make({ _command: "Sum", _ask: "1f", a: "13", b: "81" })
      expect(hex(BoxCodec.encodeBox(box))).toBe(
        "0008" + "5f636f6d6d616e64" + "0003" + "53756d" +
          "0004" + "5f61736b" + "0002" + "3166" +
          "0001" + "61" + "0002" + "3133" +
          "0001" + "62" + "0002" + "3831" +
          "0000"
      )
    })

    it("a box with no keys is just 00 00; keys go out in the box's order", () => {
      expect(hex(BoxCodec.encodeBox(AmpBox.empty))).toBe("0000")
      expect(hex(BoxCodec.encodeBoxes([]))).toBe("")
      const box = AmpBox.fromEntries([["z", "1"], ["\u00ff\u0000", new Uint8Array([0, 0])], ["a", ""]])
      expect(hex(BoxCodec.encodeBox(box))).toBe("00017a000131" + "0002ff00" + "00020000" + "000161" + "0000" + "0000")
    })

    it("the longest key and the longest value fit exactly", () => {
      const key = "\u00fe".repeat(255)
      const value = new Uint8Array(65535).fill(7)
      const bytes = BoxCodec.encodeBox(AmpBox.fromEntries([[key, value]]))
      expect(bytes.length).toBe(2 + 255 + 2 + 65535 + 2)
      expect(hex(bytes.subarray(0, 3))).toBe("00fffe")
      expect(hex(bytes.subarray(257, 259))).toBe("ffff")
      expect(sameBoxes(BoxCodec.parse(bytes), [AmpBox.fromEntries([[key, value]])])).toBe(true)
    })

    it("encodeBoxes is the concatenation of encodeBox", () =>
      FastCheck.assert(
        FastCheck.property(FastCheck.array(boxArb(), { maxLength: 8 }), (boxes) => {
          const whole = BoxCodec.encodeBoxes(boxes)
          const each = Buffer.concat(boxes.map((b) => BoxCodec.encodeBox(b)))
          // From any iterable, not only arrays.
          const fromIterable = BoxCodec.encodeBoxes(new Set(boxes))
          return sameBytes(whole, each) && sameBytes(fromIterable, BoxCodec.encodeBoxes([...new Set(boxes)]))
        }),
        { numRuns: 60 }
      ))

    describe("refuses what AMP cannot carry", () => {
      it.effect("a 256-byte key: TooLong with isKey, isLocal, key and length", () =>
        Effect.gen(function*() {
          const key = "k".repeat(256)
          const box = AmpBox.fromEntries([["ok", "1"], [key, "v"]])
          const error = thrown(() => BoxCodec.encodeBox(box))
          expect(error).toBeInstanceOf(TooLong)
          expect(error).toMatchObject({ _tag: "TooLong", isKey: true, isLocal: true, key, length: 256 })
          expect((error as TooLong).message).toContain("255")
          expect(yield* Effect.flip(BoxCodec.encode(box))).toMatchObject({ _tag: "TooLong", isKey: true, length: 256 })
          expect(thrown(() => BoxCodec.encodeBoxes([AmpBox.make({ a: "1" }), box]))).toBeInstanceOf(TooLong)
          // 255 is fine.
          expect(BoxCodec.encodeBox(AmpBox.make({ ["k".repeat(255)]: "v" })).length).toBe(2 + 255 + 3 + 2)
        }))

      it.effect("a 65536-byte value: TooLong with isKey false and the key it belongs to", () =>
        Effect.gen(function*() {
          const box = AmpBox.make({ v: new Uint8Array(65536) })
          const error = yield* Effect.flip(BoxCodec.encode(box))
          expect(error).toBeInstanceOf(TooLong)
          expect(error).toMatchObject({ _tag: "TooLong", isKey: false, isLocal: true, key: "v", length: 65536 })
          expect(error.message).toContain("65535")
          expect(thrown(() => BoxCodec.encodeBox(box))).toMatchObject({ isKey: false, length: 65536 })
        }))

      it.effect("the empty key: TooLong with length 0 (it would read as the end of the box)", () =>
        Effect.gen(function*() {
          const error = yield* Effect.flip(BoxCodec.encode(AmpBox.make({ "": "v" })))
          expect(error).toMatchObject({ _tag: "TooLong", isKey: true, isLocal: true, key: "", length: 0 })
          expect(error.message).toContain("empty")
        }))

      it.effect("a key with a character above U+00FF: InvalidKey with the key", () =>
        Effect.gen(function*() {
          for (const key of ["\u20ac", "caf\u00e9\u20ac", "\u0100", "\u{1f40d}"]) {
            const error = yield* Effect.flip(BoxCodec.encode(AmpBox.make({ [key]: "v" })))
            expect(error).toBeInstanceOf(InvalidKey)
            expect(error).toMatchObject({ _tag: "InvalidKey", key })
          }
          // U+00FF itself is a byte.
          expect(hex(BoxCodec.encodeBox(AmpBox.make({ "\u00ff": "" })))).toBe("0001ff00000000")
        }))

      it.effect("the Stream encoder fails with the same errors", () =>
        Effect.gen(function*() {
          const error = yield* Stream.make(AmpBox.make({ a: "1" }), AmpBox.make({ "\u20ac": "v" })).pipe(
            BoxCodec.encodeStream,
            Stream.runCollect,
            Effect.flip
          )
          expect(error).toMatchObject({ _tag: "InvalidKey", key: "\u20ac" })
        }))
    })
  })

  describe("BoxWriter", () => {
    const joined = (chunks: ReadonlyArray<Uint8Array>) => new Uint8Array(Buffer.concat(chunks))
    const sizesArb = FastCheck.record({
      slabBytes: FastCheck.oneof(FastCheck.integer({ min: 1, max: 4000 }), FastCheck.integer({ min: 4000, max: 200_000 })),
      largeValueBytes: FastCheck.oneof(FastCheck.integer({ min: 1, max: 3000 }), FastCheck.integer({ min: 3000, max: 70_000 }))
    })

    it("its chunks, joined, are encodeBoxes of the same boxes, at any slab and large-value size, taken at any points", () =>
      FastCheck.assert(
        FastCheck.property(boxesArb(), sizesArb, FastCheck.array(FastCheck.boolean(), { maxLength: 8 }), (boxes, sizes, takes) => {
          const w = new BoxCodec.BoxWriter(sizes)
          const chunks: Array<Uint8Array> = []
          let pending = 0
          boxes.forEach((box, i) => {
            const n = w.add(box)
            expect(n).toBe(BoxCodec.encodedLength(box))
            pending += n
            expect(w.size).toBe(pending)
            if (takes[i]) {
              chunks.push(...w.take())
              pending = 0
              expect(w.size).toBe(0)
            }
          })
          chunks.push(...w.take())
          expect(chunks.every((c) => c.length > 0)).toBe(true)
          return sameBytes(joined(chunks), BoxCodec.encodeBoxes(boxes))
        }),
        { numRuns: 150 }
      ))

    it("several small boxes share one chunk; take with nothing appended is an empty array", () => {
      const w = new BoxCodec.BoxWriter()
      expect(w.take()).toEqual([])
      const boxes = Array.from({ length: 10 }, (_, i) => AmpBox.make({ _ask: `${i}`, v: "x" }))
      for (const b of boxes) w.add(b)
      const chunks = w.take()
      expect(chunks.length).toBe(1)
      expect(hex(chunks[0]!)).toBe(hex(BoxCodec.encodeBoxes(boxes)))
      expect(w.take()).toEqual([])
      expect(w.size).toBe(0)
    })

    it("a value of largeValueBytes or more is handed out as itself (no copy); a smaller one is copied", () => {
      const large = new Uint8Array(5000).fill(1)
      const small = new Uint8Array(4999).fill(2)
      const w = new BoxCodec.BoxWriter({ largeValueBytes: 5000 })
      w.add(AmpBox.fromEntries([["a", "1"], ["big", large], ["small", small], ["big2", large], ["z", ""]]))
      const chunks = w.take()
      // header+a+big's header | big | small's field and big2's header | big2 | z and the end
      expect(chunks.length).toBe(5)
      expect(chunks[1]).toBe(large)
      expect(chunks[3]).toBe(large)
      for (const i of [0, 2, 4]) expect(chunks[i]!.buffer).not.toBe(small.buffer)
      expect(hex(joined(chunks))).toBe(hex(BoxCodec.encodeBox(AmpBox.fromEntries([["a", "1"], ["big", large], ["small", small], ["big2", large], ["z", ""]]))))
      // A decoded box's large value goes out as a view of the bytes it was read from.
      const bytes = BoxCodec.encodeBox(AmpBox.make({ k: large }))
      const [decoded] = BoxCodec.parse(bytes)
      w.add(decoded!)
      const again = w.take()
      expect(again.length).toBe(3)
      expect(again[1]!.buffer).toBe(bytes.buffer)
      expect(again[1]!.byteOffset).toBe(bytes.byteOffset + 5)
      expect(again[1]!.length).toBe(5000)
    })

    it("the default zero-copy threshold is 8 KiB", () => {
      const w = new BoxCodec.BoxWriter()
      const at = new Uint8Array(8 * 1024)
      const below = new Uint8Array(8 * 1024 - 1)
      w.add(AmpBox.make({ below }))
      expect(w.take().length).toBe(1)
      w.add(AmpBox.make({ at }))
      expect(w.take()[1]).toBe(at)
    })

    it("chunks already taken never change, however many boxes follow in the same slab", () => {
      const w = new BoxCodec.BoxWriter({ slabBytes: 1024, largeValueBytes: 300 })
      const samples = FastCheck.sample(boxArb(false), { numRuns: 300, seed: 3 })
      const taken: Array<{ readonly chunk: Uint8Array; readonly copy: Uint8Array }> = []
      const buffers = new Set<ArrayBufferLike>()
      samples.forEach((box, i) => {
        w.add(box)
        if (i % 3 === 0) {
          for (const chunk of w.take()) {
            taken.push({ chunk, copy: chunk.slice() })
            buffers.add(chunk.buffer)
          }
        }
      })
      for (const chunk of w.take()) taken.push({ chunk, copy: chunk.slice() })
      // Slabs were shared between takes (far fewer buffers than chunks), and nothing taken was written again.
      expect(buffers.size).toBeLessThan(taken.length / 2)
      expect(taken.every(({ chunk, copy }) => sameBytes(chunk, copy))).toBe(true)
      expect(sameBytes(joined(taken.map((t) => t.chunk)), BoxCodec.encodeBoxes(samples))).toBe(true)
    })

    it("writers sharing the default slabs, adding and taking in any interleaving, each write their own boxes intact", () =>
      FastCheck.assert(
        FastCheck.property(
          FastCheck.array(FastCheck.tuple(FastCheck.nat(2), boxArb(false), FastCheck.boolean()), { maxLength: 60 }),
          (steps) => {
            const writers = [new BoxCodec.BoxWriter(), new BoxCodec.BoxWriter(), new BoxCodec.BoxWriter()]
            const added: Array<Array<AmpBox.AmpBox>> = [[], [], []]
            const taken: Array<Array<{ readonly chunk: Uint8Array; readonly copy: Uint8Array }>> = [[], [], []]
            const takeFrom = (i: number) => {
              for (const chunk of writers[i]!.take()) taken[i]!.push({ chunk, copy: chunk.slice() })
            }
            for (const [i, box, take] of steps) {
              writers[i]!.add(box)
              added[i]!.push(box)
              if (take) takeFrom(i)
            }
            for (let i = 0; i < 3; i++) {
              takeFrom(i)
              expect(taken[i]!.every(({ chunk, copy }) => sameBytes(chunk, copy))).toBe(true)
              expect(sameBytes(joined(taken[i]!.map((t) => t.chunk)), BoxCodec.encodeBoxes(added[i]!))).toBe(true)
            }
          }
        )
      ))

    it("a box that fails validation throws and appends nothing", () => {
      const w = new BoxCodec.BoxWriter({ slabBytes: 600, largeValueBytes: 100 })
      const first = AmpBox.make({ a: "1" })
      const last = AmpBox.make({ b: "2" })
      w.add(first)
      const size = w.size
      const bad = [
        [AmpBox.fromEntries([["ok", new Uint8Array(500)], ["k".repeat(256), "v"]]), TooLong],
        [AmpBox.fromEntries([["ok", new Uint8Array(500)], ["v", new Uint8Array(65536)]]), TooLong],
        [AmpBox.fromEntries([["ok", "1"], ["", "v"]]), TooLong],
        [AmpBox.fromEntries([["ok", new Uint8Array(200)], ["\u20ac", "v"]]), InvalidKey]
      ] as const
      for (const [box, type] of bad) {
        expect(thrown(() => w.add(box))).toBeInstanceOf(type)
        expect(w.size).toBe(size)
      }
      w.add(last)
      expect(hex(joined(w.take()))).toBe(hex(BoxCodec.encodeBoxes([first, last])))
    })
  })

  describe("BoxEncoder", () => {
    it("encodes as encodeBox, growing its scratch buffer as needed", () =>
      FastCheck.assert(
        FastCheck.property(boxesArb(), (boxes) => {
          const e = new BoxCodec.BoxEncoder(16)
          return boxes.every((b) => sameBytes(e.encode(b), BoxCodec.encodeBox(b)))
        }),
        { numRuns: 60 }
      ))

    it("reuses its buffer: a result is only valid until the next encode", () => {
      const e = new BoxCodec.BoxEncoder()
      const one = e.encode(AmpBox.make({ a: "1" }))
      expect(hex(one)).toBe("000161000131" + "0000")
      const two = e.encode(AmpBox.make({ a: "2" }))
      expect(hex(two)).toBe("000161000132" + "0000")
      expect(hex(one)).toBe(hex(two))
      expect(one.buffer).toBe(two.buffer)
    })

    it("throws the encoding errors", () => {
      const e = new BoxCodec.BoxEncoder()
      expect(thrown(() => e.encode(AmpBox.make({ "\u20ac": "v" })))).toBeInstanceOf(InvalidKey)
      expect(thrown(() => e.encode(AmpBox.make({ v: new Uint8Array(65536) })))).toBeInstanceOf(TooLong)
      expect(hex(e.encode(AmpBox.empty))).toBe("0000")
    })
  })

  describe("decode(encode(boxes)) is the identity", () => {
    it("at random split points", () =>
      FastCheck.assert(
        FastCheck.property(boxesArb(), cutsArb, (boxes, fractions) => {
          const bytes = BoxCodec.encodeBoxes(boxes)
          const { boxes: got, error } = decodePieces(piecesAt(bytes, cutsAt(bytes.length, fractions)))
          return error === undefined && sameBoxes(got, boxes)
        }),
        { numRuns: 150 }
      ))

    it("in 1-byte chunks", () =>
      FastCheck.assert(
        FastCheck.property(boxesArb(false), (boxes) => {
          const bytes = BoxCodec.encodeBoxes(boxes)
          const { boxes: got, error } = decodePieces(piecesAt(bytes, everyN(bytes.length, 1)))
          return error === undefined && sameBoxes(got, boxes)
        }),
        { numRuns: 40 }
      ))

    it("in one big chunk, and through parse", () =>
      FastCheck.assert(
        FastCheck.property(boxesArb(), (boxes) => {
          const bytes = BoxCodec.encodeBoxes(boxes)
          return sameBoxes(decodePieces([bytes]).boxes, boxes) && sameBoxes(BoxCodec.parse(bytes), boxes)
        }),
        { numRuns: 80 }
      ))

    it("over many boxes concatenated, in chunks of every small size", () => {
      const boxes = FastCheck.sample(boxArb(false), { numRuns: 60, seed: 5 })
      const bytes = BoxCodec.encodeBoxes(boxes)
      for (let size = 1; size <= 17; size++) {
        const { boxes: got, error } = decodePieces(piecesAt(bytes, everyN(bytes.length, size)))
        expect(error).toBeUndefined()
        expect(sameBoxes(got, boxes)).toBe(true)
      }
    })

    it("65535-byte values and 255-byte keys, in 1-byte chunks", () => {
      const boxes = [
        AmpBox.fromEntries([["\u00ff".repeat(255), new Uint8Array(65535).map((_, i) => i * 7)]]),
        AmpBox.fromEntries([["a", new Uint8Array(65535).fill(0)], ["b", new Uint8Array(65535).fill(0xff)]])
      ]
      const bytes = BoxCodec.encodeBoxes(boxes)
      const { boxes: got, error } = decodePieces(piecesAt(bytes, everyN(bytes.length, 1)))
      expect(error).toBeUndefined()
      expect(allPairs(got)).toEqual(allPairs(boxes))
    })

    it("keeps the wire's key order; a duplicate key keeps its first position and the last value (as Twisted's dict)", () => {
      const wire = new Uint8Array([0, 1, 0x6b, 0, 1, 0x31, 0, 1, 0x6a, 0, 1, 0x32, 0, 1, 0x6b, 0, 1, 0x33, 0, 0])
      for (const cuts of [[], everyN(wire.length, 1), [7, 13]]) {
        const { boxes } = decodePieces(piecesAt(wire, cuts))
        expect(allPairs(boxes)).toEqual([[["k", "33"], ["j", "32"]]])
      }
    })

    it("boxes with many keys, repeated ones among them, agree with the model at any chunking and key limit", () =>
      FastCheck.assert(
        FastCheck.property(
          FastCheck.array(
            FastCheck.array(FastCheck.tuple(FastCheck.integer({ min: 0, max: 30 }), FastCheck.uint8Array({ maxLength: 20 })), {
              maxLength: 50,
              size: "max"
            }),
            { minLength: 1, maxLength: 4 }
          ),
          cutsArb,
          FastCheck.integer({ min: 0, max: 40 }),
          (fields, fractions, maxKeys) => {
            // The wire form of each box, repeats included (encodeBox cannot write those).
            const bytes = concat(
              ...fields.map((box) => concat(...box.map(([k, v]) => concat([0, 2, 0x6b, 0x41 + k], u16(v.length), v)), [0, 0]))
            )
            const limits = { maxBoxBytes: BoxCodec.defaultLimits.maxBoxBytes, maxKeys }
            const expected = model(bytes, limits)
            const { boxes, error } = decodePieces(piecesAt(bytes, cutsAt(bytes.length, fractions)), limits)
            expect(allPairs(boxes)).toEqual(allPairs(expected.boxes))
            if (expected.error === undefined) expect(error).toBeUndefined()
            else expect(error).toMatchObject(expected.error)
          }
        ),
        { numRuns: 200 }
      ))

    it("a lone 00 00 is an empty box; an empty stream has no boxes", () => {
      expect(BoxCodec.parse(new Uint8Array([0, 0])).map((b) => b.size)).toEqual([0])
      expect(BoxCodec.parse(new Uint8Array([0, 0, 0, 0, 0, 0])).map((b) => b.size)).toEqual([0, 0, 0])
      expect(BoxCodec.parse(new Uint8Array(0))).toEqual([])
      const d = new BoxCodec.BoxDecoder()
      d.push(new Uint8Array(0))
      expect(d.next()).toBeUndefined()
      expect(() => d.end()).not.toThrow()
    })

    it("offset counts the bytes of every complete box", () =>
      FastCheck.assert(
        FastCheck.property(boxesArb(false), cutsArb, (boxes, fractions) => {
          const bytes = BoxCodec.encodeBoxes(boxes)
          const d = new BoxCodec.BoxDecoder()
          const offsets: Array<number> = []
          for (const piece of piecesAt(bytes, cutsAt(bytes.length, fractions))) {
            d.push(piece)
            while (d.next() !== undefined) offsets.push(d.offset)
          }
          return offsets.join() === model(bytes).ends.join() && d.offset === bytes.length
        }),
        { numRuns: 60 }
      ))
  })

  describe("takeLeftover", () => {
    it("returns exactly the bytes after the last complete box, at every split point", () => {
      const boxes = [AmpBox.make({ a: "1" }), AmpBox.empty, AmpBox.make({ bb: "22", ccc: "" }), AmpBox.make({ d: "x".repeat(300) })]
      const bytes = BoxCodec.encodeBoxes(boxes)
      const { ends } = model(bytes)
      for (let split = 0; split <= bytes.length; split++) {
        for (const size of [1, 2, 5, 1000]) {
          const d = new BoxCodec.BoxDecoder()
          const got: Array<AmpBox.AmpBox> = []
          for (const piece of piecesAt(bytes.subarray(0, split), everyN(split, size))) {
            d.push(piece)
            for (let b = d.next(); b !== undefined; b = d.next()) got.push(b)
          }
          const done = ends.filter((e) => e <= split).length
          const boundary = done === 0 ? 0 : ends[done - 1]!
          expect(got.length).toBe(done)
          expect(hex(d.takeLeftover())).toBe(hex(bytes.subarray(boundary, split)))
          expect(d.offset).toBe(boundary)
          // The decoder starts afresh at the boundary: the rest of the stream decodes.
          d.push(bytes.subarray(boundary))
          for (let b = d.next(); b !== undefined; b = d.next()) got.push(b)
          d.end()
          expect(allPairs(got)).toEqual(allPairs(boxes))
          expect(d.offset).toBe(bytes.length)
        }
      }
    })

    it("property: any boxes, any chunking, any split", () =>
      FastCheck.assert(
        FastCheck.property(boxesArb(), cutsArb, FastCheck.double({ min: 0, max: 1, noNaN: true }), (boxes, fractions, at) => {
          const bytes = BoxCodec.encodeBoxes(boxes)
          const split = Math.floor(at * bytes.length)
          const { ends } = model(bytes)
          const d = new BoxCodec.BoxDecoder()
          let count = 0
          for (const piece of piecesAt(bytes.subarray(0, split), cutsAt(split, fractions))) {
            d.push(piece)
            while (d.next() !== undefined) count++
          }
          const done = ends.filter((e) => e <= split).length
          const boundary = done === 0 ? 0 : ends[done - 1]!
          const leftover = d.takeLeftover()
          return count === done && sameBytes(leftover, bytes.subarray(boundary, split)) && d.offset === boundary &&
            d.takeLeftover().length === 0
        }),
        { numRuns: 150 }
      ))

    it("includes chunks pushed but not yet read by next()", () => {
      const bytes = BoxCodec.encodeBoxes([AmpBox.make({ a: "1" }), AmpBox.make({ b: "2" })])
      const d = new BoxCodec.BoxDecoder()
      d.push(bytes.subarray(0, 3))
      d.push(bytes.subarray(3, 9))
      d.push(bytes.subarray(9))
      expect(d.next()?.getText("a")).toBe("1")
      // The second box is complete in the buffer but was never asked for: it is leftover.
      expect(hex(d.takeLeftover())).toBe(hex(bytes.subarray(8)))
    })
  })

  describe("decoding errors", () => {
    const good = BoxCodec.encodeBoxes([AmpBox.make({ a: "1" }), AmpBox.make({ bb: "22" })])
    const goodBoxes = [[["a", "31"]], [["bb", "3232"]]]

    for (const length of [256, 0x1234, 0xffff]) {
      describe(`a key length prefix of ${length}`, () => {
        // After two good boxes, a third box with one good key, then the bad prefix.
        const head = concat(good, [0, 1, 0x78, 0, 0])
        const bad = concat(good, [0, 1, 0x6b, 0, 1, 0x76], u16(length), [0x41, 0x42, 0, 0])
        const offset = good.length + 6

        it("next() delivers the boxes before it, then throws LengthLimitExceeded with its offset and length, and stays failed", () => {
          for (const cuts of [[], everyN(bad.length, 1), [offset + 1], [offset]]) {
            const { boxes, error, decoder } = decodePieces(piecesAt(bad, cuts))
            expect(allPairs(boxes)).toEqual(goodBoxes)
            expect(error).toBeInstanceOf(LengthLimitExceeded)
            expect(error).toMatchObject({ _tag: "LengthLimitExceeded", length, offset })
            expect((error as LengthLimitExceeded).message).toContain(String(length))
            expect(thrown(() => decoder.next())).toBe(error)
          }
          expect(thrown(() => BoxCodec.parse(bad))).toMatchObject({ _tag: "LengthLimitExceeded", length, offset })
          // At the very start of a box too.
          expect(thrown(() => BoxCodec.parse(concat(head, u16(length))))).toMatchObject({ length, offset: head.length })
        })

        it.effect("decode() emits the boxes before it, then fails with it", () =>
          Effect.gen(function*() {
            for (const size of [1, 4, bad.length]) {
              const items = yield* Stream.fromIterable(piecesAt(bad, everyN(bad.length, size))).pipe(
                BoxCodec.decode(),
                Stream.either,
                Stream.runCollect,
                Effect.map(Chunk.toArray)
              )
              expect(items.length).toBe(3)
              expect(items.slice(0, 2).map((e) => allPairs([Either.getOrThrow(e)])[0])).toEqual(goodBoxes)
              expect(items[2]).toMatchObject({ _tag: "Left", left: { _tag: "LengthLimitExceeded", length, offset } })
            }
          }))
      })
    }

    it("IncompleteBox at every truncation point of a valid stream, with its offsets and what it expected", () => {
      const boxes = [AmpBox.make({ key: "value" }), AmpBox.empty, AmpBox.fromEntries([["e", ""], ["\u00ff\u00ff", "zz"]])]
      const full = concat(good, BoxCodec.encodeBoxes(boxes))
      const { ends } = model(full)
      const seen = new Set<string>()
      for (let cut = 0; cut <= full.length; cut++) {
        const bytes = full.subarray(0, cut)
        const expected = model(bytes)
        for (const cuts of [[], everyN(cut, 1), everyN(cut, 3)]) {
          const { boxes: got, error } = decodePieces(piecesAt(bytes, cuts))
          expect(got.length).toBe(expected.boxes.length)
          if (ends.includes(cut) || cut === 0) {
            expect(error).toBeUndefined()
          } else {
            expect(error).toBeInstanceOf(IncompleteBox)
            expect(error).toMatchObject(expected.error!)
            seen.add((error as IncompleteBox).expecting)
            expect((error as IncompleteBox).endOffset).toBe(cut)
            expect((error as IncompleteBox).boxOffset).toBe([0, ...ends].filter((e) => e < cut).pop())
          }
        }
      }
      expect([...seen].sort()).toEqual(["key", "key length", "value", "value length"])
      // Spot checks against hand-computed values: `00 03 "key" 00 05 "value" 00 00` after `good`.
      const at = good.length
      expect(thrown(() => BoxCodec.parse(full.subarray(0, at + 1)))).toMatchObject({ boxOffset: at, endOffset: at + 1, expecting: "key length" })
      expect(thrown(() => BoxCodec.parse(full.subarray(0, at + 2)))).toMatchObject({ expecting: "key" })
      expect(thrown(() => BoxCodec.parse(full.subarray(0, at + 4)))).toMatchObject({ expecting: "key" })
      expect(thrown(() => BoxCodec.parse(full.subarray(0, at + 5)))).toMatchObject({ expecting: "value length" })
      expect(thrown(() => BoxCodec.parse(full.subarray(0, at + 6)))).toMatchObject({ expecting: "value length" })
      expect(thrown(() => BoxCodec.parse(full.subarray(0, at + 7)))).toMatchObject({ expecting: "value" })
      expect(thrown(() => BoxCodec.parse(full.subarray(0, at + 12)))).toMatchObject({ expecting: "key length" })
      expect(thrown(() => BoxCodec.parse(full.subarray(0, at + 13)))).toMatchObject({ expecting: "key length", endOffset: at + 13 })
    })

    it.effect("decode() emits the complete boxes of a truncated stream, then fails with IncompleteBox", () =>
      Effect.gen(function*() {
        const bytes = concat(good, [0, 3, 0x6b])
        const items = yield* Stream.fromIterable(piecesAt(bytes, [2, 5, 9])).pipe(BoxCodec.decode(), Stream.either, Stream.runCollect)
        const list = Chunk.toArray(items)
        expect(list.length).toBe(3)
        expect(list[2]).toMatchObject({ _tag: "Left", left: { _tag: "IncompleteBox", boxOffset: good.length, endOffset: good.length + 3, expecting: "key" } })
      }))

    describe("BoxTooLarge", () => {
      const box = AmpBox.fromEntries(Array.from({ length: 20 }, (_, i) => [`k${i}`, "v".repeat(i)] as const))
      const bytes = BoxCodec.encodeBox(box)

      it("maxKeys: exactly the limit passes; one more key fails with limit, max and boxOffset", () => {
        expect(BoxCodec.parse(concat(good, bytes), { maxKeys: 20 }).length).toBe(3)
        const error = thrown(() => BoxCodec.parse(concat(good, bytes), { maxKeys: 19 }))
        expect(error).toBeInstanceOf(BoxTooLarge)
        expect(error).toMatchObject({ _tag: "BoxTooLarge", limit: "keys", max: 19, boxOffset: good.length })
        expect((error as BoxTooLarge).message).toContain("19 keys")
        // The boxes before it are delivered first.
        const { boxes, error: e2 } = decodePieces(piecesAt(concat(good, bytes), everyN(good.length + bytes.length, 3)), { maxKeys: 10 })
        expect(allPairs(boxes)).toEqual(goodBoxes)
        expect(e2).toMatchObject({ limit: "keys", max: 10 })
      })

      it("maxKeys counts distinct keys: a repeated key does not add one", () => {
        const repeated = concat(...Array.from({ length: 50 }, (_, i) => [0, 1, 0x6b, 0, 1, 0x30 + (i % 10)]), [0, 1, 0x6a, 0, 0, 0, 0])
        expect(allPairs(BoxCodec.parse(repeated, { maxKeys: 2 }))).toEqual([[["k", "39"], ["j", ""]]])
      })

      it("maxBoxBytes: exactly the limit passes; one byte over fails with limit, max and boxOffset", () => {
        expect(BoxCodec.parse(concat(good, bytes), { maxBoxBytes: bytes.length }).length).toBe(3)
        const error = thrown(() => BoxCodec.parse(concat(good, bytes), { maxBoxBytes: bytes.length - 1 }))
        expect(error).toBeInstanceOf(BoxTooLarge)
        expect(error).toMatchObject({ _tag: "BoxTooLarge", limit: "bytes", max: bytes.length - 1, boxOffset: good.length })
        expect((error as BoxTooLarge).message).toContain(`${bytes.length - 1} bytes`)
      })

      it("maxBoxBytes refuses a box as soon as a length prefix proves it too large, before its bytes arrive", () => {
        const d = new BoxCodec.BoxDecoder({ maxBoxBytes: 1000 })
        d.push(concat(good, [0, 1, 0x6b], u16(65535)))
        expect(d.next()).toBeDefined()
        expect(d.next()).toBeDefined()
        expect(thrown(() => d.next())).toMatchObject({ _tag: "BoxTooLarge", limit: "bytes", max: 1000, boxOffset: good.length })
      })

      it("the default limits hold 4096 keys and a 16 MiB box", () => {
        expect(BoxCodec.defaultLimits).toEqual({ maxBoxBytes: 16 * 1024 * 1024, maxKeys: 4096 })
        const many = AmpBox.fromEntries(Array.from({ length: 4096 }, (_, i) => [`${i}`, ""] as const))
        expect(BoxCodec.parse(BoxCodec.encodeBox(many))[0]!.size).toBe(4096)
        const tooMany = AmpBox.fromEntries(Array.from({ length: 4097 }, (_, i) => [`${i}`, ""] as const))
        expect(thrown(() => BoxCodec.parse(BoxCodec.encodeBox(tooMany)))).toMatchObject({ limit: "keys", max: 4096 })
      })
    })

    it("the model and the decoder agree on corrupted streams, at any chunking and limits", () =>
      FastCheck.assert(
        FastCheck.property(
          boxesArb(false),
          FastCheck.array(FastCheck.tuple(FastCheck.double({ min: 0, max: 1, noNaN: true }), FastCheck.integer({ min: 0, max: 255 })), { maxLength: 4 }),
          FastCheck.option(FastCheck.double({ min: 0, max: 1, noNaN: true })),
          cutsArb,
          FastCheck.record({ maxBoxBytes: FastCheck.integer({ min: 2, max: 5000 }), maxKeys: FastCheck.integer({ min: 0, max: 12 }) }),
          (boxes, flips, truncate, fractions, limits) => {
            const bytes = new Uint8Array(BoxCodec.encodeBoxes(boxes))
            // Flips land mostly on length prefixes' high bytes when the byte is small.
            for (const [at, value] of flips) bytes[Math.floor(at * bytes.length) % Math.max(1, bytes.length)] = value
            const stream = truncate === null ? bytes : bytes.subarray(0, Math.floor(truncate * bytes.length))
            const expected = model(stream, limits)
            const { boxes: got, error } = decodePieces(piecesAt(stream, cutsAt(stream.length, fractions)), limits)
            expect(allPairs(got)).toEqual(allPairs(expected.boxes))
            if (expected.error === undefined) expect(error).toBeUndefined()
            else expect(error).toMatchObject(expected.error)
          }
        ),
        { numRuns: 400 }
      ))

    it("end() with a complete box never read is a caller bug, said loudly", () => {
      const d = new BoxCodec.BoxDecoder()
      d.push(good)
      expect(() => d.end()).toThrow(/undelivered/)
    })
  })

  describe("the Stream form", () => {
    it.effect("decode() over Stream.fromIterable(chunks) at any chunking", () =>
      Effect.gen(function*() {
        const samples = FastCheck.sample(FastCheck.tuple(boxesArb(), cutsArb), { numRuns: 30, seed: 11 })
        for (const [boxes, fractions] of samples) {
          const bytes = BoxCodec.encodeBoxes(boxes)
          const got = yield* Stream.fromIterable(piecesAt(bytes, cutsAt(bytes.length, fractions))).pipe(BoxCodec.decode(), Stream.runCollect)
          expect(sameBoxes(Chunk.toArray(got), boxes)).toBe(true)
        }
      }))

    it.effect("decode() with limits, and with an upstream failure passed through after the boxes", () =>
      Effect.gen(function*() {
        const bytes = BoxCodec.encodeBoxes([AmpBox.make({ a: "1" }), AmpBox.make({ b: "2", c: "3" })])
        const limited = yield* Stream.make(bytes).pipe(BoxCodec.decode({ maxKeys: 1 }), Stream.either, Stream.runCollect)
        expect(Chunk.toArray(limited).map((e) => e._tag)).toEqual(["Right", "Left"])
        expect(Chunk.toArray(limited)[1]).toMatchObject({ left: { _tag: "BoxTooLarge", limit: "keys" } })
        const upstream = yield* Stream.make(bytes.subarray(0, 8)).pipe(
          Stream.concat(Stream.fail("socket reset" as const)),
          BoxCodec.decode(),
          Stream.either,
          Stream.runCollect
        )
        expect(Chunk.toArray(upstream)).toMatchObject([{ _tag: "Right" }, { _tag: "Left", left: "socket reset" }])
      }))

    it.effect("encodeStream then decode is the identity", () =>
      Effect.gen(function*() {
        const boxes = Array.from({ length: 50 }, (_, i) => AmpBox.make({ _ask: i.toString(16), v: "x".repeat(i * 7) }))
        const bytes = yield* Stream.fromIterable(boxes).pipe(BoxCodec.encodeStream, Stream.runCollect)
        expect(hex(Buffer.concat(Chunk.toArray(bytes)))).toBe(hex(BoxCodec.encodeBoxes(boxes)))
        const back = yield* Stream.fromIterable(boxes).pipe(
          BoxCodec.encodeStream,
          Stream.rechunk(3),
          BoxCodec.decode(),
          Stream.runCollect
        )
        expect(allPairs(Chunk.toArray(back))).toEqual(allPairs(boxes))
      }))

    it.effect("parse, parseEffect and encode", () =>
      Effect.gen(function*() {
        const box = AmpBox.make({ x: "1" })
        const bytes = yield* BoxCodec.encode(box)
        expect(Equal.equals(BoxCodec.parse(bytes)[0], box)).toBe(true)
        expect((yield* BoxCodec.parseEffect(concat(bytes, bytes))).length).toBe(2)
        expect(yield* Effect.flip(BoxCodec.parseEffect(bytes.subarray(0, 3)))).toMatchObject({ _tag: "IncompleteBox" })
      }))
  })

  describe("values handed out stay intact", () => {
    it("while the decoder goes on, reads straddling fields, and is reset by takeLeftover", () =>
      FastCheck.assert(
        FastCheck.property(boxesArb(false), boxesArb(false), cutsArb, (first, second, fractions) => {
          const a = BoxCodec.encodeBoxes(first)
          const b = BoxCodec.encodeBoxes(second)
          const d = new BoxCodec.BoxDecoder()
          const kept: Array<AmpBox.AmpBox> = []
          // Fresh copies of every chunk, so only the decoder could corrupt what it handed out.
          for (const piece of piecesAt(a, cutsAt(a.length, fractions))) {
            d.push(piece.slice())
            for (let x = d.next(); x !== undefined; x = d.next()) kept.push(x)
          }
          const snapshot = allPairs(kept)
          for (const piece of piecesAt(b, cutsAt(b.length, fractions.map((f) => 1 - f).reverse()))) {
            d.push(piece.slice())
            while (d.next() !== undefined);
          }
          d.push(b.slice(0, 5))
          d.takeLeftover()
          d.push(b.slice())
          while (d.next() !== undefined);
          return JSON.stringify(allPairs(kept)) === JSON.stringify(snapshot) && sameBoxes(kept, first)
        }),
        { numRuns: 80 }
      ))

    it("a big box gathered from many chunks keeps memory of about its own size", () => {
      const box = AmpBox.fromEntries(Array.from({ length: 40 }, (_, i) => [`k${i}`, new Uint8Array(60000).fill(i)]))
      const bytes = BoxCodec.encodeBox(box)
      const { boxes } = decodePieces(piecesAt(bytes, everyN(bytes.length, 65536)))
      expect(sameBoxes(boxes, [box])).toBe(true)
      const held = new Set([...boxes[0]!].map(([, v]) => v.buffer))
      expect(held.size).toBe(1)
      expect([...held][0]!.byteLength).toBeLessThanOrEqual(bytes.length + 64 * 1024)
    })

    it("a value split over chunks is a copy of its own", () => {
      const bytes = BoxCodec.encodeBoxes([AmpBox.make({ k: "hello world" }), AmpBox.make({ k: "HELLO WORLD" })])
      const d = new BoxCodec.BoxDecoder()
      d.push(bytes.slice(0, 10))
      d.push(bytes.slice(10, 26))
      const one = d.next()!
      d.push(bytes.slice(26))
      const two = d.next()!
      expect([one.getText("k"), two.getText("k")]).toEqual(["hello world", "HELLO WORLD"])
    })
  })

  describe("parseFile", () => {
    it.scoped("reads every box of a file through the FileSystem service; a file cut mid-box is an IncompleteBox", () =>
      Effect.gen(function*() {
        const dir = yield* Effect.acquireRelease(
          Effect.sync(() => fs.mkdtempSync(path.join(os.tmpdir(), "effect-amp-parse-"))),
          (dir) => Effect.sync(() => fs.rmSync(dir, { recursive: true, force: true }))
        )
        const boxes = [AmpBox.make({ _command: "Sum", a: "1", b: "2" }), AmpBox.make({ text: "x".repeat(70_000 >> 1) })]
        const bytes = BoxCodec.encodeBoxes(boxes)
        const whole = path.join(dir, "boxes.amp")
        const cut = path.join(dir, "cut.amp")
        fs.writeFileSync(whole, bytes)
        fs.writeFileSync(cut, bytes.subarray(0, bytes.length - 3))
        const read = yield* BoxCodec.parseFile(whole).pipe(Effect.provide(NodeFileSystem.layer))
        expect(sameBoxes(read, boxes)).toBe(true)
        const error = yield* Effect.flip(BoxCodec.parseFile(cut).pipe(Effect.provide(NodeFileSystem.layer)))
        expect(error._tag).toBe("IncompleteBox")
      }))
  })
})
