/**
 * No silent drops: an answer that cannot be encoded (a value over AMP's
 * 65,535-byte limit) reaches the caller as an UNKNOWN error box, after the
 * answers to earlier asks, and the connection then ends, as Twisted ends a
 * connection after an unhandled error (its demo server passes this too,
 * with the description "Unknown Error"; ours must name the field and the limit).
 */
import { describe, expect, it } from "@effect/vitest"
import { ask, concat, rawClient, type ServerKind, startServe, sumOnce } from "../support/hostile.js"

// 65,535 nines plus one: a total of 65,536 digits, one byte over the value limit.
const hugeSum = ask("Sum", "big", { a: "9".repeat(65535), b: "1" })
const before = Array.from({ length: 5 }, (_, i) => ask("Sum", String(i + 1), { a: String(i), b: "1" }))

describe.each<ServerKind>(["effect-amp", "twisted"])("%s: an answer over the value limit", (kind) => {
  it("earlier answers, then UNKNOWN for it, then the connection ends; the server carries on", async () => {
    const server = await startServe([], kind)
    const c = await rawClient(server.port)
    await c.write(concat([...before, hugeSum]))
    const ending = await Promise.race([c.ended, new Promise<undefined>((r) => setTimeout(() => r(undefined), 5000))])
    expect(c.decodeError()).toBeUndefined()
    expect(c.boxes.slice(0, 5).map((b) => b.getText("total"))).toEqual(["1", "2", "3", "4", "5"])
    const err = c.boxes[5]
    expect(err?.getText("_error"), "an error box for the oversized answer").toBe("big")
    expect(err?.getText("_error_code")).toBe("UNKNOWN")
    expect(c.boxes.length).toBe(6)
    if (kind === "effect-amp") {
      const description = err?.getText("_error_description") ?? ""
      expect(description, "the description names the field").toMatch(/\btotal\b/)
      expect(description, "and the limit").toMatch(/65,?535/)
    }
    expect(ending, "the connection ends after the UNKNOWN box").toBeDefined()
    expect(await sumOnce(server.port, 2n, 3n)).toBe("5")
  })
})
