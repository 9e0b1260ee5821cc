/**
 * Golden vectors from a live Twisted, generated in this run: we decode what
 * Twisted serializes, encode byte-identically, and Twisted parses ours.
 */
import { describe, expect, it } from "@effect/vitest"
import * as Equal from "effect/Equal"
import * as AmpBox from "../src/AmpBox.js"
import * as BoxCodec from "../src/BoxCodec.js"
import { requireTwisted, runPython } from "./support/twisted.js"

interface Golden {
  readonly name: string
  readonly boxes: ReadonlyArray<ReadonlyArray<readonly [string, string]>>
  readonly wire_b64: string
}
const fromB64 = (s: string) => new Uint8Array(Buffer.from(s, "base64"))
const boxOf = (pairs: ReadonlyArray<readonly [string, string]>) =>
  AmpBox.fromEntries(pairs.map(([k, v]) => [AmpBox.bytesToByteString(fromB64(k)), fromB64(v)] as const))
/** Twisted serializes keys in sorted order. */
const sorted = (box: AmpBox.AmpBox) => AmpBox.fromEntries([...box].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)))

describe("BoxCodec against Twisted", () => {
  requireTwisted()
  const golden = JSON.parse(runPython("golden.py")) as ReadonlyArray<Golden>

  for (const g of golden) {
    it(`decodes Twisted's "${g.name}" at several chunkings and encodes it byte for byte`, () => {
      const wire = fromB64(g.wire_b64)
      const expected = g.boxes.map(boxOf)
      for (const size of [1, 2, 3, 64, wire.length]) {
        const d = new BoxCodec.BoxDecoder()
        const got: Array<AmpBox.AmpBox> = []
        for (let i = 0; i < wire.length; i += size) {
          d.push(wire.subarray(i, i + size))
          for (let b = d.next(); b; b = d.next()) got.push(b)
        }
        d.end()
        expect(got.length).toBe(expected.length)
        got.forEach((b, i) => expect(Equal.equals(b, expected[i]!)).toBe(true))
      }
      expect(Buffer.from(BoxCodec.encodeBoxes(expected.map(sorted))).equals(Buffer.from(wire))).toBe(true)
    })
  }

  it("Twisted's parseString accepts our encoding of 200 random boxes", () => {
    let seed = 42
    const rand = (n: number) => {
      seed = (seed * 1103515245 + 12345) & 0x7fffffff
      return seed % n
    }
    const bytes = (n: number) => Uint8Array.from({ length: n }, () => rand(256))
    const boxes = Array.from({ length: 200 }, () =>
      AmpBox.fromEntries(Array.from({ length: rand(6) }, () => [AmpBox.bytesToByteString(bytes(1 + rand(255))), bytes(rand(rand(10) === 0 ? 65536 : 200))] as const)))
    const parsed = JSON.parse(runPython("golden.py", ["parse"], Buffer.from(BoxCodec.encodeBoxes(boxes)).toString("base64"))) as ReadonlyArray<
      ReadonlyArray<readonly [string, string]>
    >
    expect(parsed.length).toBe(200)
    parsed.forEach((pairs, i) => expect(Equal.equals(boxOf(pairs), boxes[i]!)).toBe(true))
  })
})
