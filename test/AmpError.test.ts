/**
 * One error model: every error effect-amp makes carries `AmpErrorTypeId`
 * (so `isAmpError` tells ours from a command's own classes and from
 * anything thrown), and code that throws its refusals turns only those into
 * typed failures: any other throw stays a defect, never a mistyped failure.
 */
import { describe, expect, it } from "@effect/vitest"
import * as Cause from "effect/Cause"
import * as Data from "effect/Data"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as AmpBox from "../src/AmpBox.js"
import * as AmpError from "../src/AmpError.js"
import * as BoxCodec from "../src/BoxCodec.js"
import { attempt } from "../src/internal/attempt.js"

class ZeroDivision extends Data.TaggedError("ZeroDivision")<{ readonly description: string }> {}

describe("AmpError", () => {
  it("every error class of the module is marked, and nothing else is", () => {
    const classes = Object.entries(AmpError).filter(([, v]) => typeof v === "function" && /^[A-Z]/.test(v.name))
    expect(classes.length).toBeGreaterThanOrEqual(30)
    for (const [name, cls] of classes) {
      const instance = new (cls as new(props: object) => unknown)({})
      expect(AmpError.isAmpError(instance), name).toBe(true)
    }
    expect(AmpError.isAmpError(new ZeroDivision({ description: "x" }))).toBe(false)
    expect(AmpError.isAmpError(new Error("x"))).toBe(false)
    expect(AmpError.isAmpError({ _tag: "ConnectionLost" })).toBe(false)
    expect(AmpError.isAmpError(undefined)).toBe(false)
  })

  it.effect("a refusal is a typed failure: a key over 255 bytes, bytes that are not a box", () =>
    Effect.gen(function*() {
      const encoded = yield* Effect.flip(BoxCodec.encode(AmpBox.make({ ["k".repeat(256)]: "v" })))
      expect(encoded._tag).toBe("TooLong")
      const decoded = yield* Effect.flip(BoxCodec.parseEffect(new Uint8Array([0, 1, 0x6b])))
      expect(AmpError.isAmpError(decoded)).toBe(true)
    }))

  it.effect("any other throw stays a defect, not a failure typed as one", () =>
    Effect.gen(function*() {
      const bug = new TypeError("a bug")
      const exit = yield* Effect.exit(attempt((): number => { throw bug }, AmpError.isEncodeError))
      expect(Exit.isFailure(exit) && Cause.isDie(exit.cause)).toBe(true)
      const refused = yield* Effect.exit(attempt((): number => {
        throw new AmpError.InvalidKey({ key: "", detail: "empty" } as never)
      }, AmpError.isEncodeError))
      expect(Exit.isFailure(refused) && Cause.isFailType(refused.cause) ? refused.cause.error._tag : "").toBe("InvalidKey")
    }))
})
