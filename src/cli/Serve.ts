/**
 * `effect-amp serve`: the demo commands, or (`--module FILE`) the
 * responders a user's module exports (see `UserModule` for its shape), on
 * TCP or a UNIX socket, with StartTLS, `--verbose` box logs and a drain on
 * SIGINT/SIGTERM.
 *
 * @since 0.1.0
 */
import * as fs from "node:fs"
import * as CliCommand from "@effect/cli/Command"
import * as Options from "@effect/cli/Options"
import * as Console from "effect/Console"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Runtime from "effect/Runtime"
import type * as AmpBox from "../AmpBox.js"
import * as Responders from "../Responders.js"
import * as StartTls from "../StartTls.js"
import type { TlsOptions } from "../Transport.js"
import * as NodeAmp from "../node/NodeAmp.js"
import { toJsonText } from "./BoxJson.js"
import * as Demo from "./Demo.js"
import { CliExit, exitWith } from "./Exit.js"
import * as Log from "./Log.js"
import * as UserModule from "./UserModule.js"

const readFile = (path: string) => fs.readFileSync(path, "utf8")

/** The `serve` subcommand. */
export const command = CliCommand.make(
  "serve",
  {
    host: Options.text("host").pipe(Options.withDefault("127.0.0.1"), Options.withDescription("address to listen on")),
    port: Options.integer("port").pipe(Options.withDefault(7710), Options.withDescription("TCP port (0 picks a free one)")),
    unix: Options.text("unix").pipe(Options.optional, Options.withDescription("listen on this UNIX socket path instead of TCP")),
    module: Options.file("module").pipe(
      Options.optional,
      Options.withDescription("serve the `responders` this module exports (and its optional `layer`) instead of the demo")
    ),
    tlsCert: Options.file("tls-cert").pipe(Options.optional, Options.withDescription("certificate (PEM) StartTLS answers with")),
    tlsKey: Options.file("tls-key").pipe(Options.optional, Options.withDescription("private key (PEM) of --tls-cert")),
    tlsCa: Options.file("tls-ca").pipe(Options.optional, Options.withDescription("authorities (PEM) client certificates must verify against")),
    verbose: Options.boolean("verbose").pipe(Options.withDescription("log every box received, and every box sent once it is handed to the socket")),
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
    ),
    logFormat: Log.formatOption
  },
  (o) =>
    Effect.gen(function*() {
      if (Option.isSome(o.tlsCert) !== Option.isSome(o.tlsKey)) return yield* exitWith(2, "--tls-cert and --tls-key go together")
      const tls: TlsOptions | undefined = Option.isSome(o.tlsCert) && Option.isSome(o.tlsKey)
        ? {
          cert: readFile(o.tlsCert.value),
          key: readFile(o.tlsKey.value),
          ...(Option.isSome(o.tlsCa) ? { ca: readFile(o.tlsCa.value) } : {})
        }
        : undefined
      const user = Option.isSome(o.module) ? yield* UserModule.load(o.module.value, "serve") : undefined
      if (user !== undefined && user.responders.length === 0) {
        return yield* exitWith(2, `--module ${user.file}: it exports no \`responders\` to serve`)
      }
      const served = user?.responders ?? Demo.responders
      // A user module's responders need what its `layer` gives, which the type system cannot see from here.
      const responders = Responders.layer(...served, ...(tls ? [StartTls.respond(() => Effect.succeed(tls))] : [])).pipe(
        Layer.provide(user?.layer ?? Layer.empty)
      ) as Layer.Layer<Responders.Responders, unknown>
      // Box lines go through this fiber's runtime: the same logger and log level as every other line.
      const runFork = Runtime.runFork(yield* Effect.runtime<never>())
      const trace = o.verbose
        ? (direction: "received" | "sent", box: AmpBox.AmpBox) => void runFork(Effect.logInfo(`${direction} ${toJsonText(box)}`))
        : undefined
      const server = yield* NodeAmp.serve(
        Option.isSome(o.unix) ? { _tag: "unix", path: o.unix.value } : { _tag: "tcp", host: o.host, port: o.port },
        {
          protocol: {
            ...(trace ? { trace } : {}),
            ...(Option.isSome(o.partialBoxTimeout)
              ? { partialBoxTimeout: Duration.millis(Math.round(o.partialBoxTimeout.value * 1000)) }
              : {})
          },
          drainTimeoutMillis: Math.round(o.drainTimeout * 1000),
          ...(Option.isSome(o.maxConnections) ? { maxConnections: o.maxConnections.value } : {}),
          onConnection: (amp) =>
            Effect.gen(function*() {
              const peer = amp.info().peerAddress ?? amp.info().kind
              yield* Effect.logInfo(`connection from ${peer}`)
              const reason = yield* amp.ended
              yield* Effect.logInfo(`connection from ${peer} ended: ${reason.message}`)
            })
        }
      ).pipe(Effect.provide(responders))
      const what = user ? `${served.map((r) => r.command.name).join(", ")} from ${user.file}` : "the demo (Sum, Divide, Echo)"
      yield* Console.log(`listening on ${server.addressText}`)
      yield* Effect.logInfo(`serving ${what} on ${server.addressText}`)
      return yield* Effect.never
    }).pipe(
      Effect.scoped,
      Effect.catchAll((e) =>
        e instanceof CliExit
          ? Effect.fail(e)
          : exitWith(2, e instanceof Error ? e.message : `effect-amp serve: the module's layer failed: ${String(e)}`)
      ),
      Log.withFormat(o.logFormat)
    )
).pipe(CliCommand.withDescription("Serve the demo commands Sum, Divide and Echo (what `npm start` runs), or a module's responders"))
