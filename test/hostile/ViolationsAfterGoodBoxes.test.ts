/**
 * Close means flush: when the server ends a connection because of what
 * came after some good boxes (a protocol violation, an error that ends the
 * connection), every answer to those boxes reaches the peer first, as whole
 * boxes, and then the connection ends. Twisted's `loseConnection` does
 * exactly that; each case runs against Twisted's demo server too
 * (test/support/twisted_demo.py), which passes them all.
 */
import { describe, expect, it } from "@effect/vitest"
import { ask, concat, keyLength, rawClient, type ServerKind, startServe } from "../support/hostile.js"

const sums = (n: number) => Array.from({ length: n }, (_, i) => ask("Sum", String(i + 1), { a: String(i), b: "1000" }))

/** Writes `bytes` in one write; waits for the connection to end; returns the boxes received before it did. */
const sendAndWaitForClose = async (kind: ServerKind, bytes: Uint8Array) => {
  const server = await startServe([], kind)
  const c = await rawClient(server.port)
  await c.write(bytes)
  const ending = await Promise.race([c.ended, new Promise<undefined>((r) => setTimeout(() => r(undefined), 5000))])
  expect(c.decodeError(), "the stream received decodes cleanly").toBeUndefined()
  expect(c.midBox(), "no half-written box at the close").toBe(false)
  return { boxes: c.boxes, ending }
}

const expectSumAnswers = (boxes: ReadonlyArray<{ getText: (k: string) => string | undefined }>, n: number) => {
  const got = boxes.slice(0, n).map((b) => [b.getText("_answer"), b.getText("total")])
  expect(got).toEqual(Array.from({ length: n }, (_, i) => [String(i + 1), String(i + 1000)]))
}

describe.each<ServerKind>(["effect-amp", "twisted"])("%s: violations after good boxes", (kind) => {
  it("100 Sum asks then a key length of 256, in one write: all 100 answers, then the close", async () => {
    const { boxes, ending } = await sendAndWaitForClose(kind, concat([...sums(100), keyLength(256), new Uint8Array(8).fill(0x6b)]))
    expect(boxes.length, "answers before the close").toBe(100)
    expectSumAnswers(boxes, 100)
    expect(ending, "the server ends the connection").toBeDefined()
  })

  it("Divide overflowing a float after 20 Sums: 20 answers, UNKNOWN for the Divide, then the close", async () => {
    const divide = ask("Divide", "d1", { numerator: `1${"0".repeat(400)}`, denominator: "1" })
    const { boxes, ending } = await sendAndWaitForClose(kind, concat([...sums(20), divide]))
    expectSumAnswers(boxes, 20)
    expect(boxes.slice(20).map((b) => [b.getText("_error"), b.getText("_error_code")])).toEqual([["d1", "UNKNOWN"]])
    expect(ending, "the server ends the connection after UNKNOWN").toBeDefined()
  })

  it("Sum with a non-integer argument after 20 Sums: 20 answers, UNKNOWN, then the close", async () => {
    const bad = ask("Sum", "x1", { a: "twelve", b: "1" })
    const { boxes, ending } = await sendAndWaitForClose(kind, concat([...sums(20), bad]))
    expectSumAnswers(boxes, 20)
    expect(boxes.slice(20).map((b) => [b.getText("_error"), b.getText("_error_code")])).toEqual([["x1", "UNKNOWN"]])
    expect(ending, "the server ends the connection after UNKNOWN").toBeDefined()
  })
})

/** A whole TLS record holding an empty ClientHello: a TLS server refuses it with an alert and closes. */
const badClientHello = Uint8Array.of(0x16, 0x03, 0x01, 0x00, 0x04, 0x01, 0x00, 0x00, 0x00)

// No StartTLS responder: the server answers with its default one (a throwaway certificate),
// starts TLS, and refuses the bad ClientHello; the answers must come first. Not run against
// Twisted: it parses bytes that came in the same read as the request as boxes, and drops the
// connection at once with nothing sent (see the README, where we differ).
describe("effect-amp: StartTLS with no responder of its own, then a bad ClientHello", () => {
  it("the three Sum answers, the StartTLS answer, then the close", async () => {
    const server = await startServe([], "effect-amp")
    const c = await rawClient(server.port)
    await c.write(concat([...sums(3), ask("StartTLS", "s1", {}), badClientHello]))
    const ending = await Promise.race([c.ended, new Promise<undefined>((r) => setTimeout(() => r(undefined), 5000))])
    expectSumAnswers(c.boxes, 3)
    // What follows the answer is TLS (an alert), not boxes.
    expect(c.boxes.slice(3).map((b) => [b.getText("_answer"), b.getText("_error")])).toEqual([["s1", undefined]])
    expect(ending, "the server ends the connection").toBeDefined()
  })
})
