/**
 * A peer that pipelines Echo asks and never reads. The server may hold its
 * write high-water mark (1 MiB), its read buffers and the answers of the
 * responders already running: nothing that grows with what the peer sends.
 * So while the peer does not read, the server's RSS stays under a bound and
 * it stops taking the peer's bytes (the peer's writes stall); once the peer
 * reads, every answer arrives exactly once, in order, with its text.
 */
import { describe, expect, it } from "@effect/vitest"
import * as AmpBox from "../../src/AmpBox.js"
import { ask, MiB, rawClient, sleep, startServe } from "../support/hostile.js"

/** RSS the server may gain while a peer does not read (today it gains ~257 MB). */
const RSS_BOUND = 64 * MiB
/** Bytes of ours the server may take while we do not read: its bounded share plus the kernel's socket buffers between us (loopback autotuning: up to tcp_rmem max, 32 MiB here). */
const ACCEPTED_BOUND = 64 * MiB

/** The text of ask `i`: its number, then one letter repeated, `size` bytes in all. */
const textOf = (i: number, size: number): Buffer => {
  const b = Buffer.alloc(size, 97 + (i % 26))
  b.write(`${i}:`, 0, "latin1")
  return b
}

const neverReading = async (count: number, size: number, windowMs: number) => {
  const server = await startServe()
  // Warm up on another connection, so the baseline includes the code paths and buffers of big Echoes.
  const warm = await rawClient(server.port)
  for (let i = 0; i < 32; i++) void warm.write(ask("Echo", String(i), { text: textOf(i, size) }))
  await warm.until(() => warm.boxes.length === 32, 20_000, "32 warm-up answers")
  warm.socket.destroy()
  await sleep(300)
  const rss0 = server.rss()

  let next = 0
  const wrong: Array<string> = []
  const peer = await rawClient(server.port, {
    paused: true,
    onBox: (box: AmpBox.AmpBox) => {
      const i = next++
      const answer = box.getText("_answer")
      const t = box.get("text")
      if (answer !== String(i) || t === undefined || !textOf(i, size).equals(t)) {
        if (wrong.length < 5) wrong.push(`answer #${i}: _answer=${answer} text=${t?.length} bytes ${Buffer.from(t ?? []).toString("latin1", 0, 12)}…`)
      }
    }
  })

  // Write every ask, as fast as the socket takes them; `accepted` counts what Node has handed to the kernel.
  let accepted = 0
  const writer = (async () => {
    for (let i = 0; i < count && !peer.isEnded(); i++) {
      const bytes = ask("Echo", String(i), { text: textOf(i, size) })
      if (!peer.socket.write(bytes, () => (accepted += bytes.length))) {
        await Promise.race([new Promise((ok) => peer.socket.once("drain", ok)), peer.ended])
      }
    }
  })()

  let peak = rss0
  const sampler = setInterval(() => (peak = Math.max(peak, server.rss())), 50)
  await sleep(windowMs / 2)
  const acceptedMid = accepted
  await sleep(windowMs / 2)
  clearInterval(sampler)
  peak = Math.max(peak, server.rss())
  const acceptedEnd = accepted
  const total = count * ask("Echo", String(count), { text: textOf(0, size) }).length

  expect.soft(peak - rss0, `server RSS grew by ${((peak - rss0) / MiB).toFixed(1)} MiB while the peer did not read`).toBeLessThan(RSS_BOUND)
  expect.soft(acceptedEnd, `the server took ${(acceptedEnd / MiB).toFixed(1)} of ${(total / MiB).toFixed(1)} MiB while the peer did not read`).toBeLessThan(ACCEPTED_BOUND)
  expect.soft(acceptedEnd - acceptedMid, "the peer's writes stall: bytes taken in the second half of the window").toBeLessThan(4 * MiB)

  // Now read: every answer exactly once, in order, right text; and the server is still there.
  peer.startReading()
  await writer
  await peer.until(() => next >= count || peer.isEnded(), 60_000, `${count} answers (got ${next})`)
  await sleep(200)
  expect(peer.isEnded(), "the server kept the connection").toBe(false)
  expect(wrong).toEqual([])
  expect(next).toBe(count)
  peer.socket.destroy()
}

describe("a peer that never reads", () => {
  it("5000 Echo asks of 60 KB: bounded server memory, writes stall, then every answer once, in order", () =>
    neverReading(5000, 60_000, 2500), 90_000)

  it("50,000 Echo asks of 4 KB: the same", () => neverReading(50_000, 4096, 2500), 90_000)
})
