import * as Effect from "effect/Effect"
import type * as Schedule from "effect/Schedule"
import { type ConnectionEnded, type PoolError, type ProtocolSwitched, WorkerCrashed } from "../AmpError.js"

/**
 * Errors with which a connection ends. A call failing with one lost its
 * connection: the pools replace the worker, or reconnect the member.
 * `MalformedAmpBox` is left out: a malformed answer fails one call and the
 * connection goes on.
 */
const connectionEndTags = new Set<string>([
  "ConnectionLost",
  "LengthLimitExceeded",
  "IncompleteBox",
  "BoxTooLarge",
  "PeerVerifyError",
  "TlsError",
  "NoEmptyBoxes",
  "PartialBoxTimeout",
  "ProtocolSwitched"
])

/** Whether `e` says the connection the call was on has ended. */
export const isConnectionEnd = (e: unknown): e is ConnectionEnded | ProtocolSwitched =>
  typeof e === "object" && e !== null && "_tag" in e && connectionEndTags.has((e as { _tag: string })._tag)

/** Reruns `self` with `schedule` while it fails with `WorkerCrashed`; as is without a schedule. */
export const retryCrashed = <A, E>(
  self: Effect.Effect<A, E | PoolError>,
  schedule: Schedule.Schedule<unknown, WorkerCrashed> | undefined
): Effect.Effect<A, E | PoolError> =>
  schedule === undefined ? self : Effect.retry(self, {
    schedule: schedule as Schedule.Schedule<unknown, E | PoolError>,
    while: (e) => e instanceof WorkerCrashed
  })
