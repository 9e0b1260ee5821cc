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
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Deferred from "effect/Deferred"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as FiberId from "effect/FiberId"
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
  UNHANDLED_ERROR_CODE,
  UnhandledCommand,
  UNKNOWN_ERROR_CODE,
  UnknownRemoteError
} from "./AmpError.js"
import { Amp, type CallFailure, type CallOptions } from "./Amp.js"
import * as AmpMetrics from "./AmpMetrics.js"
import { BinaryBoxProtocol, type BoxReceiver } from "./BinaryBoxProtocol.js"
import { BoxBuilder } from "./BoxBuilder.js"
import { MAX_VALUE_LENGTH } from "./BoxCodec.js"
import { CallTable } from "./CallTable.js"
import * as Command from "./Command.js"
import * as ProtocolSwitch from "./ProtocolSwitch.js"
import { isAnswerThenClose, make as makeRegistry, type Registry, Responders } from "./Responders.js"
import * as StartTls from "./StartTls.js"
import { writeFields } from "./internal/fields.js"
import type { Answering, Asking } from "./internal/boundaryCommand.js"
import * as Descriptors from "./internal/descriptors.js"
import { quoteKey } from "./internal/messages.js"
import { internalsOf } from "./internal/protocolInternals.js"
import * as ScopedFibers from "./internal/scopedFibers.js"
import type { TlsOptions } from "./Transport.js"

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

/** A call waiting for its answer. */
class Pending<A = AmpBox, E = never> {
  constructor(
    readonly command: Command.Any | undefined,
    readonly name: string,
    private readonly resumeCaller: (exit: Exit.Exit<A, CallFailure | E>) => void,
    /** Turns the answer into the result, on the reader's turn; may throw `MalformedAmpBox`. */
    private readonly decode: ((box: AmpBox) => A) | undefined,
    /** The fiber waiting, so that {@link sweep} can tell a call nobody waits for any more. */
    readonly fiber: Fiber.RuntimeFiber<unknown, unknown> | undefined
  ) {}

  /** For StartTLS and switches: runs in the reader, at the box boundary. */
  atBoundary: ((box: AmpBox, ok: boolean) => Effect.Effect<void>) | undefined = undefined

  /** Completes the caller. */
  resume(exit: Exit.Exit<AmpBox, CallFailure | E>): void {
    if (exit._tag === "Failure") this.resumeCaller(exit as Exit.Exit<never, CallFailure | E>)
    else this.answered(exit.value)
  }

  /** Completes the caller with the answer `box`, decoded. */
  answered(box: AmpBox): void {
    const decode = this.decode
    if (decode === undefined) return this.resumeCaller(Exit.succeed(box as A))
    let value: A
    try {
      value = decode(box)
    } catch (e) {
      return this.resumeCaller(Exit.fail(e as CallFailure))
    }
    this.resumeCaller(Exit.succeed(value))
  }
}

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

/** The smallest size of the outstanding-call map at which a sweep runs. */
const SWEEP_MIN = 1024

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
  Effect.flatMap(build(protocol, responders, options), ({ amp, receiver }) =>
    Effect.as(protocol.startReceivingBoxes(receiver), amp))

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
  Effect.map(build(protocol, responders, options), ({ amp, receiver }) => ({
    amp,
    receive: protocol.receiveBoxes !== undefined ? protocol.receiveBoxes(receiver) : Effect.zipRight(protocol.startReceivingBoxes(receiver), Effect.asVoid(amp.ended))
  }))

