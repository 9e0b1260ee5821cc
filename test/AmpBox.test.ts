/**
 * The box value on its own, and above all the two ways a box is stored: built
 * from keys and values (`make`, `fromEntries`, the `unsafe*` builders), or
 * decoded, where it keeps the bytes it was read from and makes each value
 * only when asked. Whatever the storage, every observable (lookups,
 * iteration, equality, hash, derived boxes) must be that of a `Map` filled in
 * wire order, which is what Twisted's `dict` gives.
 */
import { describe, expect, it } from "@effect/vitest"
import * as Equal from "effect/Equal"
import * as FastCheck from "effect/FastCheck"
import * as Hash from "effect/Hash"
import * as AmpBox from "../src/AmpBox.js"
import * as BoxCodec from "../src/BoxCodec.js"

// ---------------------------------------------------------------------------
// Arbitraries and helpers
// ---------------------------------------------------------------------------

/** Keys from a small alphabet, so that repeats are common; sometimes many of them (past the scan limit). */
const keyArb = FastCheck.oneof(
  FastCheck.constantFrom("_command", "_ask", "a", "b", "\u00ff", "k\u0000"),
  FastCheck.integer({ min: 0, max: 40 }).map((i) => `k${i}`)
)
const valueArb = FastCheck.oneof(
  FastCheck.uint8Array({ maxLength: 40 }),
  FastCheck.string({ maxLength: 12 }).map(AmpBox.utf8),
  FastCheck.uint8Array({ minLength: 33, maxLength: 300 })
)
/** Short boxes (scanned) and long ones (indexed), both with repeated keys. */
const entriesArb = FastCheck.oneof(
  FastCheck.array(FastCheck.tuple(keyArb, valueArb), { maxLength: 10 }),
  FastCheck.array(FastCheck.tuple(keyArb, valueArb), { minLength: 20, maxLength: 60, size: "max" })
)

/** The reference: a Map filled in order (first position, last value). */
const modelOf = (entries: ReadonlyArray<readonly [string, Uint8Array]>) => new Map(entries)

const hex = (bytes: Uint8Array) => Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length).toString("hex")
const pairs = (box: AmpBox.AmpBox) => [...box].map(([k, v]) => [k, hex(v)] as const)
const modelPairs = (m: ReadonlyMap<string, Uint8Array>) => [...m].map(([k, v]) => [k, hex(v)] as const)

/** The wire bytes of `entries` in order, repeats included (which `encodeBox` cannot produce). */
const wireOf = (entries: ReadonlyArray<readonly [string, Uint8Array]>) => {
  const parts: Array<Uint8Array> = []
  for (const [k, v] of entries) {
    parts.push(new Uint8Array([0, k.length]), AmpBox.byteStringToBytes(k), new Uint8Array([v.length >> 8, v.length & 0xff]), v)
  }
  parts.push(new Uint8Array([0, 0]))
  return new Uint8Array(Buffer.concat(parts))
}

/** Decodes `bytes` pushed in pieces of `size` bytes (each a fresh copy). */
const decodeIn = (bytes: Uint8Array, size: number) => {
  const d = new BoxCodec.BoxDecoder()
  const out: Array<AmpBox.AmpBox> = []
  for (let i = 0; i < bytes.length; i += size) {
    d.push(bytes.slice(i, i + size))
    for (let b = d.next(); b !== undefined; b = d.next()) out.push(b)
  }
  d.end()
  return out
}

/** Every observable of `box` against the model. */
const checkAgainst = (box: AmpBox.AmpBox, m: ReadonlyMap<string, Uint8Array>) => {
  expect(box.size).toBe(m.size)
  expect([...box.keys()]).toEqual([...m.keys()])
  expect(pairs(box)).toEqual(modelPairs(m))
  for (const [k, v] of m) {
    expect(box.has(k)).toBe(true)
    expect(hex(box.get(k)!)).toBe(hex(v))
    expect(box.getText(k)).toBe(AmpBox.decodeUtf8(v))
  }
  for (const absent of ["", "zz", "k41", "_answer"]) {
    if (m.has(absent)) continue
    expect(box.has(absent)).toBe(false)
    expect(box.get(absent)).toBeUndefined()
    expect(box.getText(absent)).toBeUndefined()
  }
  const text = Object.fromEntries([...m].map(([k, v]) => [k, AmpBox.decodeUtf8Lenient(v)]))
  expect(box.toTextRecord()).toEqual(text)
  expect(box.toJSON()).toEqual({ _id: "AmpBox", entries: text })
}

