/**
 * The `effect-amp` command: `serve` (the demo server, what `npm start` runs),
 * `call` (one command, like curl for AMP) and `decode` (a raw AMP byte
 * stream as JSON lines).
 *
 * Exit codes: 0 success; 1 an error answer (`call`) or a bad stream
 * (`decode`); 2 a connection or usage failure.
 *
 * @since 0.1.0
 */
import * as fs from "node:fs"
import * as Args from "@effect/cli/Args"
import * as CliCommand from "@effect/cli/Command"
import * as Options from "@effect/cli/Options"
import * as NodeContext from "@effect/platform-node/NodeContext"
import * as NodeRuntime from "@effect/platform-node/NodeRuntime"
import * as Cause from "effect/Cause"
import * as Console from "effect/Console"
import * as Data from "effect/Data"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Option from "effect/Option"
import * as Runtime from "effect/Runtime"
import * as AmpBox from "../AmpBox.js"
import { BoxDecoder } from "../BoxCodec.js"
import * as Responders from "../Responders.js"
import * as StartTls from "../StartTls.js"
import type { TlsOptions } from "../Transport.js"
import * as NodeAmp from "../node/NodeAmp.js"
import type { Address } from "../node/NodeConnect.js"
import * as Stdio from "../node/Stdio.js"
import * as BoxJson from "./BoxJson.js"
import * as Demo from "./Demo.js"
import * as Target from "./Target.js"

/** Ends the program with an exit code, after its message has been printed. */
class Exit_ extends Data.TaggedError("CliExit")<{ readonly code: number }> {}
const exitWith = (code: number, message: string) => Effect.zipRight(Console.error(message), Effect.fail(new Exit_({ code })))

const readFile = (path: string) => fs.readFileSync(path, "utf8")

// ---------------------------------------------------------------------------
// serve
// ---------------------------------------------------------------------------

