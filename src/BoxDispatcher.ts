/**
 * The request/response layer over a `BinaryBoxProtocol` (Twisted's
 * `BoxDispatcher`): `_ask` tags out, `_answer`/`_error` back to the caller
 * that waits for them, `_command` boxes to responders, error boxes for
 * failures, and the fan-out of the connection's end to every waiting call.
 *
 * Semantics follow Twisted, with these deliberate differences:
 * - an answer for a tag we issued and forgot (the call timed out or was
 *   interrupted) is dropped quietly; one for a tag never issued ends the
 *   connection, as Twisted's `KeyError` does;
 * - a StartTLS answered with an error releases the boxes held meanwhile
 *   (Twisted keeps them buffered forever);
 * - the reader pauses right after a StartTLS or switch request until its
 *   responder has answered, so bytes a hasty peer sends after the request
 *   (a TLS ClientHello in the same write) are never parsed as boxes.
 *
 * @since 0.1.0
 */
import * as Cause from "effect/Cause"
import type * as Clock from "effect/Clock"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Effectable from "effect/Effectable"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as FiberRef from "effect/FiberRef"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Scope from "effect/Scope"
import { type AmpBox, bytesToByteString, decodeUtf8Lenient, utf8, type ValueInput } from "./AmpBox.js"
import {
  BadLocalReturn,
  CallTimeout,
  type ConnectionEnded,
  ConnectionLost,
  type EncodeError,
  isEncodeError,
  MalformedAmpBox,
  NoEmptyBoxes,
  ProtocolSwitched,
  RemoteAmpError,
  TooManyOutstandingCalls,
  type TransportUnsupported,
  UNHANDLED_ERROR_CODE,
  UnhandledCommand,
  UNKNOWN_ERROR_CODE,
  UnknownRemoteError
} from "./AmpError.js"
import { Amp, type CallFailure, type CallOptions, type StartTlsError } from "./Amp.js"
import * as AmpMetrics from "./AmpMetrics.js"
import { BinaryBoxProtocol, type BoxReceiver } from "./BinaryBoxProtocol.js"
import { BoxBuilder } from "./BoxBuilder.js"
import { MAX_VALUE_LENGTH } from "./BoxCodec.js"
import * as Command from "./Command.js"
import * as ProtocolSwitch from "./ProtocolSwitch.js"
import { isAnswerThenClose, make as makeRegistry, type Registry, Responders } from "./Responders.js"
import * as StartTls from "./StartTls.js"
import { writeFields } from "./internal/fields.js"
import type { Answering, Asking } from "./internal/boundaryCommand.js"
import * as Descriptors from "./internal/descriptors.js"
import { quoteKey } from "./internal/messages.js"
import { OutstandingCalls, Pending } from "./internal/outstandingCalls.js"
import { Running, RunningResponders } from "./internal/runningResponders.js"
import { type Boundary, internalsOf, type ProtocolInternals } from "./internal/protocolInternals.js"
import * as ScopedFibers from "./internal/scopedFibers.js"
import type { RawConnection, TlsOptions, TlsSession } from "./Transport.js"

/** Options of {@link make}. */
export interface Options {
  /** Inbound commands running at once; further ones wait, and so does the socket. Default 256. */
  readonly maxConcurrentCommands?: number
  /** Our calls waiting for answers at once; more fail with `TooManyOutstandingCalls`. Default 65536. */
  readonly maxOutstandingCalls?: number
  /** Timeout for calls that do not set one. Default: none (as Twisted). */
  readonly defaultTimeout?: Duration.DurationInput
  /**
   * Run each call and each responder in a span named after the command.
   * Default: on when a tracer is installed (an OpenTelemetry layer, say), off
   * with Effect's built-in tracer, where spans would cost a third of the
   * throughput and reach no one.
   */
  readonly tracing?: boolean
  /**
   * Answer a peer's StartTLS that no responder of ours handles, as Twisted's
   * default responder does: TLS with a throwaway self-signed certificate
   * (encrypted, not authenticated; the peer sees CN `effect-amp`). Only on a
   * transport that can start TLS (a socket, not a pipe); elsewhere, or when
   * `false`, such a StartTLS is answered `UNHANDLED`. Default `true`.
   */
  readonly defaultStartTls?: boolean
}

type End = ConnectionEnded | ProtocolSwitched

/** Answer what no responder of ours handles: Twisted's default StartTLS responder, on a transport that can start TLS. */
const fallbackWithTls: Registry = makeRegistry(StartTls.defaultResponder)

/** Effect's default tracer: spans made with it are only seen by code that asks for the current span. */
const builtInTracer = Effect.runSync(Effect.tracer)

