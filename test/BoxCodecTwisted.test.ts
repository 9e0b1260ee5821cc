/**
 * The codec against a live Twisted (test/support/golden.py, run during the test):
 * we decode exactly the boxes Twisted serializes, at any chunking; we encode
 * byte for byte what Twisted's AmpBox.serialize() writes; Twisted parses what
 * we write; and on broken streams both deliver the same boxes before giving up.
 *
 * Also tests the helpers in test/support/twisted.ts (peers die with their Scope).
 * Without Twisted this file fails loudly, with the line that installs it.
 */
import { describe, expect, it } from "@effect/vitest"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import * as Chunk from "effect/Chunk"
import * as Effect from "effect/Effect"
import * as FastCheck from "effect/FastCheck"
import * as Schedule from "effect/Schedule"
import * as Stream from "effect/Stream"
import * as AmpBox from "../src/AmpBox.js"
import * as BoxCodec from "../src/BoxCodec.js"
import { alive } from "./support/child.js"
import {
  checkTwisted,
  execPython,
  INSTALL_LINE,
  PYTHON,
  requireTwisted,
  runPython,
  startPeer
} from "./support/twisted.js"

type Pair = readonly [string, string]
type BoxJson = ReadonlyArray<Pair>
interface Golden {
  readonly name: string
  /** Pairs in serialize() order (sorted keys). */
  readonly boxes: ReadonlyArray<BoxJson>
  readonly wireB64: string
  /** Twisted's parseString of the wire, in wire order. */
  readonly parsed: ReadonlyArray<BoxJson>
}
interface Fed {
  readonly boxes: ReadonlyArray<BoxJson>
  readonly lengthLimitExceeded: boolean
  readonly disconnected: boolean
}

const b64 = (bytes: Uint8Array) => Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length).toString("base64")
const unb64 = (s: string) => new Uint8Array(Buffer.from(s, "base64"))
const keyB64 = (key: string) => b64(AmpBox.byteStringToBytes(key))
/** A box as Twisted's JSON spells it: [key, value] pairs in order. */
const toJson = (box: AmpBox.AmpBox): BoxJson => [...box].map(([k, v]) => [keyB64(k), b64(v)] as const)
const fromJson = (pairs: BoxJson) =>
  AmpBox.fromEntries(pairs.map(([k, v]) => [AmpBox.bytesToByteString(unb64(k)), unb64(v)] as const))
const byteOrder = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0)
/** The box with its keys in byte order, the order Twisted's serialize() writes. */
const sortedKeys = (box: AmpBox.AmpBox) => AmpBox.fromEntries([...box].sort(([a], [b]) => byteOrder(a, b)))

/** Decodes `wire` pushed in pieces that end at `cuts`; returns the boxes and the error, if any. */
const decodeAt = (wire: Uint8Array, cuts: ReadonlyArray<number>) => {
  const d = new BoxCodec.BoxDecoder()
  const boxes: Array<AmpBox.AmpBox> = []
  let error: unknown
  try {
    let from = 0
    for (const to of [...cuts, wire.length]) {
      if (to > from) d.push(wire.subarray(from, to))
      from = Math.max(from, to)
      for (let b = d.next(); b !== undefined; b = d.next()) boxes.push(b)
    }
    d.end()
  } catch (e) {
    error = e
  }
  return { boxes, error }
}
const everyN = (length: number, n: number) => Array.from({ length: Math.ceil(length / n) }, (_, i) => i * n)

/** A deterministic pseudo-random generator (mulberry32). */
const prng = (seed: number) => () => {
  seed = (seed + 0x6d2b79f5) | 0
  let t = Math.imul(seed ^ (seed >>> 15), 1 | seed)
  t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t
  return ((t ^ (t >>> 14)) >>> 0) / 4294967296
}

