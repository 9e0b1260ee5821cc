/**
 * SIGTERM under load: with 2000 calls in flight over several connections,
 * the server exits 0 within a few seconds, and every call either got its
 * answer or saw its connection close; what each connection received decodes
 * cleanly up to the close (no half-written box), with no answer twice.
 */
import { describe, expect, it } from "@effect/vitest"
import { ask, concat, rawClient, startServe } from "../support/hostile.js"

const CONNECTIONS = 4
const PER_CONNECTION = 500

describe("SIGTERM under load", () => {
  it(`${CONNECTIONS * PER_CONNECTION} calls in flight: exit 0 within a few seconds, nothing half-written, nothing twice`, async () => {
    const server = await startServe()
    const clients = await Promise.all(Array.from({ length: CONNECTIONS }, () => rawClient(server.port)))
    // Echo texts large enough that answers are still being written when the signal lands.
    const streams = clients.map((_, c) =>
      concat(Array.from({ length: PER_CONNECTION }, (_, i) => ask("Echo", `${c}.${i}`, { text: `${c}.${i}:${"z".repeat(2000)}` })))
    )
    await Promise.all(clients.map((c, i) => c.write(streams[i]!)))
    await Promise.all(clients.map((c) => c.until(() => c.boxes.length > 0, 10_000, "a first answer")))
    const t0 = performance.now()
    server.child.kill("SIGTERM")
    const answeredAtSignal = clients.reduce((n, c) => n + c.boxes.length, 0)
    const exit = await Promise.race([server.exited, new Promise<undefined>((r) => setTimeout(() => r(undefined), 5000))])
    expect(exit, "the server exited within 5 s of SIGTERM").toEqual({ code: 0, signal: null })
    expect(performance.now() - t0).toBeLessThan(5000)
    expect(answeredAtSignal, "the signal landed with calls in flight").toBeLessThan(CONNECTIONS * PER_CONNECTION)
    for (const [n, c] of clients.entries()) {
      await Promise.race([c.ended, new Promise((r) => setTimeout(r, 2000))])
      expect(c.isEnded(), `connection ${n} saw the close`).toBe(true)
      expect(c.decodeError(), `connection ${n}: the stream decodes cleanly`).toBeUndefined()
      expect(c.midBox(), `connection ${n}: no half-written box at the close`).toBe(false)
      const seen = new Set<string>()
      for (const box of c.boxes) {
        const id = box.getText("_answer")
        expect(id, "only answers").toBeDefined()
        expect(seen.has(id!), `answer ${id} only once`).toBe(false)
        seen.add(id!)
        expect(box.getText("text")).toBe(`${id}:${"z".repeat(2000)}`)
        expect(id!.startsWith(`${n}.`)).toBe(true)
      }
    }
  }, 30_000)
})
