/**
 * Metrics of AMP connections, as Effect `Metric`s in the global metric
 * registry (read them with `Metric.value` or `Metric.snapshot`, or export
 * them with `@effect/opentelemetry`'s metrics layer).
 *
 * | metric | type | tags | unit |
 * |---|---|---|---|
 * | `amp_client_calls_total` | counter | `command`, `outcome` | calls |
 * | `amp_server_calls_total` | counter | `command`, `outcome` | calls |
 * | `amp_client_call_duration_seconds` | histogram | `command` | seconds |
 * | `amp_calls_in_flight` | gauge | `side` (`client`, `server`) | calls |
 * | `amp_connections_open` | gauge | | connections |
 * | `amp_bytes_received_total` | counter | | bytes |
 * | `amp_bytes_sent_total` | counter | | bytes |
 *
 * Tags come in the order of the table (`command` before `outcome`): a metric
 * key's tags are ordered, so read a counter with {@link clientCallsFor} /
 * {@link serverCallsFor}, or tag it in that order yourself.
 *
 * **Switching them on.** Off by default. {@link layer} (or
 * {@link withMetrics} around an effect) sets the {@link enabled} FiberRef;
 * `BinaryBoxProtocol.make` and `BoxDispatcher.make` read it once, when a
 * connection is made, so a connection keeps the setting it was made with.
 * Why a FiberRef and not an option: servers and clients are made deep inside
 * `NodeAmp.serve`/`connect` and the test kit, and one Layer at the top of an
 * application reaches all of them, as `Logger` and `Tracer` layers do. Why
 * read once: the hot paths (every call, every chunk read, every write) then
 * test one captured variable, and with metrics off that is all they do.
 *
 * **What they cost.** Off: nothing measurable (one test of a captured
 * `undefined` per call, read and write). On: the metrics are updated through
 * their registry hooks, without an Effect per update, and each command's
 * hooks are looked up once and cached; a call costs a closure, two clock
 * reads, a counter, a histogram and two gauge updates. Measured (shared
 * 2-core machine, interleaved rounds, medians): off, 1.00x the CPU per call
 * of the code without metrics; on, 3-9% more CPU per call and 0.92-0.97x the
 * calls/s on the pipelined and sequential benchmarks.
 *
 * Updates go straight to the hooks, so the fiber's metric labels
 * (`Effect.tagMetrics`) are not added to these metrics.
 *
 * @since 0.1.0
 */
import * as Cause from "effect/Cause"
import type * as Clock from "effect/Clock"
import * as Effect from "effect/Effect"
import type * as Exit from "effect/Exit"
import * as FiberRef from "effect/FiberRef"
import { globalValue } from "effect/GlobalValue"
import * as Layer from "effect/Layer"
import * as Metric from "effect/Metric"
import * as MetricBoundaries from "effect/MetricBoundaries"
import type * as MetricHook from "effect/MetricHook"
import * as MetricKey from "effect/MetricKey"
import type * as MetricKeyType from "effect/MetricKeyType"
import * as MetricLabel from "effect/MetricLabel"
import type * as MetricState from "effect/MetricState"
import {
  CallTimeout,
  RemoteAmpError,
  UNHANDLED_ERROR_CODE,
  UnhandledCommand,
  UNKNOWN_ERROR_CODE,
  UnknownRemoteError
} from "./AmpError.js"
import type * as Command from "./Command.js"

// --- the switch ------------------------------------------------------------------

/**
 * Whether connections made from now on record metrics. Default `false`.
 *
 * @since 0.1.0
 */
export const enabled: FiberRef.FiberRef<boolean> = globalValue(
  Symbol.for("effect-amp/AmpMetrics/enabled"),
  () => FiberRef.unsafeMake(false)
)

/**
 * Turns metrics on for every connection made where this layer is provided.
 *
 * @since 0.1.0
 */
export const layer: Layer.Layer<never> = Layer.locallyScoped(enabled, true)

/**
 * Runs `self` with metrics on for the connections it makes.
 *
 * @since 0.1.0
 */
export const withMetrics = <A, E, R>(self: Effect.Effect<A, E, R>): Effect.Effect<A, E, R> =>
  Effect.locally(self, enabled, true)

// --- the metrics -------------------------------------------------------------------