const serve = CliCommand.make(
  "serve",
  {
    host: Options.text("host").pipe(Options.withDefault("127.0.0.1"), Options.withDescription("address to listen on")),
    port: Options.integer("port").pipe(Options.withDefault(7710), Options.withDescription("TCP port (0 picks a free one)")),
    unix: Options.text("unix").pipe(Options.optional, Options.withDescription("listen on this UNIX socket path instead of TCP")),
    tlsCert: Options.file("tls-cert").pipe(Options.optional, Options.withDescription("certificate (PEM) StartTLS answers with")),
    tlsKey: Options.file("tls-key").pipe(Options.optional, Options.withDescription("private key (PEM) of --tls-cert")),
    tlsCa: Options.file("tls-ca").pipe(Options.optional, Options.withDescription("authorities (PEM) client certificates must verify against")),
    verbose: Options.boolean("verbose").pipe(Options.withDescription("log every box")),
    drainTimeout: Options.float("drain-timeout").pipe(
      Options.filterMap((s) => (s >= 0 && Number.isFinite(s) ? Option.some(s) : Option.none()), "--drain-timeout takes 0 or more seconds"),
      Options.withDefault(5),
      Options.withDescription("on SIGTERM/SIGINT, seconds running commands get to answer before they are cut off (answered UNKNOWN)")
    ),
    partialBoxTimeout: Options.float("partial-box-timeout").pipe(
      Options.filterMap((s) => (s > 0 ? Option.some(s) : Option.none()), "--partial-box-timeout takes more than 0 seconds"),
      Options.optional,
      Options.withDescription("close a connection that holds half a box this many seconds (default 60)")
    ),
    maxConnections: Options.integer("max-connections").pipe(
      Options.filterMap((n) => (n >= 1 ? Option.some(n) : Option.none()), "--max-connections takes 1 or more"),
      Options.optional,
      Options.withDescription("most connections at once; more are closed as they arrive, with a warning (default 10000, less if the open-file limit is lower)")
    )
  },
  ({ drainTimeout, host, maxConnections, partialBoxTimeout, port, tlsCa, tlsCert, tlsKey, unix, verbose }) =>
    Effect.gen(function*() {
      if (Option.isSome(tlsCert) !== Option.isSome(tlsKey)) return yield* exitWith(2, "--tls-cert and --tls-key go together")
      const tls: TlsOptions | undefined = Option.isSome(tlsCert) && Option.isSome(tlsKey)
        ? {
          cert: readFile(tlsCert.value),
          key: readFile(tlsKey.value),
          ...(Option.isSome(tlsCa) ? { ca: readFile(tlsCa.value) } : {})
        }
        : undefined
      const responders = Responders.layer(
        ...Demo.responders,
        ...(tls ? [StartTls.respond(() => Effect.succeed(tls))] : [])
      )
      // Box lines go through this fiber's runtime: the same logger (on stderr) and log level as the rest.
      const runFork = Runtime.runFork(yield* Effect.runtime<never>())
      const trace = verbose
        ? (direction: "received" | "sent", box: AmpBox.AmpBox) =>
          runFork(Effect.logInfo(`${direction} ${JSON.stringify(BoxJson.toJson(box))}`))
        : undefined
      const server = yield* NodeAmp.serve(
        Option.isSome(unix) ? { _tag: "unix", path: unix.value } : { _tag: "tcp", host, port },
        {
          protocol: {
            ...(trace ? { trace: (d, b) => void trace(d, b) } : {}),
            ...(Option.isSome(partialBoxTimeout)
              ? { partialBoxTimeout: Duration.millis(Math.round(partialBoxTimeout.value * 1000)) }
              : {})
          },
          drainTimeoutMillis: Math.round(drainTimeout * 1000),
          ...(Option.isSome(maxConnections) ? { maxConnections: maxConnections.value } : {}),
          onConnection: (amp) =>
            Effect.gen(function*() {
              const peer = amp.info().peerAddress ?? amp.info().kind
              yield* Effect.logInfo(`connection from ${peer}`)
              const reason = yield* amp.ended
              yield* Effect.logInfo(`connection from ${peer} ended: ${reason.message}`)
            })
        }
      ).pipe(Effect.provide(responders))
      yield* Console.log(`listening on ${server.addressText}`)
      return yield* Effect.never
    }).pipe(
      Effect.scoped,
      Effect.catchTag("ListenError", (e) => exitWith(2, e.message))
    )
).pipe(CliCommand.withDescription("Serve the demo commands Sum, Divide and Echo (what `npm start` runs)"))

// ---------------------------------------------------------------------------
// call
// ---------------------------------------------------------------------------

