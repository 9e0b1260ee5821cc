/**
 * A user's module for `serve --module FILE` and `call --module FILE`.
 *
 * The module's shape (ESM; named exports, or the same names on a default export):
 *
 * ```ts
 * import { Argument, Command, Responders } from "effect-amp"
 * import * as Effect from "effect/Effect"
 *
 * export const Greet = Command.make("Greet", {
 *   arguments: { name: Argument.Unicode },
 *   response: { greeting: Argument.Unicode }
 * })
 *
 * // What `serve --module` answers (required for serve).
 * export const responders = [
 *   Responders.respond(Greet, ({ name }) => Effect.succeed({ greeting: `hello, ${name}` }))
 * ]
 *
 * // Optional: a Layer giving the services the responders need.
 * // export const layer = Layer.succeed(Database, ...)
 * ```
 *
 * Every exported `Command` (and every responder's command) is known to
 * `call --module`, which then checks the arguments before sending and prints
 * the answer with its types. The file is loaded with `import()`: `.js`/`.mjs`
 * under plain Node; a `.ts` file when the command runs under a TypeScript
 * loader (`node --import tsx …`).
 *
 * @since 0.1.0
 */
import * as path from "node:path"
import { pathToFileURL } from "node:url"
import * as Data from "effect/Data"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import type * as Command from "../Command.js"
import { describe } from "../internal/messages.js"

/** The module could not be loaded, or does not have the shape above. */
export class ModuleError extends Data.TaggedError("ModuleError")<{ readonly file: string; readonly detail: string }> {
  override get message(): string {
    return `--module ${this.file}: ${this.detail}`
  }
}

/** What a user module gives the command. */
export interface UserModule {
  readonly file: string
  /** Its responders; empty when it exports none. */
  readonly responders: ReadonlyArray<Command.Responder<any>>
  /** The services the responders need, or an empty layer. */
  readonly layer: Layer.Layer<any, any, never>
  /** Every command it exports or answers, by `_command` name. */
  readonly commands: ReadonlyMap<string, Command.Any>
}

const isCommand = (u: unknown): u is Command.Any =>
  typeof u === "object" && u !== null && (u as { _tag?: unknown })._tag === "Command" &&
  typeof (u as { name?: unknown }).name === "string" && typeof (u as { arguments?: unknown }).arguments === "object"

const isResponder = (u: unknown): u is Command.Responder<any> =>
  typeof u === "object" && u !== null && (u as { _tag?: unknown })._tag === "Responder" && isCommand((u as { command?: unknown }).command)

/** Loads and checks a user module; `call` needs only its commands (`responders` is then not checked). */
export const load = (file: string, purpose: "serve" | "call"): Effect.Effect<UserModule, ModuleError> =>
  Effect.gen(function*() {
    const fail = (detail: string) => Effect.fail(new ModuleError({ file, detail }))
    const url = pathToFileURL(path.resolve(file)).href
    const loaded = yield* Effect.tryPromise({
      try: () => import(url) as Promise<Record<string, unknown>>,
      catch: (e) => new ModuleError({ file, detail: `cannot load it: ${describe(e)}` })
    })
    const exports: Record<string, unknown> = typeof loaded.default === "object" && loaded.default !== null
      ? { ...loaded, ...(loaded.default as Record<string, unknown>) }
      : loaded
    const responders = purpose === "call" && !Array.isArray(exports.responders) ? [] : exports.responders ?? []
    if (!Array.isArray(responders)) return yield* fail("`responders` must be an array of Responders.respond(...)")
    const bad = responders.findIndex((r) => !isResponder(r))
    if (bad >= 0) return yield* fail(`responders[${bad}] is not a responder (make it with Responders.respond(Command, handler))`)
    const layer = exports.layer ?? Layer.empty
    if (!Layer.isLayer(layer)) return yield* fail("`layer`, when exported, must be a Layer")
    const commands = new Map<string, Command.Any>()
    for (const value of Object.values(exports)) if (isCommand(value)) commands.set(value.name, value)
    for (const r of responders as ReadonlyArray<Command.Responder<any>>) commands.set(r.command.name, r.command)
    return { file, responders, layer: layer as Layer.Layer<any, any, never>, commands }
  })
