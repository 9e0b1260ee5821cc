/**
 * A seeded fuzz run over the socket: valid request streams, mutated (bytes
 * flipped, cut, inserted, spliced), written in random chunks. The server
 * never crashes; every connection either is answered or ends, with nothing
 * half-written in what it sent; a client on another connection keeps
 * getting answers throughout. The seed makes every run the same stream.
 */
import { describe, expect, it } from "@effect/vitest"
import { ask, concat, prng, rawClient, startServe } from "../support/hostile.js"

const SEED = 20261201
const STREAMS = 300
const AT_ONCE = 8

const streamOf = (rand: () => number, n: number): Uint8Array => {
  const pick = <A>(xs: ReadonlyArray<A>): A => xs[Math.floor(rand() * xs.length)]!
  const int = () => pick(["0", "-1", "13", "81", "9".repeat(Math.floor(rand() * 40)), "1e3", "", " 7", "0x10"])
  const boxes: Array<Uint8Array> = []
  const count = 1 + Math.floor(rand() * 6)
  for (let b = 0; b < count; b++) {
    const id = rand() < 0.9 ? `${n}.${b}` : undefined
    const box = pick([
      () => ask("Sum", id, { a: int(), b: int() }),
      () => ask("Divide", id, { numerator: int(), denominator: int() }),
      () => ask("Echo", id, { text: "é".repeat(Math.floor(rand() * 300)) }),
      () => ask("Nope", id, {}),
      () => ask("Sum", id, { a: "1" })
    ])()
    boxes.push(box)
  }
  let bytes = Buffer.from(concat(boxes))
  const mutations = Math.floor(rand() * 4)
  for (let m = 0; m < mutations && bytes.length > 0; m++) {
    const at = Math.floor(rand() * bytes.length)
    switch (pick(["flip", "cut", "insert", "splice"])) {
      case "flip":
        bytes[at] = Math.floor(rand() * 256)
        break
      case "cut":
        bytes = bytes.subarray(0, at)
        break
      case "insert":
        bytes = Buffer.concat([bytes.subarray(0, at), Buffer.from(Array.from({ length: 1 + Math.floor(rand() * 8) }, () => Math.floor(rand() * 256))), bytes.subarray(at)])
        break
      case "splice":
        bytes = Buffer.concat([bytes, bytes.subarray(at, at + Math.floor(rand() * 64))])
        break
    }
  }
  return bytes
}

describe("seeded fuzz over the socket", () => {
  it(`${STREAMS} mutated request streams in random chunks: no crash, every connection ends cleanly, a witness keeps getting answers`, async () => {
    const server = await startServe()
    const witness = await rawClient(server.port)
    const rand = prng(SEED)
    const streams = Array.from({ length: STREAMS }, (_, n) => ({ bytes: streamOf(rand, n), seed: Math.floor(rand() * 2 ** 31) }))
    const problems: Array<string> = []
    let next = 0
    const worker = async () => {
      while (next < STREAMS) {
        const n = next++
        const { bytes, seed } = streams[n]!
        const chunkRand = prng(seed)
        const c = await rawClient(server.port)
        for (let at = 0; at < bytes.length && !c.isEnded();) {
          const size = 1 + Math.floor(chunkRand() * 64)
          await c.write(bytes.subarray(at, at + size))
          at += size
          if (chunkRand() < 0.2) await new Promise((r) => setImmediate(r))
        }
        c.socket.end()
        const ended = await Promise.race([c.ended, new Promise<undefined>((r) => setTimeout(() => r(undefined), 5000))])
        if (!ended) problems.push(`stream ${n}: the connection neither ended nor closed within 5 s of our end`)
        if (c.decodeError() !== undefined) problems.push(`stream ${n}: what the server sent does not decode: ${String(c.decodeError())}`)
        if (c.midBox()) problems.push(`stream ${n}: the server's last box was cut off`)
        for (const box of c.boxes) {
          if (!box.has("_answer") && !box.has("_error")) problems.push(`stream ${n}: a box that is neither answer nor error`)
        }
        if (n % 50 === 0) {
          const before = witness.boxes.length
          await witness.write(ask("Sum", `w${n}`, { a: String(n), b: "1" }))
          await witness.until(() => witness.boxes.length > before, 5000, `the witness's answer after stream ${n}`)
          if (witness.boxes[before]!.getText("total") !== String(n + 1)) problems.push(`witness after ${n}: wrong total`)
        }
        if (problems.length > 10) break
      }
    }
    await Promise.all(Array.from({ length: AT_ONCE }, worker))
    expect(problems).toEqual([])
    expect(server.child.exitCode, "the server is still running").toBeNull()
    expect(witness.isEnded()).toBe(false)
  }, 60_000)
})