/**
 * What a call came to, the `outcome` tag:
 * - `ok`: answered;
 * - an error code the command declares in its `errors` (`ZERO_DIVISION`, say), or
 *   `UNKNOWN` or `UNHANDLED`, AMP's own (and `TLS_ERROR` for a second StartTLS);
 * - `error`: any other error code from the peer (client side only; not used as a tag
 *   value, so that a peer cannot make the set of tags grow);
 * - `timeout`: the call's timeout passed (client side);
 * - `connection_lost`: the connection ended or switched protocols before the answer,
 *   or had ended before the call (client side);
 * - `other`: the call failed here: arguments or an answer that do not fit the command,
 *   too many outstanding calls, a request AMP cannot carry (client side);
 * - `interrupted`: the responder was interrupted and nothing was sent (server side).
 *
 * @since 0.1.0
 */
export type Outcome = "ok" | "error" | "timeout" | "connection_lost" | "other" | "interrupted" | (string & {})

const counterKey = (name: string, description: string) => MetricKey.counter(name, { description })

const clientCallsKey = counterKey(
  "amp_client_calls_total",
  "AMP calls made by this process, by command and outcome"
)
const serverCallsKey = counterKey(
  "amp_server_calls_total",
  "AMP commands received by this process and answered (or failed), by command and outcome"
)
/** 100 µs to 10 s: an in-process call takes tens of microseconds, one over a WAN tens of milliseconds. */
const durationBoundaries = MetricBoundaries.fromIterable([
  0.0001,
  0.00025,
  0.0005,
  0.001,
  0.0025,
  0.005,
  0.01,
  0.025,
  0.05,
  0.1,
  0.25,
  0.5,
  1,
  2.5,
  5,
  10
])
const clientDurationKey = MetricKey.histogram(
  "amp_client_call_duration_seconds",
  durationBoundaries,
  "Time from an AMP call's request being sent to its outcome (a timed-out call: its timeout), by command"
)
const inFlightKey = MetricKey.gauge("amp_calls_in_flight", {
  description: "AMP calls waiting for an answer (side=client) and responders running in a fiber (side=server)"
})
const connectionsKey = MetricKey.gauge("amp_connections_open", { description: "AMP connections open" })
const bytesReceivedKey = counterKey("amp_bytes_received_total", "Bytes of AMP boxes read (under TLS: the plaintext)")
const bytesSentKey = counterKey("amp_bytes_sent_total", "Bytes of AMP boxes written (under TLS: the plaintext)")

/**
 * `amp_client_calls_total{command, outcome}` (counter, calls): calls made, each
 * counted once with its {@link Outcome}, including calls refused before sending (the
 * connection had ended: `connection_lost`). Commands that require no answer are not
 * counted here (they have no outcome to wait for), only by the server. A call its
 * caller interrupts is counted in no outcome if it had a timeout; without one, the
 * dispatcher does not watch for the interruption (that costs more than the call),
 * and the call is counted when its answer, or the connection's end, comes.
 *
 * @since 0.1.0
 */
export const clientCalls: Metric.Metric.Counter<number> = Metric.fromMetricKey(clientCallsKey)

/**
 * `amp_server_calls_total{command, outcome}` (counter, calls): commands received,
 * each counted once with its {@link Outcome} (`ok`, a declared code, `UNKNOWN`,
 * `UNHANDLED`, `interrupted`), including those that require no answer. A command
 * nobody handles is tagged `command="(unhandled)"`, so that a peer cannot make the
 * set of tags grow; a responder stopped by the connection's end has no outcome.
 *
 * @since 0.1.0
 */
export const serverCalls: Metric.Metric.Counter<number> = Metric.fromMetricKey(serverCallsKey)

/**
 * `amp_client_call_duration_seconds{command}` (histogram, seconds, 100 µs to 10 s):
 * from the request being handed to the connection to the call's outcome; a timed-out
 * call observes its timeout. Calls refused before sending are not observed.
 * Under `TestClock`, the test clock's time.
 *
 * @since 0.1.0
 */
export const clientCallDuration: Metric.Metric<
  MetricKeyType.MetricKeyType.Histogram,
  number,
  MetricState.MetricState.Histogram
> = Metric.fromMetricKey(clientDurationKey)

/**
 * `amp_calls_in_flight{side}` (gauge, calls): `side="client"`, our calls waiting for
 * an answer (the outstanding-call table: an interrupted call without a timeout stays
 * until its answer or a sweep forgets it); `side="server"`, responders running in a
 * fiber (a responder that answers at once, with `Effect.succeed`, never runs in one).
 *
 * @since 0.1.0
 */
export const callsInFlight: Metric.Metric.Gauge<number> = Metric.fromMetricKey(inFlightKey)

/**
 * `amp_connections_open` (gauge, connections): box protocols made and not yet ended,
 * over any transport.
 *
 * @since 0.1.0
 */
