/**
 * `effect-amp decode` (raw AMP bytes to JSON lines) and `effect-amp encode`
 * (the same JSON lines back to bytes): inverses of each other, in the shape
 * `BoxJson` describes.
 *
 * @since 0.1.0
 */
import * as fs from "node:fs"
import * as readline from "node:readline"
import type { Readable } from "node:stream"
import * as Args from "@effect/cli/Args"
import * as CliCommand from "@effect/cli/Command"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import { BoxDecoder, encodeBox } from "../BoxCodec.js"
import { fromJson, InputError, toJsonText } from "./BoxJson.js"
import { exitWith } from "./Exit.js"
import * as Json from "./Json.js"

const inputOf = (file: Option.Option<string>): Readable =>
  Option.isNone(file) || file.value === "-" ? process.stdin : fs.createReadStream(file.value)

const fileArg = Args.text({ name: "FILE" }).pipe(Args.optional, Args.withDescription("input; standard input when absent or -"))

/** The `decode` subcommand. */
export const decode = CliCommand.make("decode", { file: fileArg }, ({ file }) =>
  Effect.gen(function*() {
    const input = inputOf(file)
    const decoder = new BoxDecoder()
    const failure = yield* Effect.async<Error | undefined>((resume) => {
      const print = () => {
        for (let b = decoder.next(); b !== undefined; b = decoder.next()) process.stdout.write(`${toJsonText(b)}\n`)
      }
      input.on("data", (chunk: Buffer) => {
        try {
          decoder.push(chunk)
          print()
        } catch (e) {
          input.destroy()
          resume(Effect.succeed(e as Error))
        }
      })
      input.on("error", (e: Error) => resume(Effect.succeed(e)))
      input.on("end", () => {
        try {
          decoder.end()
          resume(Effect.succeed(undefined))
        } catch (e) {
          resume(Effect.succeed(e as Error))
        }
      })
    })
    if (failure !== undefined) return yield* exitWith(1, `effect-amp decode: ${failure.message}`)
  })).pipe(CliCommand.withDescription("Print every box of a raw AMP byte stream as one JSON object per line"))

/** The `encode` subcommand. */
export const encode = CliCommand.make("encode", { file: fileArg }, ({ file }) =>
  Effect.gen(function*() {
    const input = inputOf(file)
    const lines = readline.createInterface({ input, crlfDelay: Infinity })
    const failure = yield* Effect.async<Error | undefined>((resume) => {
      let n = 0
      lines.on("line", (line) => {
        n++
        if (line.trim() === "") return
        try {
          const where = `line ${n}`
          let json: Json.Json
          try {
            json = Json.parse(line)
          } catch (e) {
            throw new InputError({ where, detail: `not JSON: ${(e as Error).message}` })
          }
          // Each box is written as soon as its line is read, so a bad line leaves every earlier box on stdout.
          process.stdout.write(encodeBox(fromJson(json, where)))
        } catch (e) {
          // The failure first: closing fires "close", which would resume as a success.
          resume(Effect.succeed(e as Error))
          lines.close()
        }
      })
      lines.on("close", () => resume(Effect.succeed(undefined)))
      input.on("error", (e: Error) => resume(Effect.succeed(e)))
    })
    if (failure !== undefined) return yield* exitWith(1, `effect-amp encode: ${failure.message}`)
  })).pipe(
    CliCommand.withDescription("Write AMP bytes for JSON lines in the shape decode prints (decode, then encode, gives the same bytes)")
  )
