/**
 * `effect-amp call`: one command from the arguments, or (`--stdin`) JSON
 * lines of commands pipelined on one connection, one answer line each, in
 * order.
 *
 * Arguments: `key=text` (UTF-8), `key:=JSON` (see `Values`: numbers,
 * booleans, lists for ListOf, lists of objects for AmpList,
 * `{"base64": …}` for bytes), `key@FILE` (the file's bytes).
 *
 * @since 0.1.0
 */
import * as fs from "node:fs"
import * as readline from "node:readline"
import * as Args from "@effect/cli/Args"
import * as CliCommand from "@effect/cli/Command"
import * as Options from "@effect/cli/Options"
import * as Console from "effect/Console"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as Stream from "effect/Stream"
import type { Amp, CallFailure } from "../Amp.js"
import * as AmpBox from "../AmpBox.js"
import type * as Command from "../Command.js"
import type { TlsOptions } from "../Transport.js"
import * as NodeAmp from "../node/NodeAmp.js"
import { quoteKey } from "../internal/messages.js"
import type { Address } from "../node/NodeConnect.js"
import { checkValue, InputError, keyFromText, toJsonText, utf8Strict } from "./BoxJson.js"
import { CliExit, exitWith } from "./Exit.js"
import * as Json from "./Json.js"
import * as Log from "./Log.js"
import * as Target from "./Target.js"
import { answerToJson, checkArguments } from "./Typed.js"
import * as UserModule from "./UserModule.js"
import { toBytes } from "./Values.js"

/** Commands `--stdin` keeps in flight at once on the connection. */
export const WINDOW = 1024

/** One command to send: its name and its fields (byte-string keys), in order. */
export interface Request {
  readonly command: string
  readonly fields: ReadonlyArray<readonly [string, Uint8Array]>
}

/** `key=text`, `key:=JSON` or `key@FILE` to a field. Throws {@link InputError}. */
export const parseField = (arg: string): readonly [string, Uint8Array] => {
  const where = `argument ${JSON.stringify(arg.length > 60 ? `${arg.slice(0, 60)}…` : arg)}`
  const eq = arg.indexOf("=")
  const at = arg.indexOf("@")
  if (at > 0 && (eq < 0 || at < eq)) {
    const file = arg.slice(at + 1)
    let bytes: Uint8Array
    try {
      bytes = new Uint8Array(fs.readFileSync(file))
    } catch (e) {
      throw new InputError({ where, detail: `cannot read ${file}: ${(e as Error).message}` })
    }
    return [keyFromText(arg.slice(0, at), where), checkValue(bytes, where)]
  }
  if (eq <= 0) throw new InputError({ where, detail: "expected key=text, key:=JSON or key@FILE" })
  if (arg[eq - 1] === ":" && eq > 1) {
    let json: Json.Json
    try {
      json = Json.parse(arg.slice(eq + 1))
    } catch (e) {
      throw new InputError({ where, detail: `after := comes JSON: ${(e as Error).message}` })
    }
    return [keyFromText(arg.slice(0, eq - 1), where), checkValue(toBytes(json, where), where)]
  }
  return [keyFromText(arg.slice(0, eq), where), checkValue(utf8Strict(arg.slice(eq + 1), where), where)]
}

/** One `--stdin` line: `{"_command": "Sum", "a": 13, ...}`, values as after `:=`. Throws {@link InputError}. */
export const parseLine = (line: string, where: string): Request => {
  let json: Json.Json
  try {
    json = Json.parse(line)
  } catch (e) {
    throw new InputError({ where, detail: `not JSON: ${(e as Error).message}` })
  }
  if (json._tag !== "object") throw new InputError({ where, detail: `a command is a JSON object with "_command", not ${Json.describe(json)}` })
  const name = json.members.find(([k]) => k === "_command")?.[1]
  if (name === undefined || name._tag !== "string") throw new InputError({ where, detail: 'a command needs "_command": "Name"' })
  const fields: Array<readonly [string, Uint8Array]> = []
  for (const [k, v] of json.members) {
    if (k === "_command") continue
    const at = `${where}, key ${quoteKey(k)}`
    if (k === "_ask") throw new InputError({ where: at, detail: "_ask is chosen by the connection" })
    fields.push([keyFromText(k, where), checkValue(toBytes(v, at), at)])
  }
  return { command: name.value, fields }
}