const keyArb = FastCheck.oneof(
  { weight: 6, arbitrary: FastCheck.uint8Array({ minLength: 1, maxLength: 12 }) },
  { weight: 3, arbitrary: FastCheck.uint8Array({ minLength: 1, maxLength: 255 }) },
  { weight: 1, arbitrary: FastCheck.uint8Array({ minLength: 255, maxLength: 255 }) }
).map((b) => AmpBox.bytesToByteString(b))
const valueArb = FastCheck.oneof(
  { weight: 30, arbitrary: FastCheck.uint8Array({ maxLength: 2000 }) },
  { weight: 3, arbitrary: FastCheck.constant(new Uint8Array(0)) },
  { weight: 1, arbitrary: FastCheck.uint8Array({ minLength: 65535, maxLength: 65535 }) }
)
const boxArb = FastCheck.array(FastCheck.tuple(keyArb, valueArb), { maxLength: 10 }).map((e) => AmpBox.fromEntries(e))
const randomBoxes = (n: number, seed: number) => FastCheck.sample(boxArb, { numRuns: n, seed })
/** Small boxes for the corruption fuzz (Twisted's receiver is quadratic in 1-byte chunks). */
const smallBoxArb = FastCheck.array(
  FastCheck.tuple(FastCheck.uint8Array({ minLength: 1, maxLength: 8 }).map((b) => AmpBox.bytesToByteString(b)), FastCheck.uint8Array({ maxLength: 40 })),
  { maxLength: 5 }
).map((e) => AmpBox.fromEntries(e))

