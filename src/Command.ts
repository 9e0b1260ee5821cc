/**
 * Typed AMP commands (Twisted's `Command`).
 *
 * A command is a definition, not a class to instantiate: a wire name, the
 * arguments and response as {@link Argument}s, the errors it may answer with
 * (wire code to error class), the fatal errors (sent, then the connection
 * closes) and whether it expects an answer at all.
 *
 * Field names: a wire name that is not a JavaScript identifier, such as
 * `foo-bar`, is the field `foo_bar` (dashes become underscores: Twisted's
 * `_wireNameToPythonIdentifier`). Declare fields by wire name; use them by
 * field name.
 *
 * @since 0.1.0
 */
import type * as Effect from "effect/Effect"
import type { YieldableError } from "effect/Cause"
import type { AmpBox } from "./AmpBox.js"
import { utf8 } from "./AmpBox.js"
import { InvalidSignature, MalformedAmpBox } from "./AmpError.js"
import type * as Argument from "./Argument.js"
import { BoxBuilder } from "./BoxBuilder.js"
import { type Field, fieldsOf, readFields, writeFields } from "./internal/fields.js"
import type { AtBoundary } from "./internal/boundaryCommand.js"

/** Argument declarations, by wire name (the same as {@link Argument.Fields}). */
export type Fields = Argument.Fields

/** `foo-bar` as a field name: `foo_bar` (the same as {@link Argument.FieldName}). */
export type FieldName<K extends string> = Argument.FieldName<K>

/** The value type of a set of fields (the same as {@link Argument.Record}). */
export type Type<F extends Fields> = Argument.Record<F>

/**
 * An error class a command can answer with. It is constructed with the
 * peer's description; `Data.TaggedError` and `Schema.TaggedError` classes fit.
 */
export type ErrorClass = new(props: { readonly description: string }) => YieldableError

/** Wire code to error class. */
export type Errors = { readonly [code: string]: ErrorClass }

/**
 * A command definition.
 *
 * @since 0.1.0
 */
export interface Command<
  Name extends string = string,
  A extends Fields = Fields,
  R extends Fields = Fields,
  E extends Errors = Errors,
  F extends Errors = Errors
> {
  readonly _tag: "Command"
  /** The `_command` value on the wire. */
  readonly name: Name
  readonly arguments: A
  readonly response: R
  readonly errors: E
  readonly fatalErrors: F
  readonly requiresAnswer: boolean
  /** What happens to the connection when this command is answered. */
  readonly kind: "plain" | "starttls" | "switch"
  /** @internal precomputed wire layout */
  readonly wire: Wire
}

/** Any command. */
export type Any = Command<string, any, any, any, any>

/** The arguments a caller passes. */
export type Arguments<C extends Any> = C extends Command<any, infer A, any, any, any> ? Type<A> : never
/** What a successful call returns. */
export type Response<C extends Any> = C extends Command<any, any, infer R, any, any> ? Type<R> : never
/** The typed errors a call can fail with (mapped and fatal). */
export type Error<C extends Any> = C extends Command<any, any, any, infer E, infer F>
  ? InstanceType<E[keyof E]> | InstanceType<F[keyof F]>
  : never

/** Options of {@link make}. */
export interface Options<A extends Fields, R extends Fields, E extends Errors, F extends Errors> {
  readonly arguments?: A
  readonly response?: R
  /** Error classes by wire code. */
  readonly errors?: E
  /** Errors after which the connection closes (the responder sends the error box first). */
  readonly fatalErrors?: F
  /** `false`: no `_ask` is sent and no answer awaited (Twisted's `requiresAnswer = False`). */
  readonly requiresAnswer?: boolean
}

/** @internal */
export type { Field }

/** @internal */
export interface Wire {
  readonly nameBytes: Uint8Array
  readonly args: ReadonlyArray<Field>
  readonly argFields: ReadonlySet<string>
  readonly resp: ReadonlyArray<Field>
  readonly respFields: ReadonlySet<string>
  /** error class by wire code, and whether it is fatal */
  readonly codes: ReadonlyMap<string, { readonly cls: ErrorClass; readonly fatal: boolean }>
}

const wireOf = (name: string, options: Options<Fields, Fields, Errors, Errors>): Wire => {
  const args = fieldsOf(options.arguments ?? {})
  const resp = fieldsOf(options.response ?? {})
  const codes = new Map<string, { cls: ErrorClass; fatal: boolean }>()
  for (const [code, cls] of Object.entries(options.errors ?? {})) codes.set(code, { cls, fatal: false })
  for (const [code, cls] of Object.entries(options.fatalErrors ?? {})) codes.set(code, { cls, fatal: true })
  return {
    nameBytes: utf8(name),
    args,
    argFields: new Set(args.map((f) => f.field)),
    resp,
    respFields: new Set(resp.map((f) => f.field)),
    codes
  }
}