export const connectionsOpen: Metric.Metric.Gauge<number> = Metric.fromMetricKey(connectionsKey)

/**
 * `amp_bytes_received_total` (counter, bytes): bytes read by box protocols.
 *
 * @since 0.1.0
 */
export const bytesReceived: Metric.Metric.Counter<number> = Metric.fromMetricKey(bytesReceivedKey)

/**
 * `amp_bytes_sent_total` (counter, bytes): bytes handed to transports by box protocols.
 *
 * @since 0.1.0
 */
export const bytesSent: Metric.Metric.Counter<number> = Metric.fromMetricKey(bytesSentKey)

const commandOutcome = (command: string, outcome: string) => [
  MetricLabel.make("command", command),
  MetricLabel.make("outcome", outcome)
]

/**
 * `amp_client_calls_total` for one command and outcome.
 *
 * @since 0.1.0
 */
export const clientCallsFor = (command: string, outcome: Outcome): Metric.Metric.Counter<number> =>
  Metric.taggedWithLabels(clientCalls, commandOutcome(command, outcome))

/**
 * `amp_server_calls_total` for one command and outcome.
 *
 * @since 0.1.0
 */
export const serverCallsFor = (command: string, outcome: Outcome): Metric.Metric.Counter<number> =>
  Metric.taggedWithLabels(serverCalls, commandOutcome(command, outcome))

/**
 * `amp_client_call_duration_seconds` for one command.
 *
 * @since 0.1.0
 */
export const clientCallDurationFor = (command: string): typeof clientCallDuration =>
  Metric.tagged(clientCallDuration, "command", command)

/**
 * `amp_calls_in_flight` for one side.
 *
 * @since 0.1.0
 */
export const callsInFlightFor = (side: "client" | "server"): Metric.Metric.Gauge<number> =>
  Metric.tagged(callsInFlight, "side", side)

// --- recording (internal) -------------------------------------------------------------

type Hook = MetricHook.MetricHook<number, unknown>

const hook = (key: MetricKey.MetricKey<any>, labels: ReadonlyArray<MetricLabel.MetricLabel> = []): Hook =>
  Metric.globalMetricRegistry.get(
    labels.length === 0 ? key : MetricKey.taggedWithLabels(key, labels)
  ) as unknown as Hook

const connectionsHook = hook(connectionsKey)
const bytesReceivedHook = hook(bytesReceivedKey)
const bytesSentHook = hook(bytesSentKey)
const clientInFlight = hook(inFlightKey, [MetricLabel.make("side", "client")])
const serverInFlight = hook(inFlightKey, [MetricLabel.make("side", "server")])

/** One command's hooks on one side, made on its first use and kept. */
class CommandHooks {
  private readonly outcomes = new Map<string, Hook>()
  readonly ok: Hook
  readonly duration: Hook | undefined
  constructor(private readonly key: MetricKey.MetricKey<any>, readonly name: string, client: boolean) {
    this.ok = this.outcome("ok")
    this.duration = client ? hook(clientDurationKey, [MetricLabel.make("command", name)]) : undefined
  }
  outcome(outcome: string): Hook {
    let h = this.outcomes.get(outcome)
    if (h === undefined) {
      h = hook(this.key, commandOutcome(this.name, outcome))
      this.outcomes.set(outcome, h)
    }
    return h
  }
}

/** The hooks of every command seen on one side; the last one found is remembered (peers repeat commands). */
class CommandTable {
  private readonly byName = new Map<string, CommandHooks>()
  private last: CommandHooks | undefined
  constructor(private readonly key: MetricKey.MetricKey<any>, private readonly client: boolean) {}
  get(name: string): CommandHooks {
    const last = this.last
    if (last !== undefined && last.name === name) return last
    let h = this.byName.get(name)
    if (h === undefined) {
      h = new CommandHooks(this.key, name, this.client)
      this.byName.set(name, h)
    }
    return (this.last = h)
  }
}

const clientCommands = new CommandTable(clientCallsKey, true)
const serverCommands = new CommandTable(serverCallsKey, false)

/** The code a failure answers with, if the command declares its class. */
const declaredCode = (command: Command.Any | undefined, error: unknown): string | undefined => {
  if (command === undefined) return undefined
  for (const [code, { cls }] of command.wire.codes) if (error instanceof cls) return code
  return undefined
}

