/**
 * Descriptor passing, the part that does not depend on the platform: the
 * per-connection channel a transport offers (its `descriptors` capability),
 * and the one narrow way `Argument.Descriptor` reaches it.
 *
 * Argument encoders have no connection in hand. The dispatcher runs the
 * encoding of a box's fields (and the decoding of a received box) inside
 * {@link encoding} / {@link decoding}, which make the connection's channel
 * the current one for that synchronous call. Nothing else sees it.
 * (Not part of the public API: only `Transport.descriptors` names its type.)
 */

/** A connection's descriptor bookkeeping (Twisted's `_DescriptorExchanger`). */
export interface DescriptorChannel {
  /**
   * Duplicates `fd` and queues the copy to go out with the next bytes
   * written; returns its send ordinal. Throws an Error saying why not.
   */
  readonly stage: (fd: number) => number
  /** The descriptors staged so far (a mark for {@link unstage}). */
  readonly staged: () => number
  /** Takes back (and closes) the descriptors staged after `mark`: their box was not sent. */
  readonly unstage: (mark: number) => void
  /** Hands over the received descriptor of `ordinal` (the caller owns it now). Throws an Error saying why not. */
  readonly claim: (ordinal: number) => number
  /** Gives a claimed descriptor back to be closed (its box failed to decode). */
  readonly release: (fd: number) => void
}

let current: DescriptorChannel | undefined

/** The channel of the connection whose box is being encoded or decoded, if it has one. */
export const currentChannel = (): DescriptorChannel | undefined => current

/** Why there is no channel, for the message of a Descriptor argument that cannot be used; set by the Node side. */
let unavailable = "passing file descriptors needs a transport that carries them beside the bytes (SCM_RIGHTS on a UNIX socket); " +
  "this connection's does not carry descriptors: connect or serve on a unix address with `descriptors: true` (effect-amp/node)"

export const setUnavailableReason = (reason: string): void => {
  unavailable = reason
}

export const unavailableReason = (): string => unavailable

/** Descriptors claimed during the current {@link decoding}, to close if the box fails. */
let claimed: Array<number> | undefined

/** Records a claim made by `Argument.Descriptor` */
export const noteClaim = (fd: number): void => {
  claimed?.push(fd)
}

/**
 * Runs `f` (encoding a box to send) with `channel` current. When `f` throws,
 * the descriptors it staged are taken back, so the ordinals stay in step.
 */
export const encoding = <A>(channel: DescriptorChannel | undefined, f: () => A): A => {
  if (channel === undefined) return f()
  const before = current
  const mark = channel.staged()
  current = channel
  try {
    return f()
  } catch (e) {
    channel.unstage(mark)
    throw e
  } finally {
    current = before
  }
}

/**
 * Runs `f` (decoding a received box) with `channel` current. When `f`
 * throws, the descriptors it had claimed are closed: nobody owns them.
 */
export const decoding = <A>(channel: DescriptorChannel | undefined, f: () => A): A => {
  if (channel === undefined) return f()
  const before = current
  const outer = claimed
  const mine: Array<number> = []
  current = channel
  claimed = mine
  try {
    return f()
  } catch (e) {
    for (const fd of mine) channel.release(fd)
    throw e
  } finally {
    current = before
    claimed = outer
  }
}

/** Marks the messages of Descriptor failures, so that the UNKNOWN answer can say what happened. */
export const DESCRIPTOR_FAILURE = "descriptor ordinal"

/** The description for an UNKNOWN answer to a box whose descriptor was missing, or `undefined`. */
export const descriptorFailure = (e: unknown): string | undefined => {
  const detail = typeof e === "object" && e !== null ? (e as { detail?: unknown }).detail : undefined
  return typeof detail === "string" && detail.includes(DESCRIPTOR_FAILURE) ? detail : undefined
}