/** The counter value of the tag `bytes[start, end)` spelled as we spell tags (lowercase hex, no leading zero), or -1. */
const tagNumberAt = (bytes: Uint8Array, start: number, end: number): number => {
  const n = end - start
  if (n === 0 || n > 13 || bytes[start] === 0x30) return -1
  let v = 0
  for (let i = start; i < end; i++) {
    const c = bytes[i]!
    const d = c >= 0x30 && c <= 0x39 ? c - 0x30 : c >= 0x61 && c <= 0x66 ? c - 0x57 : -1
    if (d < 0) return -1
    v = v * 16 + d
  }
  return v
}

/** `bytes` cut to AMP's value limit, at a UTF-8 character boundary. */
const fitValue = (bytes: Uint8Array): Uint8Array => {
  if (bytes.length <= MAX_VALUE_LENGTH) return bytes
  let end = MAX_VALUE_LENGTH
  while (end > 0 && (bytes[end]! & 0xc0) === 0x80) end-- // bytes[end] continues a character: leave it out whole
  return bytes.subarray(0, end)
}

const describeFailure = (e: unknown): string => {
  if (typeof e === "object" && e !== null) {
    const d = (e as { description?: unknown }).description
    if (typeof d === "string") return d
    const m = (e as { message?: unknown }).message
    if (typeof m === "string" && m.length > 0) return m
    const t = (e as { _tag?: unknown })._tag
    if (typeof t === "string") return t
  }
  return String(e)
}

/**
 * Dispatches the boxes of `protocol`, answering with `responders`. Lives in
 * the current scope: closing it closes the connection and interrupts running
 * responders.
 *
 * @since 0.1.0
 */
export const make = (
  protocol: BinaryBoxProtocol,
  responders: Responders,
  options?: Options
): Effect.Effect<Amp, never, Scope.Scope> =>
  Effect.flatMap(build(protocol, responders, options), (d) => Effect.as(d.inner.receiveInFiber(d), d.amp))

/**
 * {@link make} for a caller with nothing else to do while the connection
 * lives (a server's connection handler): `receive` reads and dispatches the
 * boxes in the caller's fiber and returns once the connection has ended (or
 * switched), instead of a reader fiber of its own. Run it once, right away.
 *
 * @since 0.1.0
 */
export const makeReceiving = (
  protocol: BinaryBoxProtocol,
  responders: Responders,
  options?: Options
): Effect.Effect<{ readonly amp: Amp; readonly receive: Effect.Effect<void> }, never, Scope.Scope> =>
  Effect.map(build(protocol, responders, options), (d) => ({
    amp: d.amp,
    receive: d.inner.receiveHere(d)
  }))

/** The typed failure an error reply to a call of `name` stands for. */
const remoteError = (command: Command.Any | undefined, name: string, box: AmpBox): CallFailure => {
  const code = decodeUtf8Lenient(box.get("_error_code") ?? new Uint8Array(0))
  const description = decodeUtf8Lenient(box.get("_error_description") ?? new Uint8Array(0))
  const mapped = command?.wire.codes.get(code)
  if (mapped !== undefined) return new mapped.cls({ description }) as unknown as CallFailure
  if (code === UNHANDLED_ERROR_CODE) return new UnhandledCommand({ command: name, description })
  if (code === UNKNOWN_ERROR_CODE) return new UnknownRemoteError({ command: name, description })
  return new RemoteAmpError({ command: name, errorCode: code, description })
}

/** The failure of a call made once the connection has ended. */
const afterEnd = (end: End): ConnectionLost | ProtocolSwitched =>
  end._tag === "ProtocolSwitched"
    ? end
    : new ConnectionLost({ reason: "closed", detail: `the connection has ended (${end.message})`, cause: end })

const decodeArgs = (fds: Descriptors.DescriptorChannel | undefined, command: Command.Any, box: AmpBox): Record<string, unknown> | MalformedAmpBox => {
  try {
    return Descriptors.decoding(fds, () => Command.decodeArguments(command, box))
  } catch (e) {
    if (e instanceof MalformedAmpBox) return e
    throw e
  }
}

/** The responder's effect; one that throws instead of returning an Effect fails as a defect, like a Twisted responder that raises. */
const invoke = (responder: Command.Responder<Amp>, args: Record<string, unknown>): Effect.Effect<unknown, unknown, Amp> => {
  try {
    return responder.handle(args)
  } catch (e) {
    return Effect.die(e)
  }
}

/** Builds a call's request fields. */
const request = (command: Command.Any, args: unknown) => () => Command.requestFields(command, (args ?? {}) as Record<string, unknown>)

/** Where a connection is: dispatching, draining (no new command is dispatched), or ended or switched, and why. */
type Phase = "open" | "draining" | End

/** What a dispatcher is made with. */
interface Init {
  readonly protocol: BinaryBoxProtocol
  readonly responders: Responders
  readonly options: Options | undefined
  readonly fibers: ScopedFibers.ScopedFibers
  readonly tracing: boolean
  /** Set when metrics are on. */
  readonly clock: Clock.Clock | undefined
}