const build = <Name extends string, A extends Fields, R extends Fields, E extends Errors, F extends Errors>(
  name: Name,
  options: Options<A, R, E, F>,
  kind: Command["kind"]
): Command<Name, A, R, E, F> => ({
  _tag: "Command",
  name,
  arguments: (options.arguments ?? {}) as A,
  response: (options.response ?? {}) as R,
  errors: (options.errors ?? {}) as E,
  fatalErrors: (options.fatalErrors ?? {}) as F,
  requiresAnswer: options.requiresAnswer ?? true,
  kind,
  wire: wireOf(name, options as Options<Fields, Fields, Errors, Errors>)
})

/**
 * Defines a command.
 *
 * @example
 * class ZeroDivision extends Data.TaggedError("ZeroDivision")<{ description: string }> {}
 * const Divide = Command.make("Divide", {
 *   arguments: { numerator: Argument.Integer, denominator: Argument.Integer },
 *   response: { result: Argument.Float },
 *   errors: { ZERO_DIVISION: ZeroDivision }
 * })
 *
 * @since 0.1.0
 */
export const make = <
  const Name extends string,
  A extends Fields = {},
  R extends Fields = {},
  E extends Errors = {},
  F extends Errors = {}
>(name: Name, options: Options<A, R, E, F> = {}): Command<Name, A, R, E, F> => build(name, options, "plain")

/**
 * A command that inherits another's errors (Twisted's subclassing of a
 * command to share `errors`).
 */
export const extendErrors = <
  const Name extends string,
  PE extends Errors,
  PF extends Errors,
  A extends Fields = {},
  R extends Fields = {},
  E extends Errors = {},
  F extends Errors = {}
>(
  parent: Command<any, any, any, PE, PF>,
  name: Name,
  options: Options<A, R, E, F> = {}
): Command<Name, A, R, PE & E, PF & F> =>
  build(name, {
    ...options,
    errors: { ...parent.errors, ...options.errors } as PE & E,
    fatalErrors: { ...parent.fatalErrors, ...options.fatalErrors } as PF & F
  }, "plain")

/** @internal defines a command with a connection-changing kind (StartTLS, protocol switches). */
export const makeKind = <
  const Name extends string,
  A extends Fields = {},
  R extends Fields = {},
  E extends Errors = {},
  F extends Errors = {}
>(name: Name, kind: Command["kind"], options: Options<A, R, E, F> = {}): Command<Name, A, R, E, F> =>
  build(name, options, kind)

// ---------------------------------------------------------------------------
// Fields <-> boxes
// ---------------------------------------------------------------------------

/** The fields of a call's request (without `_ask`); throws {@link InvalidSignature}. @internal */
export const requestFields = (command: Any, args: Readonly<Record<string, unknown>>): BoxBuilder => {
  const out = new BoxBuilder()
  out.set("_command", command.wire.nameBytes)
  writeFields(
    command.wire.args,
    command.wire.argFields,
    args,
    out,
    (detail) => new InvalidSignature({ command: command.name, detail })
  )
  return out
}

/** Decodes an answer box into the response; throws {@link MalformedAmpBox}. @internal */
export const decodeResponse = (command: Any, box: AmpBox): Record<string, unknown> =>
  readFields(command.wire.resp, box, (detail) => new MalformedAmpBox({ command: command.name, detail: `answer: ${detail}` }))

/** Decodes a request box into arguments; throws {@link MalformedAmpBox}. @internal */
export const decodeArguments = (command: Any, box: AmpBox): Record<string, unknown> =>
  readFields(command.wire.args, box, (detail) => new MalformedAmpBox({ command: command.name, detail: `request: ${detail}` }))

/**
 * A responder: what to run when the peer calls `command`.
 *
 * @since 0.1.0
 */
export interface Responder<R = never> {
  readonly _tag: "Responder"
  readonly command: Any
  /** Gets the decoded arguments; returns the response fields (or, for a switch, the next protocol). */
  readonly handle: (args: Record<string, unknown>) => Effect.Effect<unknown, unknown, R>
  /** @internal For commands that change the connection: run in the reader, it answers and acts at the box boundary. */
  readonly atBoundary?: AtBoundary
}
