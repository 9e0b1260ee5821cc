import type { ConnectionEnded, ProtocolSwitched } from "../AmpError.js"

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