/**
 * One connection's dispatcher: its state in fields, its steps as methods on
 * the prototype, so that a connection costs its fields and no closures. It is
 * the protocol's {@link BoxReceiver} and StartTLS's and switches' {@link Asking}
 * itself (both call it as `kit.method(...)`); users get {@link amp}.
 */
class Dispatcher implements BoxReceiver, Asking {
  /** The connection as users see it. */
  readonly amp: Amp
  readonly protocol: BinaryBoxProtocol
  /** The protocol's machinery (sending without an Effect, the box boundary, descriptors). */
  readonly inner: ProtocolInternals
  private readonly responders: Responders
  private readonly fibers: ScopedFibers.ScopedFibers
  private readonly tracing: boolean
  private readonly fds: Descriptors.DescriptorChannel | undefined
  /** Answers what no responder of ours handles (StartTLS on a transport that can start TLS). */
  private readonly fallback: Registry | undefined
  private readonly maxConcurrent: number
  private readonly maxOutstanding: number
  private readonly defaultTimeout: Duration.DurationInput | undefined
  // With metrics off, the hot paths test `cm`/`sm` and do nothing more.
  private readonly cm: AmpMetrics.ClientRecorder | undefined
  readonly sm: AmpMetrics.ServerRecorder | undefined

  private phase: Phase = "open"
  /** Our calls waiting for answers; made at the first call. */
  private calls: OutstandingCalls | undefined = undefined
  /** Responders running in fibers; made at the first. */
  private running: RunningResponders | undefined = undefined
  /** The protocol a switch responder handed the connection to (`Amp.done` waits for it). */
  private switchedTo: Fiber.RuntimeFiber<void, never> | undefined = undefined
  /** The last responder found: a peer tends to send the same command over and over. */
  private lastResponder: Command.Responder<Amp> | undefined = undefined

  constructor(init: Init) {
    const { options, protocol } = init
    this.protocol = protocol
    this.inner = internalsOf(protocol)
    this.responders = init.responders
    this.fibers = init.fibers
    this.tracing = init.tracing
    this.fds = this.inner.descriptors
    this.fallback = options?.defaultStartTls !== false && this.inner.boundary.canStartTls ? fallbackWithTls : undefined
    this.maxConcurrent = options?.maxConcurrentCommands ?? 256
    this.maxOutstanding = options?.maxOutstandingCalls ?? 65536
    this.defaultTimeout = options?.defaultTimeout
    this.cm = init.clock === undefined ? undefined : new AmpMetrics.ClientRecorder(init.clock, () => this.phase !== "open" && this.phase !== "draining")
    this.sm = init.clock === undefined ? undefined : new AmpMetrics.ServerRecorder()
    // Last: forks are given `amp`, and nothing can fork before it exists.
    this.amp = new AmpService(this)
  }

  // --- ending ------------------------------------------------------------------------

  /** Why the connection ended or switched, once it has. */
  private get ended(): End | undefined {
    const phase = this.phase
    return phase === "open" || phase === "draining" ? undefined : phase
  }

  endWith(reason: ConnectionEnded): Effect.Effect<void> {
    return Effect.zipRight(Effect.logWarning(`AMP connection dropped: ${reason.message}`), this.protocol.closeWith(reason))
  }

  stopReceivingBoxes(reason: End): void {
    this.phase = reason
    this.calls?.failAll(reason)
  }

  /** `Amp.done`: the connection's end, then the protocol it was handed to, if any. */
  get done(): Effect.Effect<void> {
    return Effect.flatMap(this.protocol.ended, () => (this.switchedTo ? Fiber.join(this.switchedTo) : Effect.void))
  }

  /** Runs `effect` beside the connection, with the connection as `Amp`; interrupted when the scope closes. */
  runFork(effect: Effect.Effect<void, never, Amp>): Fiber.RuntimeFiber<void, never> {
    return this.fibers.run(Effect.provideService(effect, Amp, this.amp))
  }

  handedTo(fiber: Fiber.RuntimeFiber<void, never>): void {
    this.switchedTo = fiber
  }

  // --- boxes in ------------------------------------------------------------------------

  ampBoxReceived(box: AmpBox): void | Effect.Effect<void> {
    const answerTag = box.readValue("_answer", tagNumberAt)
    if (answerTag !== undefined) return this.replyReceived(answerTag, box, true)
    const errorTag = box.readValue("_error", tagNumberAt)
    if (errorTag !== undefined) return this.replyReceived(errorTag, box, false)
    const command = box.get("_command")
    if (command !== undefined) return this.commandReceived(command, box)
    return this.endWith(new NoEmptyBoxes({ keys: [...box.keys()] }))
  }