/** What one call came to. */
type Outcome =
  | { readonly ok: true; readonly answer: string }
  | { readonly ok: false; readonly code: string; readonly description: string; readonly connection: boolean }

const UNKNOWN_HINT =
  " (the server could not handle the call; a Twisted server answers UNKNOWN when an argument does not parse," +
  " a=x for an Integer say, and closes the connection: check the arguments, or pass --module to check them here)"

const failureOutcome = (e: CallFailure | InputError): Outcome => {
  switch (e._tag) {
    case "RemoteAmpError":
      return { ok: false, code: e.errorCode, description: e.description, connection: false }
    case "UnknownRemoteError":
      return { ok: false, code: "UNKNOWN", description: e.description + UNKNOWN_HINT, connection: false }
    case "UnhandledCommand":
      return { ok: false, code: "UNHANDLED", description: e.description, connection: false }
    case "InputError":
      return { ok: false, code: "BAD_INPUT", description: e.message, connection: false }
    default:
      return { ok: false, code: e._tag, description: e.message, connection: true }
  }
}

const outcomeJson = (o: Outcome): string =>
  o.ok ? `{"ok":true,"answer":${o.answer}}` : `{"ok":false,"error":${JSON.stringify({ code: o.code, description: o.description })}}`

/** Sends `request` and reads the answer (typed with the module's command, when it has one). */
const send = (amp: Amp, request: Request, commands: ReadonlyMap<string, Command.Any> | undefined, where: string, millis: number) =>
  Effect.suspend((): Effect.Effect<Outcome, CallFailure | InputError> => {
    const command = commands?.get(request.command)
    if (commands !== undefined) {
      if (command === undefined) {
        return Effect.fail(new InputError({ where, detail: `the module defines no command ${JSON.stringify(request.command)} (it defines ${[...commands.keys()].join(", ") || "none"})` }))
      }
      checkArguments(command, AmpBox.fromEntries([["_command", request.command], ...request.fields]), where)
    }
    const record: Record<string, Uint8Array> = {}
    for (const [k, v] of request.fields) record[k] = v
    return amp.callRemoteString(request.command, record, { timeout: millis }).pipe(
      Effect.map((answer): Outcome => ({ ok: true, answer: command ? answerToJson(command, answer) : toJsonText(answer, ["_answer"]) }))
    )
  }).pipe(
    Effect.catchAllDefect((d) => (d instanceof InputError ? Effect.fail(d) : Effect.die(d))),
    Effect.catchAll((e) => Effect.succeed(failureOutcome(e)))
  )

const readFile = (path: string) => fs.readFileSync(path, "utf8")

