/**
 * How a subcommand ends with an exit code: its message is printed on stderr
 * first, then the program exits with the code (main.ts's teardown).
 *
 * Exit codes: 0 success; 1 an error answer (`call`) or bad input or stream
 * (`decode`, `encode`); 2 a connection or usage failure.
 *
 * @since 0.1.0
 */
import * as Console from "effect/Console"
import * as Data from "effect/Data"
import * as Effect from "effect/Effect"

/** Ends the program with an exit code, after its message has been printed. */
export class CliExit extends Data.TaggedError("CliExit")<{ readonly code: number }> {}

/** Prints `message` on stderr (nothing when empty) and ends with `code`. */
export const exitWith = (code: number, message: string): Effect.Effect<never, CliExit> =>
  Effect.zipRight(message === "" ? Effect.void : Console.error(message), Effect.fail(new CliExit({ code })))