  private replyReceived(tag: number, box: AmpBox, ok: boolean): void | Effect.Effect<void> {
    const calls = this.calls
    const p = calls?.take(tag)
    if (p === undefined) {
      if (calls?.issued(tag)) return // a late answer to a call that gave up: dropped quietly
      const spelled = JSON.stringify(bytesToByteString(box.get(ok ? "_answer" : "_error")!))
      return this.endWith(
        new MalformedAmpBox({ command: "?", detail: `${ok ? "answer" : "error"} for tag ${spelled}, which was never asked` })
      )
    }
    if (p.atBoundary !== undefined) return atBoundary(p, p.atBoundary, box, ok)
    if (ok) p.answered(box)
    else p.resume(Exit.fail(remoteError(p.command, p.name, box)))
  }

  // --- replies out ---------------------------------------------------------------------

  /**
   * Sends a reply. A connection that has ended or switched is ignored, as Twisted's
   * `_safeEmit` does: the peer cannot hear us, and the end has been reported to
   * everyone waiting. A box AMP cannot carry is returned, for the caller to answer
   * otherwise; nothing was queued then.
   */
  emit(box: AmpBox): EncodeError | undefined {
    try {
      this.inner.unsafeSendBox(box)
    } catch (e) {
      if (isEncodeError(e)) return e
      if (e instanceof ConnectionLost || e instanceof ProtocolSwitched) return undefined
      throw e
    }
    return undefined
  }

  /** An error box. A description too long for AMP is cut to fit: the code is what the peer acts on. */
  sendError(ask: Uint8Array, code: string, description: string): void {
    const box = new BoxBuilder().set("_error", ask).set("_error_code", utf8(code))
      .set("_error_description", fitValue(utf8(description)))
      .build()
    const refused = this.emit(box)
    // Only the code can be at fault now (a command's own code over 65535 bytes): say so with UNKNOWN.
    if (refused !== undefined && code !== UNKNOWN_ERROR_CODE) {
      this.sendError(ask, UNKNOWN_ERROR_CODE, `error code ${quoteKey(code)} cannot be sent: ${refused.message}`)
    }
  }

  /** Answers a responder's failure: its code if mapped (closing after a fatal one), else UNKNOWN and close. */
  private answerFailure(command: Command.Any, ask: Uint8Array | undefined, cause: Cause.Cause<unknown>): Effect.Effect<void> {
    this.sm?.failed(command, cause)
    if (Cause.isInterruptedOnly(cause)) return Effect.void
    const failure = Cause.failureOption(cause)
    if (failure._tag === "Some") {
      for (const [code, { cls, fatal }] of command.wire.codes) {
        if (failure.value instanceof cls) {
          if (ask === undefined) return Effect.void
          this.sendError(ask, code, describeFailure(failure.value))
          return fatal ? this.protocol.close : Effect.void
        }
      }
    }
    return Effect.zipRight(
      Effect.logError(`AMP responder for ${command.name} failed; dropping the connection`, cause),
      Effect.suspend(() => {
        // Our own encoding failure is worth telling the caller about; anything else stays "Unknown Error", as Twisted says.
        const bad = failure._tag === "Some" && failure.value instanceof BadLocalReturn ? failure.value : undefined
        const missing = failure._tag === "Some" ? Descriptors.descriptorFailure(failure.value) : undefined
        if (ask !== undefined) this.sendError(ask, UNKNOWN_ERROR_CODE, bad?.message ?? missing ?? "Unknown Error")
        return this.protocol.close
      })
    )
  }

  /**
   * Sends the answer box; a response that cannot be encoded (a field the command
   * does not allow, or a value over AMP's limits) is returned instead, as `BadLocalReturn`.
   */
  private sendAnswer(command: Command.Any, ask: Uint8Array, result: unknown): BadLocalReturn | undefined {
    const thenClose = isAnswerThenClose(result)
    const response = thenClose ? result.response : result
    const out = new BoxBuilder()
    const bad = (detail: string) => new BadLocalReturn({ command: command.name, detail })
    try {
      Descriptors.encoding(this.fds, () => writeFields(command.wire.resp, command.wire.respFields, (response ?? {}) as Record<string, unknown>, out, bad))
    } catch (e) {
      if (e instanceof BadLocalReturn) return e
      throw e
    }
    out.set("_answer", ask)
    const refused = this.emit(out.build())
    if (refused !== undefined) return bad(refused.message)
    this.sm?.ok(command.name)
    // Twisted's QuitBox: the answer is queued, and a close writes what is queued first.
    if (thenClose) this.closeAfterAnswer()
    return undefined
  }

  private answer(command: Command.Any, ask: Uint8Array, response: unknown): Effect.Effect<void> {
    const bad = this.sendAnswer(command, ask, response)
    return bad === undefined ? Effect.void : this.answerFailure(command, ask, Cause.fail(bad))
  }