const endTags = new Set([
  "ConnectionLost",
  "ProtocolSwitched",
  "TlsError",
  "PeerVerifyError",
  "LengthLimitExceeded",
  "IncompleteBox",
  "BoxTooLarge",
  "NoEmptyBoxes",
  "PartialBoxTimeout"
])
const isEnd = (e: unknown): boolean =>
  typeof e === "object" && e !== null && endTags.has((e as { _tag?: unknown })._tag as string)

/** The outcome of a client call that failed with `error`; `ended`: the connection had ended by then. */
const clientOutcome = (command: Command.Any | undefined, error: unknown, ended: boolean): string => {
  if (ended || isEnd(error)) return "connection_lost"
  if (error instanceof UnknownRemoteError) return UNKNOWN_ERROR_CODE
  if (error instanceof UnhandledCommand) return UNHANDLED_ERROR_CODE
  if (error instanceof RemoteAmpError) return "error"
  if (error instanceof CallTimeout) return "timeout"
  return declaredCode(command, error) ?? "other"
}

const defaultClock = Effect.runSync(Effect.clock)

/** Milliseconds from `clock`: the high-resolution timer for the default clock, else the clock's own (a TestClock). */
const millisOf = (clock: Clock.Clock): () => number =>
  clock === defaultClock ? () => performance.now() : () => clock.unsafeCurrentTimeMillis()

/**
 * The client side of one dispatcher.
 *
 * @internal
 */
export class ClientRecorder {
  private readonly now: () => number
  constructor(clock: Clock.Clock, private readonly ended: () => boolean) {
    this.now = millisOf(clock)
  }

  /** `resume` that records the call's outcome and duration, for a call about to be sent. */
  track<A, E>(command: Command.Any | undefined, name: string, resume: (exit: Exit.Exit<A, E>) => void): (exit: Exit.Exit<A, E>) => void {
    const hooks = clientCommands.get(name)
    const start = this.now()
    return (exit) => {
      clientInFlight.modify(-1)
      hooks.duration!.update((this.now() - start) / 1000)
      if (exit._tag === "Success") hooks.ok.update(1)
      else {
        const failure = Cause.failureOption(exit.cause)
        hooks.outcome(failure._tag === "Some" ? clientOutcome(command, failure.value, this.ended()) : "other").update(1)
      }
      resume(exit)
    }
  }

  /** The call is now in the outstanding-call table. */
  sent(): void {
    clientInFlight.modify(1)
  }

  /** `n` calls left the table without an outcome (timed out, interrupted, swept). */
  forgot(n: number): void {
    if (n !== 0) clientInFlight.modify(-n)
  }

  /** A call failed before it was sent. */
  refused(command: Command.Any | undefined, name: string, error: unknown): void {
    clientCommands.get(name).outcome(clientOutcome(command, error, this.ended())).update(1)
  }

  /** A call's timeout passed. */
  timedOut(name: string, millis: number): void {
    const hooks = clientCommands.get(name)
    hooks.outcome("timeout").update(1)
    hooks.duration!.update(millis / 1000)
  }
}

/**
 * The server side of one dispatcher.
 *
 * @internal
 */
export class ServerRecorder {
  /** A command was answered (or, requiring no answer, succeeded). */
  ok(name: string): void {
    serverCommands.get(name).ok.update(1)
  }

  /** A command ended with `outcome` (a code, `interrupted`). */
  served(name: string, outcome: string): void {
    serverCommands.get(name).outcome(outcome).update(1)
  }

  /** A responder failed with `cause`: the outcome is the code it is answered with. */
  failed(command: Command.Any, cause: Cause.Cause<unknown>): void {
    if (Cause.isInterruptedOnly(cause)) return this.served(command.name, "interrupted")
    const failure = Cause.failureOption(cause)
    const code = failure._tag === "Some" ? declaredCode(command, failure.value) : undefined
    this.served(command.name, code ?? UNKNOWN_ERROR_CODE)
  }

  /** A command nobody handles (one tag for all of them: the name is the peer's to choose). */
  unhandled(): void {
    this.served("(unhandled)", UNHANDLED_ERROR_CODE)
  }

  /** `n` more (or fewer) responders running in fibers. */
  running(n: number): void {
    serverInFlight.modify(n)
  }
}

/**
 * The byte and connection counts of one box protocol.
 *
 * @internal
 */
export const connectionRecorder = {
  opened: (): void => connectionsHook.modify(1),
  closed: (): void => connectionsHook.modify(-1),
  received: (n: number): void => bytesReceivedHook.update(n),
  sent: (n: number): void => bytesSentHook.update(n)
}

/** @internal */
export type ConnectionRecorder = typeof connectionRecorder
