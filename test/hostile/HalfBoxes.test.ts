/**
 * Half boxes held open: a peer that sends part of a box and then nothing
 * costs the server little and blocks nobody; with `--partial-box-timeout`,
 * the server closes such a connection once the timeout passes (and leaves
 * an idle connection between boxes alone).
 */
import { describe, expect, it } from "@effect/vitest"
import { ask, rawClient, sleep, startServe, sumOnce } from "../support/hostile.js"

/** The first half of a Sum ask: cut in the middle of a value. */
const halfBox = (id: number) => {
  const whole = ask("Sum", String(id), { a: "123456789", b: "987654321" })
  return whole.subarray(0, whole.length - 12)
}

describe("half boxes held open", () => {
  it("200 connections each holding half a box: other connections keep getting answers", async () => {
    const server = await startServe()
    const held = await Promise.all(Array.from({ length: 200 }, () => rawClient(server.port)))
    await Promise.all(held.map((c, i) => c.write(halfBox(i))))
    await sleep(200)
    for (let i = 0n; i < 20n; i++) expect(await sumOnce(server.port, i, 1n, 5000)).toBe(String(i + 1n))
    // Completing a held box is answered as if it had come in one piece.
    const c = held[7]!
    const whole = ask("Sum", "7", { a: "123456789", b: "987654321" })
    await c.write(whole.subarray(whole.length - 12))
    await c.until(() => c.boxes.length === 1, 5000, "the completed box's answer")
    expect(c.boxes[0]!.getText("total")).toBe("1111111110")
  })

  it("--partial-box-timeout 1: a connection holding half a box is closed within a few seconds; an idle one is not", async () => {
    const server = await startServe(["--partial-box-timeout", "1"])
    const half = await rawClient(server.port)
    const idle = await rawClient(server.port)
    await idle.write(ask("Sum", "1", { a: "1", b: "1" }))
    await idle.until(() => idle.boxes.length === 1, 5000, "the idle connection's answer")
    await half.write(halfBox(1))
    const ending = await Promise.race([half.ended, sleep(4000).then(() => undefined)])
    expect(ending, "the half-box connection was closed").toBeDefined()
    expect(ending!.at).toBeGreaterThan(900)
    expect(idle.isEnded(), "the idle connection (no partial box) stays open").toBe(false)
    // The reason is logged (typed: it says why), and the server still answers.
    await sleep(200)
    const log = [...server.lines, server.stderr()].join("\n")
    expect(log).toMatch(/partial|incomplete|timeout|timed out/i)
    expect(await sumOnce(server.port, 2n, 2n)).toBe("4")
  })
})