  /** A command that requires no answer succeeded. */
  private succeeded(command: Command.Any, result: unknown): void {
    this.sm?.ok(command.name)
    if (isAnswerThenClose(result)) this.closeAfterAnswer()
  }

  /**
   * Closes the connection after an `answerThenClose` (idempotent, as `protocol.close` is).
   * Forked, as it may be the reader's own turn; the close begins at once (the connection's
   * end is set before the reader takes the next box), so no later command is dispatched.
   */
  private closeAfterAnswer(): void {
    this.runFork(this.protocol.close)
  }

  // --- commands in ---------------------------------------------------------------------

  private commandReceived(nameBytes: Uint8Array, box: AmpBox): void | Effect.Effect<void> {
    if (this.phase === "draining") return Effect.never // the close ends the reader
    const ask = box.get("_ask")
    const responder = this.responderFor(nameBytes) ?? this.fallback?.get(bytesToByteString(nameBytes))
    if (responder === undefined) {
      const name = JSON.stringify(bytesToByteString(nameBytes))
      if (ask !== undefined) this.sendError(ask, UNHANDLED_ERROR_CODE, `Unhandled Command: ${name}`)
      this.sm?.unhandled()
      return
    }
    if (responder.atBoundary !== undefined) return this.answerAtBoundary(responder, box, ask)
    const running = this.running
    if (running === undefined || running.hasRoom) return this.startHandler(responder, box, ask)
    // Backpressure: the reader (and so the socket) waits for a free slot.
    return Effect.zipRight(running.slotFree, Effect.sync(() => this.startHandler(responder, box, ask)))
  }

  private responderFor(nameBytes: Uint8Array): Command.Responder<Amp> | undefined {
    const last = this.lastResponder
    if (last !== undefined) {
      const lastName = last.command.wire.nameBytes
      const n = nameBytes.length
      if (n === lastName.length) {
        let i = 0
        while (i < n && nameBytes[i] === lastName[i]) i++
        if (i === n) return last
      }
    }
    const responder = this.responders.get(bytesToByteString(nameBytes))
    if (responder !== undefined) this.lastResponder = responder
    return responder
  }

  /** Runs a command's responder. */
  private startHandler(responder: Command.Responder<Amp>, box: AmpBox, ask: Uint8Array | undefined): void {
    const command = responder.command
    // Fast path: a responder that answered with a plain value (`Effect.succeed(...)` is an Exit)
    // is answered right here, in the reader's turn, without a fiber. Spans and failures take the full path.
    if (!this.tracing) {
      const args = decodeArgs(this.fds, command, box)
      if (!(args instanceof MalformedAmpBox)) {
        const result = invoke(responder, args)
        if (Exit.isExit(result) && Exit.isSuccess(result)) return this.answerNow(command, ask, result.value)
        return this.fork(command, ask, (self) => this.settle(command, ask, result, self))
      }
    }
    this.fork(command, ask, (self) => this.handle(responder, box, ask, self))
  }

  /** Answers a responder's plain value in the reader's turn. */
  private answerNow(command: Command.Any, ask: Uint8Array | undefined, value: unknown): void {
    if (ask === undefined) return this.succeeded(command, value)
    const bad = this.sendAnswer(command, ask, value)
    if (bad !== undefined) this.runFork(this.answerFailure(command, ask, Cause.fail(bad)))
  }

  private handle(responder: Command.Responder<Amp>, box: AmpBox, ask: Uint8Array | undefined, self: Running): Effect.Effect<void, never, Amp> {
    const command = responder.command
    const args = decodeArgs(this.fds, command, box)
    // A request that does not fit the command is the responder failing in an unmapped way (Twisted: UNKNOWN).
    if (args instanceof MalformedAmpBox) return this.answerFailure(command, ask, Cause.fail(args))
    return this.traced(command.name, "server", Effect.suspend(() => this.settle(command, ask, invoke(responder, args), self)))
  }

  /** Runs a responder's effect and answers with its outcome, unless a drain answered for it already. */
  private settle(command: Command.Any, ask: Uint8Array | undefined, result: Effect.Effect<unknown, unknown, Amp>, self: Running) {
    return Effect.matchCauseEffect(result, {
      onFailure: (cause) => (self.abandoned ? Effect.void : this.answerFailure(command, ask, cause)),
      onSuccess: (response) =>
        self.abandoned ? Effect.void : ask === undefined ? Effect.sync(() => this.succeeded(command, response)) : this.answer(command, ask, response)
    })
  }

  /** Forks `effect` (the responder and its answer) as a running command. */
  private fork(command: Command.Any, ask: Uint8Array | undefined, effect: (self: Running) => Effect.Effect<void, never, Amp>): void {
    const running = (this.running ??= new RunningResponders(this.maxConcurrent))
    const self = new Running(command, ask)
    const id = running.add(self)
    this.sm?.running(1)
    self.fiber = this.runFork(Effect.ensuring(effect(self), Effect.sync(() => this.finished(running, id))))
  }

