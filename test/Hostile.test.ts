/**
 * Hostile input: random and mutated byte streams thrown at a server. Nothing
 * may crash, hang or die: the connection either goes on or ends with a typed
 * cause, and a well-behaved client on another connection is unaffected.
 */
import { describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as FastCheck from "effect/FastCheck"
import * as AmpBox from "../src/AmpBox.js"
import * as BoxCodec from "../src/BoxCodec.js"
import * as Demo from "../src/cli/Demo.js"
import * as Responders from "../src/Responders.js"
import { ampPair } from "./support/ampPair.js"

const server = Responders.make(...Demo.responders)
const typedEnds = new Set(["ConnectionLost", "LengthLimitExceeded", "IncompleteBox", "BoxTooLarge", "NoEmptyBoxes", "MalformedAmpBox"])

/** Valid request boxes, some of them mutated byte by byte. */
const streamArb = FastCheck.tuple(
  FastCheck.array(
    FastCheck.record({
      command: FastCheck.constantFrom("Sum", "Divide", "Echo", "Nope", ""),
      a: FastCheck.oneof(FastCheck.bigInt().map(String), FastCheck.string()),
      b: FastCheck.oneof(FastCheck.bigInt().map(String), FastCheck.string()),
      ask: FastCheck.option(FastCheck.hexaString({ minLength: 1, maxLength: 4 }))
    }),
    { maxLength: 6 }
  ),
  FastCheck.array(FastCheck.tuple(FastCheck.nat(), FastCheck.integer({ min: 0, max: 255 })), { maxLength: 4 }),
  FastCheck.uint8Array({ maxLength: 64 })
)

describe("hostile byte streams", () => {
  it.scopedLive("never crash or hang a server; the end, if any, is typed; other connections carry on", () =>
    Effect.gen(function*() {
      const samples = FastCheck.sample(streamArb, { numRuns: 150, seed: 20261124 })
      const witness = yield* ampPair({ server })
      for (const [requests, mutations, tail] of samples) {
        const { server: s, clientEnd } = yield* ampPair({ server, pair: { chunking: { _tag: "Random", seed: requests.length + 1, maxSize: 7 } } })
        const bytes = new Uint8Array(BoxCodec.encodeBoxes(requests.map((r) =>
          AmpBox.fromEntries([
            ["_command", r.command],
            ["a", r.a],
            ["b", r.b],
            ...(r.ask === null ? [] : [["_ask", r.ask] as const])
          ].filter(([k, v]) => k !== "_command" || v !== "") as Array<readonly [string, string]>)
        )))
        for (const [at, byte] of mutations) if (bytes.length > 0) bytes[at % bytes.length] = byte
        yield* Effect.ignore(clientEnd.transport.write(bytes))
        yield* Effect.ignore(clientEnd.transport.write(tail))
        yield* clientEnd.control.close
        const ended = yield* s.ended.pipe(Effect.timeout("2 seconds"))
        expect(typedEnds.has(ended._tag)).toBe(true)
      }
      expect(yield* witness.client.callRemote(Demo.Sum, { a: 1n, b: 2n })).toEqual({ total: 3n })
    }), { timeout: 120_000 })
})