describe("BoxCodec against a live Twisted", () => {
  requireTwisted()
  const golden = JSON.parse(runPython("golden.py")) as ReadonlyArray<Golden>

  it("golden.py produced every vector, and Twisted parses each back to its boxes", () => {
    expect(golden.length).toBeGreaterThanOrEqual(25)
    // serialize() writes keys sorted, so parsing gives them back in the same order.
    for (const g of golden) expect(g.parsed, g.name).toEqual(g.boxes)
  })

  for (const g of golden) {
    describe(g.name, () => {
      const wire = unb64(g.wireB64)

      it("we decode exactly Twisted's boxes, at every chunking", () => {
        const random = prng(wire.length)
        const chunkings = [
          [],
          everyN(wire.length, 1),
          everyN(wire.length, 2),
          everyN(wire.length, 3),
          everyN(wire.length, 7),
          everyN(wire.length, 64),
          everyN(wire.length, 4096),
          ...Array.from({ length: 5 }, () =>
            Array.from({ length: 1 + Math.floor(random() * 20) }, () => Math.floor(random() * (wire.length + 1))).sort((a, b) => a - b))
        ]
        for (const cuts of chunkings) {
          const { boxes, error } = decodeAt(wire, cuts)
          expect(error).toBeUndefined()
          expect(boxes.map(toJson)).toEqual(g.parsed)
        }
        expect(BoxCodec.parse(wire).map(toJson)).toEqual(g.parsed)
      })

      it.effect("the Stream form decodes them too", () =>
        Effect.gen(function*() {
          const chunks = everyN(wire.length, 1000).map((i) => wire.subarray(i, i + 1000))
          const boxes = yield* Stream.fromIterable(chunks).pipe(BoxCodec.decode(), Stream.runCollect)
          expect(Chunk.toArray(boxes).map(toJson)).toEqual(g.parsed)
        }))

      it("we encode them byte for byte as Twisted's serialize() does", () => {
        const boxes = g.boxes.map(fromJson)
        expect(b64(BoxCodec.encodeBoxes(boxes))).toBe(g.wireB64)
        expect(b64(Buffer.concat(boxes.map(BoxCodec.encodeBox)))).toBe(g.wireB64)
      })
    })
  }

  it("DESIGN.md's Sum box is what Twisted writes", () => {
    const sum = golden.find((g) => g.name.startsWith("sum"))!
    // Twisted sorts keys, so _ask comes before _command; the bytes are otherwise DESIGN.md's.
    expect(Buffer.from(unb64(sum.wireB64)).toString("hex")).toBe(
      "00045f61736b0002316600085f636f6d6d616e64000353756d000161000231330001620002383100" + "00"
    )
  })

  it("our encoder and Twisted's serialize() agree byte for byte on 200 random boxes (same key order)", () => {
    const boxes = randomBoxes(200, 7)
    const wires = JSON.parse(runPython("golden.py", ["serialize"], JSON.stringify(boxes.map(toJson)))) as ReadonlyArray<string>
    expect(wires.length).toBe(200)
    boxes.forEach((box, i) => expect(b64(BoxCodec.encodeBox(sortedKeys(box))), `box ${i}`).toBe(wires[i]))
  })

  it("Twisted's parseString reads our encoding of 200 random boxes, keys in our order", () => {
    const boxes = randomBoxes(200, 42)
    expect(boxes.some((b) => [...b].some(([, v]) => v.length === 65535))).toBe(true)
    const parsed = JSON.parse(runPython("golden.py", ["parse"], b64(BoxCodec.encodeBoxes(boxes)))) as ReadonlyArray<BoxJson>
    expect(parsed.length).toBe(200)
    boxes.forEach((box, i) => expect(parsed[i], `box ${i}`).toEqual(toJson(box)))
  })

  it("duplicate keys, empty boxes and empty values mean the same to Twisted and to us", () => {
    const streams = [
      [],
      [0, 0],
      [0, 0, 0, 0, 0, 0],
      // k=1 j=2 k=3: the key keeps its first position and takes the last value.
      [0, 1, 0x6b, 0, 1, 0x31, 0, 1, 0x6a, 0, 1, 0x32, 0, 1, 0x6b, 0, 1, 0x33, 0, 0],
      [0, 1, 0x6b, 0, 0, 0, 0],
      [0, 2, 0, 0, 0, 2, 0, 0, 0, 0]
    ].map((s) => new Uint8Array(s))
    const fed = JSON.parse(runPython("golden.py", ["feed"], JSON.stringify(streams.map((s) => ({ wireB64: b64(s) }))))) as ReadonlyArray<Fed>
    streams.forEach((wire, i) => expect(BoxCodec.parse(wire).map(toJson), b64(wire)).toEqual(fed[i]!.boxes))
    expect(fed[3]!.boxes).toEqual([[["aw==", "Mw=="], ["ag==", "Mg=="]]])
  })

  it("a key length over 255: the same boxes arrive first, then both sides hang up", () => {
    const good = BoxCodec.encodeBoxes([AmpBox.make({ a: "1" }), AmpBox.make({ bb: "22", c: "" })])
    const half = BoxCodec.encodeBox(AmpBox.make({ x: "y" })).subarray(0, 6)
    const streams: Array<{ wire: Uint8Array; chunk: number }> = []
    for (const prefix of [0x0100, 0x0101, 0x8000, 0xffff]) {
      for (const before of [new Uint8Array(0), good, new Uint8Array([...good, ...half])]) {
        const wire = new Uint8Array([...before, prefix >> 8, prefix & 0xff, 0x41, 0x42, 0, 0])
        for (const chunk of [0, 1, 5]) streams.push({ wire, chunk })
      }
    }
    const fed = JSON.parse(runPython("golden.py", ["feed"], JSON.stringify(streams.map((s) => ({ wireB64: b64(s.wire), chunk: s.chunk }))))) as ReadonlyArray<Fed>
    streams.forEach(({ chunk, wire }, i) => {
      const theirs = fed[i]!
      expect(theirs).toMatchObject({ lengthLimitExceeded: true, disconnected: true })
      const { boxes, error } = decodeAt(wire, chunk === 0 ? [] : everyN(wire.length, chunk))
      expect(boxes.map(toJson)).toEqual(theirs.boxes)
      expect(error).toMatchObject({ _tag: "LengthLimitExceeded" })
    })
  })

  it("every truncation of a stream: Twisted delivers the complete boxes and waits; so do we, and end() says IncompleteBox", () => {
    const parts = [AmpBox.make({ _command: "Sum", a: "13" }), AmpBox.empty, AmpBox.make({ k: new Uint8Array(300) })]
    const wire = BoxCodec.encodeBoxes(parts)
    const ends = [0]
    for (const p of parts) ends.push(ends[ends.length - 1]! + BoxCodec.encodeBox(p).length)
    const cuts = Array.from({ length: wire.length + 1 }, (_, i) => i)
    const fed = JSON.parse(runPython("golden.py", ["feed"], JSON.stringify(cuts.map((n) => ({ wireB64: b64(wire.subarray(0, n)), chunk: 0 }))))) as ReadonlyArray<Fed>
    for (const n of cuts) {
      const theirs = fed[n]!
      expect(theirs).toMatchObject({ lengthLimitExceeded: false, disconnected: false })
      const d = new BoxCodec.BoxDecoder()
      d.push(wire.subarray(0, n))
      const ours: Array<AmpBox.AmpBox> = []
      for (let b = d.next(); b !== undefined; b = d.next()) ours.push(b)
      expect(ours.map(toJson)).toEqual(theirs.boxes)
      if (ends.includes(n)) expect(() => d.end()).not.toThrow()
      else expect(() => d.end()).toThrow(expect.objectContaining({ _tag: "IncompleteBox" }))
    }
  })

  it("300 corrupted streams: Twisted and we deliver the same boxes, and agree on key lengths over 255", () => {
    const random = prng(99)
    const streams = Array.from({ length: 300 }, (_, i) => {
      const wire = new Uint8Array(BoxCodec.encodeBoxes(FastCheck.sample(smallBoxArb, { numRuns: 1 + Math.floor(random() * 4), seed: 1000 + i })))
      // Flip a few bytes, mostly near the length prefixes' high bytes, and maybe truncate.
      for (let f = 0; f < 1 + Math.floor(random() * 3); f++) {
        wire[Math.floor(random() * wire.length)] = random() < 0.5 ? Math.floor(random() * 256) : Math.floor(random() * 3)
      }
      const bytes = random() < 0.3 ? wire.subarray(0, Math.floor(random() * wire.length)) : wire
      return { bytes, chunk: [0, 1, 3, 100][i % 4]! }
    })
    const fed = JSON.parse(runPython("golden.py", ["feed"], JSON.stringify(streams.map((s) => ({ wireB64: b64(s.bytes), chunk: s.chunk }))))) as ReadonlyArray<Fed>
    let limits = 0
    streams.forEach(({ bytes, chunk }, i) => {
      const theirs = fed[i]!
      const { boxes, error } = decodeAt(bytes, chunk === 0 ? [] : everyN(bytes.length, chunk))
      expect(boxes.map(toJson), `stream ${i}`).toEqual(theirs.boxes)
      const ourLimit = (error as { _tag?: string } | undefined)?._tag === "LengthLimitExceeded"
      expect(ourLimit, `stream ${i}`).toBe(theirs.lengthLimitExceeded)
      if (ourLimit) limits++
      else if (error !== undefined) expect(error).toMatchObject({ _tag: "IncompleteBox" })
    })
    // The corruption must actually reach the interesting path now and then.
    expect(limits).toBeGreaterThan(10)
  })
})