  private finished(running: RunningResponders, id: number): void {
    this.sm?.running(-1)
    running.finished(id)
  }

  private traced<A, E, R>(name: string, kind: "client" | "server", effect: Effect.Effect<A, E, R>): Effect.Effect<A, E, R> {
    return this.tracing ? Effect.withSpan(effect, `AMP ${name}`, { kind, attributes: { "rpc.system": "amp", "rpc.method": name } }) : effect
  }

  /**
   * A command that changes the connection (StartTLS, a switch): its responder runs in the
   * reader, which waits at the boundary, and the command's own code answers and acts.
   */
  private answerAtBoundary(responder: Command.Responder<Amp>, box: AmpBox, ask: Uint8Array | undefined): Effect.Effect<void> {
    const command = responder.command
    const args = decodeArgs(this.fds, command, box)
    if (args instanceof MalformedAmpBox) return this.answerFailure(command, ask, Cause.fail(args))
    return Effect.flatMap(Effect.exit(Effect.provideService(invoke(responder, args), Amp, this.amp)), (result) =>
      Exit.isFailure(result)
        ? this.answerFailure(command, ask, result.cause)
        : responder.atBoundary!(result.value, new AnswerKit(this, command, ask)))
  }

  /**
   * Stops dispatching commands, lets running responders finish for `timeout`, answers those
   * still running with UNKNOWN (and interrupts them), then closes: queued boxes go out first.
   */
  drain(timeout: Duration.DurationInput): Effect.Effect<void> {
    return Effect.suspend(() => {
      if (this.phase === "open") this.phase = "draining"
      const running = this.running
      if (running === undefined) return this.protocol.close
      // Interruptible, so that the deadline holds when drain runs in a finalizer.
      const finish = Effect.suspend(() => this.giveUp(running, Duration.toMillis(timeout)))
      return running.size === 0 ? finish : Effect.zipRight(Effect.timeoutOption(Effect.interruptible(running.idle), timeout), finish)
    })
  }

  /** Answers the responders still running at a drain's deadline for them, then closes and interrupts them. */
  private giveUp(running: RunningResponders, millis: number): Effect.Effect<void> {
    const late: Array<Fiber.RuntimeFiber<void, never>> = []
    for (const r of running.all()) {
      r.abandoned = true
      this.sm?.served(r.command.name, r.ask !== undefined ? UNKNOWN_ERROR_CODE : "interrupted")
      if (r.fiber !== undefined) late.push(r.fiber)
      if (r.ask !== undefined) this.sendError(r.ask, UNKNOWN_ERROR_CODE, `the server shut down before answering (drain deadline of ${millis} ms)`)
    }
    return Effect.zipRight(this.protocol.close, Fiber.interruptAll(late))
  }

  // --- calls out -----------------------------------------------------------------------

  /** Fails a call that was never sent. */
  private refuse(command: Command.Any | undefined, name: string, resume: (e: Effect.Effect<never, CallFailure>) => void, e: CallFailure): void {
    this.cm?.refused(command, name, e)
    resume(Effect.fail(e))
  }

  private timedOut(name: string, millis: number): CallTimeout {
    this.cm?.timedOut(name, millis)
    return new CallTimeout({ command: name, millis })
  }

  /**
   * Sends the fields `build` makes with a fresh `_ask` and waits for the reply. `atBoundary`
   * and `afterSend` serve StartTLS and switches.
   */
  private call<A = AmpBox, E = never>(
    command: Command.Any | undefined,
    name: string,
    /** Builds the request's fields; may throw `InvalidSignature` and the like. */
    build: () => BoxBuilder,
    timeout: Duration.DurationInput | undefined,
    /** Turns the answer into the result, on the reader's turn; may throw `MalformedAmpBox`. */
    decode?: (box: AmpBox) => A,
    afterSend?: () => void,
    atBoundary?: (resume: (exit: Exit.Exit<AmpBox, CallFailure | E>) => void) => Pending["atBoundary"]
  ): Effect.Effect<A, CallFailure | E> {
    const t = timeout ?? this.defaultTimeout
    // One Effect.async per call: the request is built, sent and correlated without further effects.
    const call = Effect.async<A, CallFailure | E>((resume) => {
      const ended = this.ended
      if (ended !== undefined) return this.refuse(command, name, resume, afterEnd(ended))
      const calls = (this.calls ??= new OutstandingCalls())
      const cm = this.cm
      if (!calls.hasRoom(this.maxOutstanding, cm)) {
        return this.refuse(command, name, resume, new TooManyOutstandingCalls({ limit: this.maxOutstanding }))
      }
      let fields: BoxBuilder
      try {
        fields = Descriptors.encoding(this.fds, build)
      } catch (e) {
        return this.refuse(command, name, resume, e as CallFailure)
      }
      const tag = calls.nextTag()
      // Tags are the call counter in lowercase hex, as Twisted writes them.
      fields.set("_ask", utf8(tag.toString(16)))
      // With a timeout, the call is forgotten precisely (a canceler); without, the sweep finds it.
      const fiber = t === undefined ? Option.getOrUndefined(Fiber.getCurrentFiber()) : undefined
      const p = new Pending<A, E>(command, name, cm === undefined ? resume : cm.track(command, name, resume), decode, fiber)
      if (atBoundary !== undefined) p.atBoundary = atBoundary((exit) => p.resume(exit))
      try {
        this.inner.unsafeSendBox(fields.build())
      } catch (e) {
        return this.refuse(command, name, resume, e as CallFailure)
      }
      calls.add(tag, p)
      cm?.sent()
      afterSend?.()
      if (t !== undefined) {
        return Effect.sync(() => {
          if (calls.take(tag) !== undefined) cm?.forgot(1)
        })
      }
    })
    const sent = this.inner.isBlocked() ? Effect.zipRight(this.protocol.writable, call) : call
    return t === undefined
      ? sent
      : Effect.timeoutFail(sent, { duration: t, onTimeout: () => this.timedOut(name, Duration.toMillis(t)) })
  }

