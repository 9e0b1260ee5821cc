/**
 * Connection churn: thousands of short connections, some closed mid-box,
 * some reset, in bounded time. The server answers every whole call, keeps
 * answering, and further churns as large as the first leave its RSS where
 * the first left it. Comparing equal churns, not the start with the end,
 * keeps the allocator's high-water mark out of the figure; and a lazy GC on
 * a loaded machine can still grow the heap once (seen: +16 MiB in one of two
 * churns), so the bound is on the smaller growth of two further churns. A
 * per-connection leak shows in every churn.
 */
import { describe, expect, it } from "@effect/vitest"
import * as net from "node:net"
import * as BoxCodec from "../../src/BoxCodec.js"
import { ask, MiB, prng, rawClient, sleep, startServe, sumOnce } from "../support/hostile.js"

const CONNECTIONS = 2000
const AT_ONCE = 40
/** RSS a churn may add over the one before, in the better of two (a 12 KiB-per-connection leak adds 23 MiB to each). */
const RSS_KEPT = 12 * MiB

type Kind = "call" | "midBox" | "reset"

/** One short connection of the given kind; resolves with the Sum's total for "call". */
const once = (port: number, kind: Kind, i: number): Promise<string | undefined> =>
  new Promise((resolve, reject) => {
    const box = ask("Sum", "1", { a: String(i), b: "1" })
    const s = net.createConnection({ host: "127.0.0.1", port })
    const timer = setTimeout(() => (s.destroy(), reject(new Error(`connection ${i} (${kind}) hung`))), 10_000)
    const done = (v: string | undefined) => (clearTimeout(timer), resolve(v))
    s.on("error", () => undefined)
    s.once("connect", () => {
      if (kind === "midBox") return s.end(box.subarray(0, 9), () => (s.destroy(), done(undefined)))
      if (kind === "reset") return s.write(box, () => (s.resetAndDestroy(), done(undefined)))
      const decoder = new BoxCodec.BoxDecoder()
      s.on("data", (d: Buffer) => {
        decoder.push(d)
        const answer = decoder.next()
        if (answer) (s.end(), done(answer.getText("total")))
      })
      s.write(box)
    })
    s.once("close", () => done(undefined))
  })

const churn = async (port: number, n: number, seed: number) => {
  const rand = prng(seed)
  const kinds: Array<Kind> = Array.from({ length: n }, () => {
    const r = rand()
    return r < 0.7 ? "call" : r < 0.85 ? "midBox" : "reset"
  })
  const wrong: Array<string> = []
  let next = 0
  const worker = async () => {
    while (next < n) {
      const i = next++
      const total = await once(port, kinds[i]!, i)
      if (kinds[i] === "call" && total !== String(i + 1) && wrong.length < 5) wrong.push(`call ${i}: total ${total}`)
    }
  }
  await Promise.all(Array.from({ length: AT_ONCE }, worker))
  return { wrong, calls: kinds.filter((k) => k === "call").length }
}

describe("connection churn", () => {
  it(`${CONNECTIONS} short connections (calls, closes mid-box, resets): every call answered, RSS does not grow with churn`, async () => {
    const server = await startServe()
    const witness = await rawClient(server.port)
    const first = await churn(server.port, CONNECTIONS, 1) // also the warm-up: code paths, pools, heap size
    expect(first.wrong).toEqual([])
    await sleep(1500)
    const rss = [server.rss()]
    for (const seed of [20261201, 20261202]) {
      const { calls, wrong } = await churn(server.port, CONNECTIONS, seed)
      expect(wrong).toEqual([])
      expect(calls).toBeGreaterThan(CONNECTIONS / 2)
      await sleep(1500)
      rss.push(server.rss())
    }
    // The long-lived connection was never disturbed, and new ones are answered.
    await witness.write(ask("Sum", "w", { a: "40", b: "2" }))
    await witness.until(() => witness.boxes.length === 1, 5000, "the witness's answer")
    expect(witness.boxes[0]!.getText("total")).toBe("42")
    expect(await sumOnce(server.port, 1n, 1n)).toBe("2")
    const grew = [rss[1]! - rss[0]!, rss[2]! - rss[1]!]
    const kept = Math.min(...grew)
    const figures = grew.map((g) => `${(g / MiB).toFixed(1)} MiB`).join(", then ")
    expect(kept, `server RSS grew ${figures} over two more churns of ${CONNECTIONS}`).toBeLessThan(RSS_KEPT)
    expect(server.child.exitCode).toBeNull()
  }, 60_000)
})