const build = (
  protocol: BinaryBoxProtocol,
  responders: Responders,
  options?: Options
): Effect.Effect<{ readonly amp: Amp; readonly receiver: BoxReceiver }, never, Scope.Scope> =>
  Effect.gen(function*() {
    const maxConcurrent = options?.maxConcurrentCommands ?? 256
    const fallback = options?.defaultStartTls !== false && internalsOf(protocol).boundary.canStartTls ? fallbackWithTls : undefined
    const fds = internalsOf(protocol).descriptors
    const maxOutstanding = options?.maxOutstandingCalls ?? 65536
    const defaultTimeout = options?.defaultTimeout
    const tracing = options?.tracing ?? (yield* Effect.tracer) !== builtInTracer
    // Read once: with metrics off, the hot paths test `cm`/`sm` and do nothing more.
    const metricsOn = yield* FiberRef.get(AmpMetrics.enabled)
    const cm = metricsOn ? new AmpMetrics.ClientRecorder(yield* Effect.clock, () => endReason !== undefined) : undefined
    const sm = metricsOn ? new AmpMetrics.ServerRecorder() : undefined
    // Responders' fibers, interrupted when the scope closes; each is given this connection as `Amp`
    // (`amp` is made below, before anything can be forked).
    const fibers = yield* ScopedFibers.make
    const runFork = (effect: Effect.Effect<void, never, Amp>): Fiber.RuntimeFiber<void, never> =>
      fibers.run(Effect.provideService(effect, Amp, amp))
    const switchedFiber: { fiber?: Fiber.RuntimeFiber<void> } = {}

    const pending = new CallTable<Pending<any>>()
    /** When `pending` reaches this size, {@link sweep} runs before the next call is added. */
    let sweepAt = SWEEP_MIN
    let counter = 0
    let endReason: End | undefined

    const afterEnd = (): ConnectionLost | ProtocolSwitched =>
      endReason?._tag === "ProtocolSwitched"
        ? endReason
        : new ConnectionLost({ reason: "closed", detail: `the connection has ended (${endReason?.message})`, cause: endReason })

    // --- ending ----------------------------------------------------------------
    const endWith = (reason: ConnectionEnded): Effect.Effect<void> =>
      Effect.zipRight(
        Effect.logWarning(`AMP connection dropped: ${reason.message}`),
        protocol.closeWith(reason)
      )

    const stopReceivingBoxes = (reason: End): void => {
      endReason = reason
      const all = pending.clear()
      for (const p of all) p.resume(Exit.fail(reason))
    }

    // --- errors from the peer ------------------------------------------------------
    const remoteError = (command: Command.Any | undefined, name: string, box: AmpBox): CallFailure => {
      const code = decodeUtf8Lenient(box.get("_error_code") ?? new Uint8Array(0))
      const description = decodeUtf8Lenient(box.get("_error_description") ?? new Uint8Array(0))
      const mapped = command?.wire.codes.get(code)
      if (mapped !== undefined) return new mapped.cls({ description }) as unknown as CallFailure
      if (code === UNHANDLED_ERROR_CODE) return new UnhandledCommand({ command: name, description })
      if (code === UNKNOWN_ERROR_CODE) return new UnknownRemoteError({ command: name, description })
      return new RemoteAmpError({ command: name, errorCode: code, description })
    }

    const replyReceived = (tag: number, box: AmpBox, ok: boolean): void | Effect.Effect<void> => {
      const p = pending.take(tag)
      if (p === undefined) {
        if (tag > 0 && tag <= counter) return // a late answer to a call that gave up: dropped quietly
        const spelled = JSON.stringify(bytesToByteString(box.get(ok ? "_answer" : "_error")!))
        return endWith(
          new MalformedAmpBox({ command: "?", detail: `${ok ? "answer" : "error"} for tag ${spelled}, which was never asked` })
        )
      }
      if (p.atBoundary !== undefined) {
        // The step has the caller to answer; if it dies instead (a transport's bug), the caller still hears.
        return Effect.onExit(p.atBoundary(box, ok), (exit) =>
          Exit.isSuccess(exit) ? Effect.void : Effect.sync(() =>
            p.resume(Exit.fail(
              new ConnectionLost({ reason: "error", detail: `${p.name} failed at the box boundary: ${Cause.pretty(exit.cause)}`, cause: exit.cause })
            ))))
      }
      if (ok) p.answered(box)
      else p.resume(Exit.fail(remoteError(p.command, p.name, box)))
    }

    /**
     * Forgets calls nobody waits for any more. A call without a timeout does
     * not register a canceler with its fiber (Effect's interruption hook
     * costs more than the rest of a call), so an interrupted call leaves its
     * entry behind. Every entry knows its fiber: an entry whose fiber has
     * finished, or whose fiber has since made a newer call (a fiber waits for
     * one call at a time), is stale. Run when the map doubles, the sweep costs
     * O(1) per call and keeps stale entries to at most half of the map.
     */
    const sweep = (): void => {
      const before = pending.size
      const newest = new Map<Fiber.RuntimeFiber<unknown, unknown>, number>()
      for (const [tag, p] of pending.entries()) {
        const fiber = p.fiber
        if (fiber === undefined) continue
        if (fiber.unsafePoll() !== null) {
          pending.take(tag)
          continue
        }
        // Tags grow with time and the map keeps insertion order: a later entry is a newer call.
        const older = newest.get(fiber)
        if (older !== undefined) pending.take(older)
        newest.set(fiber, tag)
      }
      sweepAt = Math.max(SWEEP_MIN, pending.size * 2)
      cm?.forgot(before - pending.size)
    }

    // --- sending replies -----------------------------------------------------------------
    /**
     * Sends a reply. A connection that has ended or switched is ignored, as Twisted's
     * `_safeEmit` does: the peer cannot hear us, and the end has been reported to
     * everyone waiting. A box AMP cannot carry is returned, for the caller to answer
     * otherwise; nothing was queued then.
     */
    const emit = (box: AmpBox): EncodeError | undefined => {
      try {
        internalsOf(protocol).unsafeSendBox(box)
      } catch (e) {
        if (isEncodeError(e)) return e
        if (e instanceof ConnectionLost || e instanceof ProtocolSwitched) return undefined
        throw e
      }
      return undefined
    }

    /** An error box. A description too long for AMP is cut to fit: the code is what the peer acts on. */
    const sendError = (ask: Uint8Array, code: string, description: string): void => {
      const box = new BoxBuilder().set("_error", ask).set("_error_code", utf8(code))
        .set("_error_description", fitValue(utf8(description)))
        .build()
      const refused = emit(box)
      // Only the code can be at fault now (a command's own code over 65535 bytes): say so with UNKNOWN.
      if (refused !== undefined && code !== UNKNOWN_ERROR_CODE) {
        sendError(ask, UNKNOWN_ERROR_CODE, `error code ${quoteKey(code)} cannot be sent: ${refused.message}`)
      }
    }

    /** Answers a responder's failure: its code if mapped (closing after a fatal one), else UNKNOWN and close. */
    const answerFailure = (
      command: Command.Any,
      ask: Uint8Array | undefined,
      cause: Cause.Cause<unknown>
    ): Effect.Effect<void> => {
      sm?.failed(command, cause)
      if (Cause.isInterruptedOnly(cause)) return Effect.void
      const failure = Cause.failureOption(cause)
      if (failure._tag === "Some") {
        for (const [code, { cls, fatal }] of command.wire.codes) {
          if (failure.value instanceof cls) {
            if (ask === undefined) return Effect.void
            sendError(ask, code, describeFailure(failure.value))
            return fatal ? protocol.close : Effect.void
          }
        }
      }
      return Effect.gen(function*() {
        yield* Effect.logError(`AMP responder for ${command.name} failed; dropping the connection`, cause)
        // Our own encoding failure is worth telling the caller about; anything else stays "Unknown Error", as Twisted says.
        const bad = failure._tag === "Some" && failure.value instanceof BadLocalReturn ? failure.value : undefined
        const missing = failure._tag === "Some" ? Descriptors.descriptorFailure(failure.value) : undefined
        if (ask !== undefined) sendError(ask, UNKNOWN_ERROR_CODE, bad?.message ?? missing ?? "Unknown Error")
        yield* protocol.close
      })
    }

    /**
     * Sends the answer box; a response that cannot be encoded (a field the command
     * does not allow, or a value over AMP's limits) is returned instead, as `BadLocalReturn`.
     */
    const sendAnswer = (command: Command.Any, ask: Uint8Array, result: unknown): BadLocalReturn | undefined => {
      const thenClose = isAnswerThenClose(result)
      const response = thenClose ? result.response : result
      const out = new BoxBuilder()
      const bad = (detail: string) => new BadLocalReturn({ command: command.name, detail })
      try {
        Descriptors.encoding(fds, () => writeFields(command.wire.resp, command.wire.respFields, (response ?? {}) as Record<string, unknown>, out, bad))
      } catch (e) {
        if (e instanceof BadLocalReturn) return e
        throw e
      }
      out.set("_answer", ask)
      const refused = emit(out.build())
      if (refused !== undefined) return bad(refused.message)
      sm?.ok(command.name)
      // Twisted's QuitBox: the answer is queued, and a close writes what is queued first.
      if (thenClose) closeAfterAnswer()
      return undefined
    }

    /** A command that requires no answer succeeded. */
    const succeeded = (command: Command.Any, result: unknown): void => {
      sm?.ok(command.name)
      if (isAnswerThenClose(result)) closeAfterAnswer()
    }

    /**
     * Closes the connection after an `answerThenClose` (idempotent, as `protocol.close` is).
     * Forked, as it may be the reader's own turn; the close begins at once (the connection's
     * end is set before the reader takes the next box), so no later command is dispatched.
     */
    const closeAfterAnswer = (): void => {
      runFork(protocol.close)
    }

    const answer = (command: Command.Any, ask: Uint8Array, response: unknown): Effect.Effect<void> => {
      const bad = sendAnswer(command, ask, response)
      return bad === undefined ? Effect.void : answerFailure(command, ask, Cause.fail(bad))
    }

    // --- inbound commands ---------------------------------------------------------------
    /** A responder running in a fiber, with the tag it must answer (none for `requiresAnswer: false`). */
    interface Running {
      readonly ask: Uint8Array | undefined
      readonly command: Command.Any
      /** Set when a drain gave up on it and answered for it: its own outcome is dropped. */
      abandoned: boolean
      fiber: Fiber.RuntimeFiber<void, never> | undefined
    }
    /**
     * Responders running in fibers, by a number of their own (a slot table: see CallTable).
     * Its size is what `maxConcurrentCommands` caps. A plain counter and wake-up list, not
     * Effect's Semaphore: taking a permit would cost an Effect step per box on the reader's
     * fast path, where most answers need no fiber at all.
     */
    const runningTable = new CallTable<Running>()
    let runningId = 0
    let slotWaiters: Array<() => void> = []
    const slotFree = Effect.async<void>((resume) => {
      if (runningTable.size < maxConcurrent) return resume(Effect.void)
      slotWaiters.push(() => resume(Effect.void))
    })
    /** Completes when no responder runs; made by `drain`. */
    let idle: Deferred.Deferred<void> | undefined
    /** Set by `drain`: no new command is dispatched (the reader holds at the next one, and so does the socket). */
    let draining: Deferred.Deferred<void> | undefined

    const finished = (id: number) =>
      Effect.sync(() => {
        runningTable.take(id)
        sm?.running(-1)
        if (slotWaiters.length > 0) {
          const ws = slotWaiters
          slotWaiters = []
          for (const w of ws) w()
        }
        if (runningTable.size === 0 && idle !== undefined) Deferred.unsafeDone(idle, Exit.void)
      })

    /** Forks `effect` (the responder and its answer) as a running command. */
    const fork = (command: Command.Any, ask: Uint8Array | undefined, effect: (self: Running) => Effect.Effect<void, never, Amp>): void => {
      const id = ++runningId
      const self: Running = { ask, command, abandoned: false, fiber: undefined }
      runningTable.set(id, self)
      sm?.running(1)
      self.fiber = runFork(Effect.ensuring(effect(self), finished(id)))
    }

    const decodeArgs = (command: Command.Any, box: AmpBox): Record<string, unknown> | MalformedAmpBox => {
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

    const traced = <A, E, R>(name: string, kind: "client" | "server", effect: Effect.Effect<A, E, R>) =>
      tracing ? Effect.withSpan(effect, `AMP ${name}`, { kind, attributes: { "rpc.system": "amp", "rpc.method": name } }) : effect

    /** Runs a responder's effect and answers with its outcome, unless a drain answered for it already. */
    const settle = (
      command: Command.Any,
      ask: Uint8Array | undefined,
      result: Effect.Effect<unknown, unknown, Amp>,
      self?: Running
    ) =>
      Effect.matchCauseEffect(result, {
        onFailure: (cause) => (self?.abandoned ? Effect.void : answerFailure(command, ask, cause)),
        onSuccess: (response) => (self?.abandoned ? Effect.void : ask === undefined ? Effect.sync(() => succeeded(command, response)) : answer(command, ask, response))
      })

    const handle = (responder: Command.Responder<Amp>, box: AmpBox, ask: Uint8Array | undefined, self: Running): Effect.Effect<void, never, Amp> => {
      const command = responder.command
      const args = decodeArgs(command, box)
      // A request that does not fit the command is the responder failing in an unmapped way (Twisted: UNKNOWN).
      if (args instanceof MalformedAmpBox) return answerFailure(command, ask, Cause.fail(args))
      return traced(command.name, "server", Effect.suspend(() => settle(command, ask, invoke(responder, args), self)))
    }

    /** Runs a command's responder. */
    const startHandler = (responder: Command.Responder<Amp>, box: AmpBox, ask: Uint8Array | undefined): void => {
      // Fast path: a responder that answered with a plain value (`Effect.succeed(...)` is an Exit)
      // is answered right here, in the reader's turn, without a fiber. Spans and failures take the full path.
      if (!tracing) {
        const args = decodeArgs(responder.command, box)
        if (!(args instanceof MalformedAmpBox)) {
          const result = invoke(responder, args)
          if (Exit.isExit(result) && Exit.isSuccess(result)) {
            if (ask === undefined) succeeded(responder.command, result.value)
            const bad = ask === undefined ? undefined : sendAnswer(responder.command, ask, result.value)
            if (bad !== undefined) runFork(answerFailure(responder.command, ask, Cause.fail(bad)))
            return
          }
          return fork(responder.command, ask, (self) => settle(responder.command, ask, result, self))
        }
      }
      fork(responder.command, ask, (self) => handle(responder, box, ask, self))
    }

    /**
     * Stops dispatching commands, lets running responders finish for `timeout`, answers those
     * still running with UNKNOWN (and interrupts them), then closes: queued boxes go out first.
     */
    const drain = (timeout: Duration.DurationInput): Effect.Effect<void> =>
      Effect.gen(function*() {
        draining ??= Deferred.unsafeMake(FiberId.none)
        if (runningTable.size > 0) {
          idle = Deferred.unsafeMake(FiberId.none)
          // Interruptible, so that the deadline holds when drain runs in a finalizer.
          yield* Effect.timeoutOption(Effect.interruptible(Deferred.await(idle)), timeout)
        }
        const millis = Duration.toMillis(timeout)
        const late: Array<Fiber.RuntimeFiber<void, never>> = []
        for (const [, r] of runningTable.entries()) {
          r.abandoned = true
          sm?.served(r.command.name, r.ask !== undefined ? UNKNOWN_ERROR_CODE : "interrupted")
          if (r.fiber !== undefined) late.push(r.fiber)
          if (r.ask !== undefined) sendError(r.ask, UNKNOWN_ERROR_CODE, `the server shut down before answering (drain deadline of ${millis} ms)`)
        }
        yield* protocol.close
        yield* Fiber.interruptAll(late)
      })

    /** What a command that changes the connection may do from the reader, for `command` asked with `ask`. */
    const answering = (command: Command.Any, ask: Uint8Array | undefined): Answering => ({
      boundary: internalsOf(protocol).boundary,
      asked: ask !== undefined,
      answer: () => {
        if (ask !== undefined) emit(new BoxBuilder().set("_answer", ask).build())
        sm?.ok(command.name)
      },
      refuse: (code, description) => {
        sm?.served(command.name, code)
        if (ask !== undefined) sendError(ask, code, description)
      },
      fail: endWith,
      fork: runFork,
      handedTo: (fiber) => {
        switchedFiber.fiber = fiber
      }
    })

    /**
     * A command that changes the connection (StartTLS, a switch): its responder runs in the
     * reader, which waits at the boundary, and the command's own code answers and acts.
     */
    const answerAtBoundary = (responder: Command.Responder<Amp>, box: AmpBox, ask: Uint8Array | undefined): Effect.Effect<void> => {
      const command = responder.command
      const args = decodeArgs(command, box)
      if (args instanceof MalformedAmpBox) return answerFailure(command, ask, Cause.fail(args))
      return Effect.flatMap(Effect.exit(Effect.provideService(invoke(responder, args), Amp, amp)), (result) =>
        Exit.isFailure(result)
          ? answerFailure(command, ask, result.cause)
          : responder.atBoundary!(result.value, answering(command, ask)))
    }

    // A peer tends to send the same command over and over: remember the last one found.
    let lastName: Uint8Array = new Uint8Array(0)
    let lastResponder: Command.Responder<Amp> | undefined
    const responderFor = (nameBytes: Uint8Array): Command.Responder<Amp> | undefined => {
      const n = nameBytes.length
      if (lastResponder !== undefined && n === lastName.length) {
        let i = 0
        while (i < n && nameBytes[i] === lastName[i]) i++
        if (i === n) return lastResponder
      }
      const responder = responders.get(bytesToByteString(nameBytes))
      if (responder !== undefined) {
        lastName = responder.command.wire.nameBytes
        lastResponder = responder
      }
      return responder
    }

    const commandReceived = (nameBytes: Uint8Array, box: AmpBox): void | Effect.Effect<void> => {
      if (draining !== undefined) return Deferred.await(draining) // never completes: the close ends the reader
      const ask = box.get("_ask")
      const responder = responderFor(nameBytes) ?? fallback?.get(bytesToByteString(nameBytes))
      if (responder === undefined) {
        const name = JSON.stringify(bytesToByteString(nameBytes))
        if (ask !== undefined) sendError(ask, UNHANDLED_ERROR_CODE, `Unhandled Command: ${name}`)
        sm?.unhandled()
        return
      }
      if (responder.atBoundary !== undefined) return answerAtBoundary(responder, box, ask)
      if (runningTable.size < maxConcurrent) return startHandler(responder, box, ask)
      // Backpressure: the reader (and so the socket) waits for a free slot.
      return Effect.zipRight(slotFree, Effect.sync(() => startHandler(responder, box, ask)))
    }

    const ampBoxReceived = (box: AmpBox): void | Effect.Effect<void> => {
      const answerTag = box.readValue("_answer", tagNumberAt)
      if (answerTag !== undefined) return replyReceived(answerTag, box, true)
      const errorTag = box.readValue("_error", tagNumberAt)
      if (errorTag !== undefined) return replyReceived(errorTag, box, false)
      const command = box.get("_command")
      if (command !== undefined) return commandReceived(command, box)
      return endWith(new NoEmptyBoxes({ keys: [...box.keys()] }))
    }

    // --- outbound calls -------------------------------------------------------------------
    /** Fails a call that was never sent. */
    const refuse = (command: Command.Any | undefined, name: string, resume: (e: Effect.Effect<never, CallFailure>) => void, e: CallFailure): void => {
      cm?.refused(command, name, e)
      resume(Effect.fail(e))
    }

    const timedOut = (name: string, millis: number): CallTimeout => {
      cm?.timedOut(name, millis)
      return new CallTimeout({ command: name, millis })
    }

    /**
     * Sends the fields `build` makes with a fresh `_ask` and waits for the reply. `atBoundary`
     * and `afterSend` serve StartTLS and switches.
     */
    const ask = <A = AmpBox, E = never>(
      command: Command.Any | undefined,
      name: string,
      /** Builds the request's fields; may throw `InvalidSignature` and the like. */
      build: () => BoxBuilder,
      timeout: Duration.DurationInput | undefined,
      /** Turns the answer into the result, on the reader's turn; may throw `MalformedAmpBox`. */
      decode?: (box: AmpBox) => A,
      afterSend?: () => void,
      atBoundary?: (resume: (exit: Exit.Exit<AmpBox, CallFailure | E>) => void) => Pending["atBoundary"]
    ): Effect.Effect<A, CallFailure | E> => {
      const t = timeout ?? defaultTimeout
      // One Effect.async per call: the request is built, sent and correlated without further effects.
      const call = Effect.async<A, CallFailure | E>((resume) => {
        if (endReason !== undefined) return refuse(command, name, resume, afterEnd())
        if (pending.size >= sweepAt || pending.size >= maxOutstanding) sweep()
        if (pending.size >= maxOutstanding) return refuse(command, name, resume, new TooManyOutstandingCalls({ limit: maxOutstanding }))
        let fields: BoxBuilder
        try {
          fields = Descriptors.encoding(fds, build)
        } catch (e) {
          return refuse(command, name, resume, e as CallFailure)
        }
        const tag = ++counter
        // Tags are the call counter in lowercase hex, as Twisted writes them.
        fields.set("_ask", utf8(tag.toString(16)))
        // With a timeout, the call is forgotten precisely (a canceler); without, the sweep finds it.
        const fiber = t === undefined ? Option.getOrUndefined(Fiber.getCurrentFiber()) : undefined
        const p = new Pending<A, E>(command, name, cm === undefined ? resume : cm.track(command, name, resume), decode, fiber)
        if (atBoundary !== undefined) p.atBoundary = atBoundary((exit) => p.resume(exit))
        try {
          internalsOf(protocol).unsafeSendBox(fields.build())
        } catch (e) {
          return refuse(command, name, resume, e as CallFailure)
        }
        pending.set(tag, p)
        cm?.sent()
        afterSend?.()
        if (t !== undefined) {
          return Effect.sync(() => {
            if (pending.take(tag) !== undefined) cm?.forgot(1)
          })
        }
      })
      const sent = internalsOf(protocol).isBlocked() ? Effect.zipRight(protocol.writable, call) : call
      return t === undefined
        ? sent
        : Effect.timeoutFail(sent, { duration: t, onTimeout: () => timedOut(name, Duration.toMillis(t)) })
    }

    const fireAndForget = (fields: BoxBuilder): Effect.Effect<void, CallFailure> =>
      Effect.suspend(() => {
        if (endReason !== undefined) return Effect.fail(afterEnd())
        return protocol.sendBox(fields.build())
      })

    const request = (command: Command.Any, args: unknown) => () =>
      Command.requestFields(command, (args ?? {}) as Record<string, unknown>)

    const callRemote: Amp["callRemote"] = (command, args, callOptions) => {
      const call = command.requiresAnswer
        ? ask(command, command.name, request(command, args), callOptions?.timeout, (box) => Descriptors.decoding(fds, () => Command.decodeResponse(command, box)))
        : Effect.suspend(() => Effect.as(fireAndForget(Descriptors.encoding(fds, request(command, args))), {}))
      return traced(command.name, "client", call) as Effect.Effect<any, any>
    }

    const callRemoteString: Amp["callRemoteString"] = (name, fields, callOptions) =>
      Effect.suspend(() => {
        const box = new BoxBuilder().set("_command", utf8(name))
        for (const k in fields) {
          const v = fields[k]!
          box.set(k, typeof v === "string" ? utf8(v) : v)
        }
        if (callOptions?.requiresAnswer === false) return Effect.as(fireAndForget(box), new BoxBuilder().build())
        return ask(undefined, name, () => box, callOptions?.timeout)
      })

    /** What StartTLS and switches need to ask (see internal/boundaryCommand). */
    const asking: Asking = {
      boundary: internalsOf(protocol).boundary,
      ask: <E>(
        command: Command.Any,
        build: () => BoxBuilder,
        timeout: Duration.DurationInput | undefined,
        afterSend: () => void,
        atBoundary: (resume: (exit: Exit.Exit<AmpBox, CallFailure | E>) => void) => Pending["atBoundary"]
      ) =>
        ask<AmpBox, E>(command, command.name, build, timeout, undefined, afterSend, atBoundary),
      remoteError: (command, reply) => remoteError(command, command.name, reply)
    }

    const startTls: Amp["startTls"] = (tlsOptions) => traced("StartTLS", "client", StartTls.ask(asking, tlsOptions))

    const switchProtocol: Amp["switchProtocol"] = (command, args, callOptions) =>
      traced(command.name, "client", ProtocolSwitch.ask(asking, command, args, callOptions))

    const amp: Amp = {
      callRemote,
      callRemoteString,
      startTls,
      switchProtocol,
      info: () => protocol.info(),
      ended: protocol.ended,
      done: Effect.zipRight(
        protocol.ended,
        Effect.suspend(() => (switchedFiber.fiber ? Fiber.join(switchedFiber.fiber) : Effect.void))
      ),
      close: protocol.close,
      drain,
      protocol
    }

    const receiver: BoxReceiver = { ampBoxReceived, stopReceivingBoxes }
    return { amp, receiver }
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