  private fireAndForget(fields: BoxBuilder): Effect.Effect<void, CallFailure> {
    const ended = this.ended
    return ended !== undefined ? Effect.fail(afterEnd(ended)) : this.protocol.sendBox(fields.build())
  }

  callRemote<C extends Command.Any>(
    command: C,
    args: Command.Arguments<C>,
    options?: CallOptions
  ): Effect.Effect<Command.Response<C>, Command.Error<C> | CallFailure> {
    const call = command.requiresAnswer
      ? this.call(command, command.name, request(command, args), options?.timeout, (box) => Descriptors.decoding(this.fds, () => Command.decodeResponse(command, box)))
      : Effect.suspend(() => Effect.as(this.fireAndForget(Descriptors.encoding(this.fds, request(command, args))), {}))
    return this.traced(command.name, "client", call) as Effect.Effect<Command.Response<C>, Command.Error<C> | CallFailure>
  }

  callRemoteString(
    name: string,
    fields?: Readonly<Record<string, ValueInput>>,
    options?: CallOptions & { readonly requiresAnswer?: boolean }
  ): Effect.Effect<AmpBox, CallFailure> {
    return Effect.suspend(() => {
      const box = new BoxBuilder().set("_command", utf8(name))
      for (const k in fields) {
        const v = fields[k]!
        box.set(k, typeof v === "string" ? utf8(v) : v)
      }
      if (options?.requiresAnswer === false) return Effect.as(this.fireAndForget(box), new BoxBuilder().build())
      return this.call(undefined, name, () => box, options?.timeout)
    })
  }

  startTls(options?: TlsOptions & CallOptions): Effect.Effect<TlsSession, StartTlsError> {
    return this.traced("StartTLS", "client", StartTls.ask(this, options))
  }

  switchProtocol<C extends Command.Any>(
    command: C,
    args: Command.Arguments<C>,
    options?: CallOptions
  ): Effect.Effect<{ readonly response: Command.Response<C>; readonly connection: RawConnection }, Command.Error<C> | CallFailure | TransportUnsupported> {
    return this.traced(command.name, "client", ProtocolSwitch.ask(this, command, args, options))
  }

  // --- Asking: what StartTLS and switches need to ask (see internal/boundaryCommand) ----

  get boundary(): Boundary {
    return this.inner.boundary
  }

  ask<E = never>(
    command: Command.Any,
    build: () => BoxBuilder,
    timeout: Duration.DurationInput | undefined,
    afterSend: () => void,
    atBoundary: (resume: (exit: Exit.Exit<AmpBox, CallFailure | E>) => void) => Pending["atBoundary"]
  ): Effect.Effect<AmpBox, CallFailure | E> {
    return this.call<AmpBox, E>(command, command.name, build, timeout, undefined, afterSend, atBoundary)
  }

  remoteError(command: Command.Any, reply: AmpBox): CallFailure {
    return remoteError(command, command.name, reply)
  }
}

/** Runs a StartTLS's or switch's step at the box boundary; if it dies instead (a transport's bug), the caller still hears. */
const atBoundary = (
  p: Pending<unknown, unknown>,
  step: (box: AmpBox, ok: boolean) => Effect.Effect<void>,
  box: AmpBox,
  ok: boolean
): Effect.Effect<void> =>
  Effect.onExit(step(box, ok), (exit) =>
    Exit.isSuccess(exit) ? Effect.void : Effect.sync(() =>
      p.resume(Exit.fail(
        new ConnectionLost({ reason: "error", detail: `${p.name} failed at the box boundary: ${Cause.pretty(exit.cause)}`, cause: exit.cause })
      ))))

