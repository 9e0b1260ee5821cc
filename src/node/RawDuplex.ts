/**
 * A `RawConnection` (what a protocol switch hands over) as a Node `Duplex`,
 * for libraries that want a socket-like stream.
 *
 * @since 0.1.0
 */
import { Duplex } from "node:stream"
import * as Effect from "effect/Effect"
import * as Runtime from "effect/Runtime"
import type * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import type { RawConnection } from "../Transport.js"

/**
 * The connection as a `Duplex`. Reading follows the duplex's demand (the
 * connection is pulled only while the duplex wants data); the pump stops
 * with the scope.
 *
 * @since 0.1.0
 */
export const toDuplex = (connection: RawConnection): Effect.Effect<Duplex, never, Scope.Scope> =>
  Effect.gen(function*() {
    const runtime = yield* Effect.runtime<never>()
    const run = Runtime.runPromise(runtime)
    let wake: (() => void) | undefined
    let wanted = true
    const duplex = new Duplex({
      read() {
        wanted = true
        const w = wake
        wake = undefined
        w?.()
      },
      write(chunk: Buffer, _encoding, callback) {
        run(connection.write(chunk)).then(() => callback(), (e) => callback(e instanceof Error ? e : new Error(String(e))))
      },
      final(callback) {
        run(connection.end).then(() => callback(), callback)
      }
    })
    const waitForDemand = Effect.async<void>((resume) => {
      if (wanted) return resume(Effect.void)
      wake = () => resume(Effect.void)
    })
    yield* connection.incoming.pipe(
      Stream.runForEach((chunk) =>
        Effect.zipRight(
          waitForDemand,
          Effect.sync(() => {
            wanted = duplex.push(chunk)
          })
        )
      ),
      Effect.matchEffect({
        onFailure: (e) => Effect.sync(() => duplex.destroy(e)),
        onSuccess: () => Effect.sync(() => duplex.push(null))
      }),
      Effect.forkScoped
    )
    return duplex
  })