describe("test/support/twisted.ts", () => {
  const PEER = path.join(import.meta.dirname, "interop", "peers", "amp_peer.py")

  it("requireTwisted names Twisted's version; a python without Twisted gets the install line", () => {
    expect(requireTwisted()).toMatch(/^\d+\.\d+/)
    expect(PYTHON).toBe(process.env.AMP_PYTHON ?? "/usr/bin/python3")
    const missing = path.join(os.tmpdir(), "no-such-python-here")
    expect(() => checkTwisted(missing)).toThrow(INSTALL_LINE)
    expect(() => checkTwisted(missing)).toThrow("/usr/bin/python3")
    expect(INSTALL_LINE).toBe("apt-get update && apt-get install -y python3-twisted")
  })

  it("execPython reports the exit code and stderr; runPython throws with them", () => {
    const r = execPython("golden.py", ["no-such-mode"])
    expect(r.code).toBe(1)
    expect(r.stderr).toContain("unknown mode no-such-mode")
    expect(() => runPython("golden.py", ["no-such-mode"])).toThrow(/exit 1[\s\S]*unknown mode/)
  })

  it.live("startPeer: a server's address, a client's JSON lines, and the end of its output", () =>
    Effect.gen(function*() {
      const server = yield* startPeer(PEER, ["--listen", "tcp:0"])
      expect(server.address).toEqual({ _tag: "tcp", host: "127.0.0.1", port: server.port })
      expect(server.port).toBeGreaterThan(0)
      const client = yield* startPeer(PEER, ["--connect", `tcp:127.0.0.1:${server.port}`, "--script", "notify"])
      expect(client.address._tag).toBe("other")
      expect(JSON.parse(yield* client.nextLine)).toEqual({ echo: "after notes" })
      expect(JSON.parse(yield* client.nextLine)).toEqual({ notes: ["note 0", "note 1", "note 2", "note 3", "note 4"] })
      expect(yield* client.exited).toBe(0)
      expect(client.stdoutLines.length).toBe(2)
      const end = yield* Effect.flip(client.nextLine)
      expect(end.message).toContain("no more lines")
    }).pipe(Effect.scoped))

  it.live("startPeer over a UNIX socket; the peer dies when its Scope closes", () =>
    Effect.gen(function*() {
      const socket = path.join(fs.mkdtempSync(path.join(os.tmpdir(), "amp-peer-")), "amp.sock")
      const pid = yield* Effect.scoped(
        Effect.gen(function*() {
          const peer = yield* startPeer(PEER, ["--listen", `unix:${socket}`])
          expect(peer.path).toBe(socket)
          expect(peer.isRunning()).toBe(true)
          expect(alive(peer.pid)).toBe(true)
          return peer.pid
        })
      )
      expect(alive(pid)).toBe(false)
    }))

  it.live("closing the Scope kills what the peer spawned too", () =>
    Effect.gen(function*() {
      const pidFile = path.join(fs.mkdtempSync(path.join(os.tmpdir(), "amp-peer-")), "child.pid")
      const grandchild = yield* Effect.scoped(
        Effect.gen(function*() {
          // --spawn: the Twisted peer drives a child that never answers.
          yield* startPeer(PEER, ["--script", "sum", "--spawn", "/bin/sh", "-c", `echo $$ > ${pidFile}; exec sleep 600`])
          const pid = yield* Effect.suspend(() => {
            const text = fs.existsSync(pidFile) ? fs.readFileSync(pidFile, "utf8").trim() : ""
            return text ? Effect.succeed(Number(text)) : Effect.fail("not yet")
          }).pipe(Effect.retry({ times: 500, schedule: Schedule.spaced("20 millis") }), Effect.orDie)
          expect(alive(pid)).toBe(true)
          return pid
        })
      )
      // The grandchild got SIGKILL with its group; it is gone once init has reaped it, which can take a moment.
      const gone = yield* Effect.suspend(() => (alive(grandchild) ? Effect.fail("still there") : Effect.succeed(true))).pipe(
        Effect.retry({ times: 100, schedule: Schedule.spaced("20 millis") }),
        Effect.orElseSucceed(() => false)
      )
      expect(gone).toBe(true)
    }))

  it.live("startPeer fails, with the peer's stderr, when the peer exits before its first line", () =>
    Effect.gen(function*() {
      const error = yield* Effect.flip(Effect.scoped(startPeer(PEER, ["--listen", "tcp:0", "--bogus"])))
      expect(error.message).toContain("unknown option --bogus")
      expect(error.message).toContain("before its first line")
    }))
})