// ---------------------------------------------------------------------------

describe("AmpBox", () => {
  describe("built and decoded boxes behave as a Map filled in wire order", () => {
    it("fromEntries, unsafeFromMap, unsafeFromArrays, and the decoder at several chunkings", () =>
      FastCheck.assert(
        FastCheck.property(entriesArb, (entries) => {
          const m = modelOf(entries)
          checkAgainst(AmpBox.fromEntries(entries), m)
          checkAgainst(AmpBox.unsafeFromMap(new Map(m)), m)
          checkAgainst(AmpBox.unsafeFromArrays([...m.keys()], [...m.values()]), m)
          const wire = wireOf(entries)
          for (const size of [wire.length, 7, 1]) {
            const decoded = decodeIn(wire, size)
            expect(decoded.length).toBe(1)
            checkAgainst(decoded[0]!, m)
          }
        }),
        { numRuns: 150 }
      ))

    it("make keeps the record's order; its keys are distinct", () => {
      const box = AmpBox.make({ _command: "Sum", _ask: "1f", a: "13", b: new Uint8Array([0xff]) })
      expect([...box.keys()]).toEqual(["_command", "_ask", "a", "b"])
      expect(box.getText("_command")).toBe("Sum")
      expect(box.getText("b")).toBeUndefined()
      expect(hex(box.get("b")!)).toBe("ff")
    })

    it("keys that mean something to JS objects decode as plain keys", () => {
      const entries = ["__proto__", "constructor", "toString", "0", "length", "hasOwnProperty"].map((k, i) => [k, AmpBox.utf8(`${i}`)] as const)
      const [box] = BoxCodec.parse(wireOf(entries))
      checkAgainst(box!, modelOf(entries))
      expect(box!.toTextRecord()).toEqual(Object.fromEntries(entries.map(([k], i) => [k, `${i}`])))
    })

    it("a decoded value is the same view every time it is asked for", () => {
      const [box] = BoxCodec.parse(BoxCodec.encodeBox(AmpBox.make({ a: "x".repeat(100), b: "" })))
      expect(box!.get("a")).toBe(box!.get("a"))
      expect([...box!][0]![1]).toBe(box!.get("a"))
      expect(box!.get("b")!.length).toBe(0)
    })

    it("getText reads short values directly, and still refuses bytes that are not UTF-8", () => {
      const entries = [
        ["ascii", AmpBox.utf8("hello")],
        ["utf8", AmpBox.utf8("caf\u00e9 \u20ac")],
        ["bad", new Uint8Array([0x61, 0xc3])],
        ["long", AmpBox.utf8("y".repeat(100))],
        ["empty", new Uint8Array(0)]
      ] as const
      const [decoded] = BoxCodec.parse(wireOf(entries))
      for (const box of [decoded!, AmpBox.fromEntries(entries)]) {
        expect(box.getText("ascii")).toBe("hello")
        expect(box.getText("utf8")).toBe("caf\u00e9 \u20ac")
        expect(box.getText("bad")).toBeUndefined()
        expect(box.getText("long")).toBe("y".repeat(100))
        expect(box.getText("empty")).toBe("")
      }
    })
  })

  describe("equality and hash", () => {
    it("depend on content only: order, storage and repeats on the wire do not matter", () =>
      FastCheck.assert(
        FastCheck.property(entriesArb, FastCheck.integer(), (entries, seed) => {
          const m = modelOf(entries)
          const built = AmpBox.fromEntries(entries)
          // The same content in another order.
          const shuffled = [...m].sort((x, y) => (Hash.string(x[0]) ^ seed) - (Hash.string(y[0]) ^ seed))
          const reordered = AmpBox.fromEntries(shuffled)
          const [decoded] = BoxCodec.parse(wireOf(entries))
          for (const other of [reordered, decoded!]) {
            expect(Equal.equals(built, other)).toBe(true)
            expect(Equal.equals(other, built)).toBe(true)
            expect(Hash.hash(built)).toBe(Hash.hash(other))
          }
          if (m.size > 0) {
            const [k, v] = [...m][0]!
            const changed = AmpBox.fromEntries([...m, [k, new Uint8Array([...v, 1])]])
            expect(Equal.equals(built, changed)).toBe(false)
            expect(Equal.equals(decoded!, built.remove(k))).toBe(false)
          }
        }),
        { numRuns: 100 }
      ))

    it("a box is not equal to something that is not a box", () => {
      const box = AmpBox.make({ a: "1" })
      expect(Equal.equals(box, { a: "1" })).toBe(false)
      expect(AmpBox.isAmpBox(box)).toBe(true)
      expect(AmpBox.isAmpBox({ size: 0 })).toBe(false)
      expect(AmpBox.isAmpBox(null)).toBe(false)
    })
  })

  describe("derived boxes", () => {
    it("set, merge and remove on built and decoded boxes follow the Map", () =>
      FastCheck.assert(
        FastCheck.property(entriesArb, entriesArb, keyArb, valueArb, (entries, more, key, value) => {
          const m = modelOf(entries)
          const [decoded] = BoxCodec.parse(wireOf(entries))
          for (const box of [AmpBox.fromEntries(entries), decoded!]) {
            checkAgainst(box.set(key, value), new Map(m).set(key, value))
            const merged = new Map(m)
            for (const [k, v] of more) merged.set(k, v)
            checkAgainst(box.merge(AmpBox.fromEntries(more)), merged)
            const [fromWire] = BoxCodec.parse(wireOf(more))
            checkAgainst(box.merge(fromWire!), merged)
            const removed = new Map(m)
            const gone = more.map(([k]) => k)
            for (const k of gone) removed.delete(k)
            checkAgainst(box.remove(...gone), removed)
            // The original is untouched.
            checkAgainst(box, m)
          }
        }),
        { numRuns: 100 }
      ))

    it("merge takes a record, writing strings as UTF-8", () => {
      const box = AmpBox.make({ a: "1", b: "2" }).merge({ b: "\u20ac", c: new Uint8Array([7]) })
      expect(pairs(box)).toEqual([["a", "31"], ["b", "e282ac"], ["c", "07"]])
    })

    it("toString shows keys and values as text", () => {
      expect(AmpBox.make({ a: "1", b: "x" }).toString()).toBe('AmpBox({"a": "1", "b": "x"})')
      expect(AmpBox.empty.toString()).toBe("AmpBox({})")
    })
  })

  describe("decoded boxes keep their bytes", () => {
    const boxes = [
      AmpBox.make({ _command: "Sum", _ask: "1", a: "13", b: "81" }),
      AmpBox.fromEntries(Array.from({ length: 30 }, (_, i) => [`key${i}`, "v".repeat(i * 3)] as const)),
      AmpBox.make({ big: new Uint8Array(3000).map((_, i) => i * 13), tail: "end" }),
      AmpBox.empty,
      AmpBox.make({ x: "" })
    ]
    const bytes = BoxCodec.encodeBoxes(boxes)

    it("values first asked for after the decoder has gone on, at every split point", () => {
      for (let split = 0; split <= bytes.length; split++) {
        const d = new BoxCodec.BoxDecoder()
        const got: Array<AmpBox.AmpBox> = []
        // Fresh copies of each piece: only the decoder could change what a box reads.
        for (const piece of [bytes.slice(0, split), bytes.slice(split)]) {
          d.push(piece)
          for (let b = d.next(); b !== undefined; b = d.next()) got.push(b)
        }
        // Other boxes decoded (and gathered) afterwards, before any value is read.
        d.push(bytes.slice(0, 100))
        d.push(bytes.slice(100))
        while (d.next() !== undefined);
        expect(got.map(pairs)).toEqual(boxes.map(pairs))
      }
    })

    it("in chunks of every small size, read only at the end", () => {
      const kept: Array<AmpBox.AmpBox> = []
      for (let size = 1; size <= 40; size++) kept.push(...decodeIn(bytes, size))
      expect(kept.map(pairs)).toEqual(Array.from({ length: 40 }, () => boxes.map(pairs)).flat())
    })

    it("re-encode byte for byte, whether or not their values were made", () => {
      const fresh = BoxCodec.parse(bytes)
      expect(hex(BoxCodec.encodeBoxes(fresh))).toBe(hex(bytes))
      const read = BoxCodec.parse(bytes)
      for (const b of read) for (const _ of b);
      expect(hex(BoxCodec.encodeBoxes(read))).toBe(hex(bytes))
      expect(BoxCodec.parse(bytes).map(BoxCodec.encodedLength)).toEqual(boxes.map(BoxCodec.encodedLength))
    })
  })
})