/** What a command that changes the connection may do from the reader, for `command` asked with `ask`. */
class AnswerKit implements Answering {
  constructor(private readonly d: Dispatcher, private readonly command: Command.Any, private readonly ask: Uint8Array | undefined) {}

  get boundary(): Boundary {
    return this.d.inner.boundary
  }

  get asked(): boolean {
    return this.ask !== undefined
  }

  answer(): void {
    if (this.ask !== undefined) this.d.emit(new BoxBuilder().set("_answer", this.ask).build())
    this.d.sm?.ok(this.command.name)
  }

  refuse(code: string, description: string): void {
    this.d.sm?.served(this.command.name, code)
    if (this.ask !== undefined) this.d.sendError(this.ask, code, description)
  }

  fail(reason: ConnectionEnded): Effect.Effect<void> {
    return this.d.endWith(reason)
  }

  fork(effect: Effect.Effect<void, never, Amp>): Fiber.RuntimeFiber<void, never> {
    return this.d.runFork(effect)
  }

  handedTo(fiber: Fiber.RuntimeFiber<void, never>): void {
    this.d.handedTo(fiber)
  }
}

/** `Amp.done`: an effect object with a field, rather than an effect chain built per connection. */
class Done extends Effectable.Class<void> {
  constructor(private readonly d: Dispatcher) {
    super()
  }

  commit(): Effect.Effect<void> {
    return this.d.done
  }
}

/**
 * The `Amp` service: its functions delegate to the dispatcher and need no
 * `this`, so that `const { callRemote } = yield* Amp` works.
 */
/**
 * The `Amp` service. Its functions are made at first read, each an arrow that
 * needs no `this`, so that `const { callRemote } = yield* Amp` works and an
 * idle connection holds none (measured: 470 bytes less per connection than an
 * object literal of arrows). They are getters on the prototype, so a spread
 * (`{ ...amp }`) copies only the effects and `protocol`.
 */
class AmpService implements Amp {
  readonly ended: Amp["ended"]
  readonly done: Amp["done"]
  readonly close: Amp["close"]
  readonly protocol: BinaryBoxProtocol
  private callRemoteFn: Amp["callRemote"] | undefined = undefined
  private callRemoteStringFn: Amp["callRemoteString"] | undefined = undefined
  private startTlsFn: Amp["startTls"] | undefined = undefined
  private switchProtocolFn: Amp["switchProtocol"] | undefined = undefined
  private infoFn: Amp["info"] | undefined = undefined
  private drainFn: Amp["drain"] | undefined = undefined

  constructor(private readonly d: Dispatcher) {
    this.ended = d.protocol.ended
    this.done = new Done(d)
    this.close = d.protocol.close
    this.protocol = d.protocol
  }

  get callRemote(): Amp["callRemote"] {
    return this.callRemoteFn ??= (command, args, options) => this.d.callRemote(command, args, options)
  }

  get callRemoteString(): Amp["callRemoteString"] {
    return this.callRemoteStringFn ??= (name, fields, options) => this.d.callRemoteString(name, fields, options)
  }

  get startTls(): Amp["startTls"] {
    return this.startTlsFn ??= (options) => this.d.startTls(options)
  }

  get switchProtocol(): Amp["switchProtocol"] {
    return this.switchProtocolFn ??= (command, args, options) => this.d.switchProtocol(command, args, options)
  }

  get info(): Amp["info"] {
    return this.infoFn ??= () => this.d.protocol.info()
  }

  get drain(): Amp["drain"] {
    return this.drainFn ??= (timeout) => this.d.drain(timeout)
  }
}

const build = (
  protocol: BinaryBoxProtocol,
  responders: Responders,
  options?: Options
): Effect.Effect<Dispatcher, never, Scope.Scope> =>
  Effect.gen(function*() {
    const tracing = options?.tracing ?? (yield* Effect.tracer) !== builtInTracer
    const clock = (yield* FiberRef.get(AmpMetrics.enabled)) ? yield* Effect.clock : undefined
    // Responders' fibers, interrupted when the scope closes.
    const fibers = yield* ScopedFibers.make
    return new Dispatcher({ protocol, responders, options, fibers, tracing, clock })
  })

/**
 * `Amp` over the `BinaryBoxProtocol` in context, answering with the
 * `Responders` in context.
 *
 * @since 0.1.0
 */
export const layer = (options?: Options): Layer.Layer<Amp, never, BinaryBoxProtocol | Responders> =>
  Layer.scoped(
    Amp,
    Effect.flatMap(Effect.all([BinaryBoxProtocol, Responders]), ([p, r]) => make(p, r, options))
  )

/** Re-exported for users of {@link Options}. */
export type { CallOptions, TlsOptions, ValueInput }