/** The `call` subcommand. */
export const command = CliCommand.make(
  "call",
  {
    target: Args.text({ name: "TARGET" }).pipe(Args.withDescription("tcp:HOST:PORT, unix:PATH, tls:HOST:PORT, or tcp:host=H:port=P")),
    command: Args.text({ name: "COMMAND" }).pipe(Args.optional, Args.withDescription("the command name, e.g. Sum (not with --stdin)")),
    fields: Args.text({ name: "key=value" }).pipe(
      Args.repeated,
      Args.withDescription("arguments: key=text, key:=JSON (42, true, [1,2], [{\"x\":1}], {\"base64\":\"…\"}), key@FILE (bytes)")
    ),
    ca: Options.file("ca").pipe(Options.optional, Options.withDescription("authorities (PEM) to verify the server with")),
    cert: Options.file("cert").pipe(Options.optional, Options.withDescription("client certificate (PEM)")),
    key: Options.file("key").pipe(Options.optional, Options.withDescription("private key (PEM) of --cert")),
    starttls: Options.boolean("starttls").pipe(Options.withDescription("upgrade to TLS with StartTLS before the call")),
    timeout: Options.float("timeout").pipe(Options.withDefault(10), Options.withDescription("seconds to wait for the connection and each answer")),
    json: Options.boolean("json").pipe(Options.withDescription('print {"ok":true,"answer":{…}} or {"ok":false,"error":{"code","description"}} on stdout')),
    stdin: Options.boolean("stdin").pipe(
      Options.withDescription('read JSON lines {"_command":"Sum","a":1,…} from stdin, pipeline them on one connection, print one --json line per command, in order')
    ),
    module: Options.file("module").pipe(
      Options.optional,
      Options.withDescription("a module exporting Commands: arguments are checked before sending and answers printed with their types")
    ),
    logFormat: Log.formatOption
  },
  (o) =>
    Effect.gen(function*() {
      const parsed = Target.parse(o.target)
      if (typeof parsed === "string") return yield* exitWith(2, parsed)
      if (o.stdin === Option.isSome(o.command)) {
        return yield* exitWith(2, o.stdin ? "with --stdin, commands come from stdin: give only TARGET" : "give a COMMAND, or --stdin")
      }
      if (o.stdin && o.fields.length > 0) return yield* exitWith(2, "with --stdin, arguments come from stdin")
      const commands = Option.isSome(o.module) ? (yield* UserModule.load(o.module.value, "call")).commands : undefined
      let single: Request | undefined
      if (Option.isSome(o.command)) {
        try {
          single = { command: o.command.value, fields: o.fields.map(parseField) }
        } catch (e) {
          if (e instanceof InputError) return yield* exitWith(2, `effect-amp call: ${e.message}`)
          throw e
        }
      }
      const tls: TlsOptions = {
        ...(Option.isSome(o.ca) ? { ca: readFile(o.ca.value) } : {}),
        ...(Option.isSome(o.cert) ? { cert: readFile(o.cert.value) } : {}),
        ...(Option.isSome(o.key) ? { key: readFile(o.key.value) } : {})
      }
      const address: Address = parsed._tag === "tls" ? { ...parsed, tls } : parsed
      const millis = Math.round(o.timeout * 1000)
      const amp = yield* NodeAmp.connect(address, { timeout: millis })
      if (o.starttls) yield* amp.startTls({ ...tls, timeout: millis })

      if (single !== undefined) {
        const outcome = yield* send(amp, single, commands, "", millis)
        if (o.json) yield* Console.log(outcomeJson(outcome))
        else if (outcome.ok) yield* Console.log(outcome.answer)
        if (outcome.ok) return
        // Input we refused to send, or a connection failure, is exit 2; an error answer is exit 1.
        const local = outcome.connection || outcome.code === "BAD_INPUT"
        return yield* exitWith(local ? 2 : 1, o.json ? "" : local ? `effect-amp call: ${outcome.description}` : `${outcome.code}: ${outcome.description}`)
      }

      // --stdin: every line's call is sent as soon as it is read (up to WINDOW in flight); answers print in input order.
      let failed = 0
      let lost = false
      let lineNo = 0
      const lines = readline.createInterface({ input: process.stdin, crlfDelay: Infinity })
      yield* Stream.fromAsyncIterable(lines, (e) => (e instanceof Error ? e : new Error(String(e)))).pipe(
        Stream.map((line) => ({ line, where: `line ${++lineNo}` })),
        Stream.filter(({ line }) => line.trim() !== ""),
        Stream.mapEffect(({ line, where }) =>
          Effect.suspend(() => {
            try {
              return send(amp, parseLine(line, where), commands, where, millis)
            } catch (e) {
              if (e instanceof InputError) return Effect.succeed(failureOutcome(e))
              throw e
            }
          }), { concurrency: WINDOW }),
        Stream.runForEach((outcome) =>
          Effect.sync(() => {
            if (!outcome.ok) failed++
            if (!outcome.ok && outcome.connection) lost = true
            process.stdout.write(`${outcomeJson(outcome)}\n`)
          })
        ),
        Effect.orDie
      )
      lines.close()
      if (lost) return yield* exitWith(2, "effect-amp call: the connection failed before every command was answered")
      if (failed > 0) return yield* exitWith(1, `effect-amp call: ${failed} of ${lineNo} lines failed`)
    }).pipe(
      Effect.scoped,
      Effect.catchAll((e): Effect.Effect<void, CliExit> => {
        if (e._tag === "CliExit") return Effect.fail(e)
        return exitWith(2, `effect-amp call: ${e.message}`)
      }),
      Log.withFormat(o.logFormat)
    )
).pipe(CliCommand.withDescription("Send a command (or JSON lines of them with --stdin) and print the answers as JSON"))