const call = CliCommand.make(
  "call",
  {
    target: Args.text({ name: "TARGET" }).pipe(Args.withDescription("tcp:HOST:PORT, unix:PATH, tls:HOST:PORT, or tcp:host=H:port=P")),
    command: Args.text({ name: "COMMAND" }).pipe(Args.withDescription("the command name, e.g. Sum")),
    fields: Args.text({ name: "key=value" }).pipe(Args.repeated, Args.withDescription("arguments, as strings")),
    ca: Options.file("ca").pipe(Options.optional, Options.withDescription("authorities (PEM) to verify the server with")),
    cert: Options.file("cert").pipe(Options.optional, Options.withDescription("client certificate (PEM)")),
    key: Options.file("key").pipe(Options.optional, Options.withDescription("private key (PEM) of --cert")),
    starttls: Options.boolean("starttls").pipe(Options.withDescription("upgrade to TLS with StartTLS before the call")),
    timeout: Options.float("timeout").pipe(Options.withDefault(10), Options.withDescription("seconds to wait for the connection and the answer"))
  },
  ({ ca, cert, command, fields, key, starttls, target, timeout }) =>
    Effect.gen(function*() {
      const parsed = Target.parse(target)
      if (typeof parsed === "string") return yield* exitWith(2, parsed)
      const record: Record<string, string> = {}
      for (const f of fields) {
        const eq = f.indexOf("=")
        if (eq <= 0) return yield* exitWith(2, `argument ${JSON.stringify(f)} is not key=value`)
        record[AmpBox.keyFromUtf8(f.slice(0, eq))] = f.slice(eq + 1)
      }
      const tls: TlsOptions = {
        ...(Option.isSome(ca) ? { ca: readFile(ca.value) } : {}),
        ...(Option.isSome(cert) ? { cert: readFile(cert.value) } : {}),
        ...(Option.isSome(key) ? { key: readFile(key.value) } : {})
      }
      const address: Address = parsed._tag === "tls" ? { ...parsed, tls } : parsed
      const millis = Math.round(timeout * 1000)
      const amp = yield* NodeAmp.connect(address, { timeout: millis })
      if (starttls) yield* amp.startTls({ ...tls, timeout: millis })
      const answer = yield* amp.callRemoteString(command, record, { timeout: millis })
      yield* Console.log(JSON.stringify(BoxJson.toJson(answer, ["_answer"])))
    }).pipe(
      Effect.scoped,
          Effect.catchAll((e): Effect.Effect<void, Exit_> => {
        switch (e._tag) {
          case "CliExit":
            return Effect.fail(e)
          case "RemoteAmpError":
            return exitWith(1, `${e.errorCode}: ${e.description}`)
          case "UnknownRemoteError":
            return exitWith(1, `UNKNOWN: ${e.description}`)
          case "UnhandledCommand":
            return exitWith(1, `UNHANDLED: ${e.description}`)
          default:
            return exitWith(2, `effect-amp call: ${e.message}`)
        }
      })
    )
).pipe(CliCommand.withDescription("Send one command and print the answer box as JSON"))

// ---------------------------------------------------------------------------
// decode
// ---------------------------------------------------------------------------

const decode = CliCommand.make(
  "decode",
  {
    file: Args.text({ name: "FILE" }).pipe(Args.optional, Args.withDescription("raw AMP bytes; standard input when absent or -"))
  },
  ({ file }) =>
    Effect.gen(function*() {
      const input = Option.isNone(file) || file.value === "-" ? process.stdin : fs.createReadStream(file.value)
      const decoder = new BoxDecoder()
      const failure = yield* Effect.async<Error | undefined>((resume) => {
        const print = () => {
          for (let b = decoder.next(); b !== undefined; b = decoder.next()) process.stdout.write(`${JSON.stringify(BoxJson.toJson(b))}\n`)
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
    })
).pipe(CliCommand.withDescription("Print every box of a raw AMP byte stream as one JSON object per line"))

// ---------------------------------------------------------------------------

const root = CliCommand.make("effect-amp").pipe(
  CliCommand.withDescription("AMP (Twisted's Asynchronous Messaging Protocol) from the shell"),
  CliCommand.withSubcommands([serve, call, decode])
)

const cli = CliCommand.run(root, { name: "effect-amp", version: "0.1.0" })

// stdout is for what the command prints (answers, decoded boxes, the `listening on` line); logs go to stderr.
cli(process.argv).pipe(
  Effect.provide(Stdio.layerDefaultLoggerToStderr),
  Effect.provide(NodeContext.layer),
  NodeRuntime.runMain({
    disableErrorReporting: true,
    teardown: (exit, onExit) => {
      if (Exit.isSuccess(exit) || Cause.isInterruptedOnly(exit.cause)) return onExit(0)
      const failure = Cause.failureOption(exit.cause)
      if (Option.isSome(failure) && failure.value instanceof Exit_) return onExit(failure.value.code)
      // Validation errors were printed by @effect/cli; anything else is a bug worth showing.
      if (Option.isNone(failure)) console.error(Cause.pretty(exit.cause))
      onExit(2)
    }
  })
)
