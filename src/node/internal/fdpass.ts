/**
 * The native addon (native/fdpass.c), loaded once, or the reason it cannot be.
 */
import { createRequire } from "node:module"
import { setUnavailableReason } from "../../internal/descriptors.js"

/** What native/fdpass.c exports (see the comment at its top). */
export interface FdPass {
  readonly open: (fd: number, onEvent: (events: number) => void) => unknown
  readonly poll: (handle: unknown, events: number) => number
  readonly recv: (handle: unknown, buf: Buffer, fdsOut: Int32Array) => number
  readonly send: (handle: unknown, chunks: ReadonlyArray<Buffer>, offset: number, limit: number, fds: Int32Array | null) => number
  readonly shutdown: (handle: unknown) => number
  readonly close: (handle: unknown) => number
  readonly dup: (fd: number) => number
  readonly closeFd: (fd: number) => number
  readonly pipe: () => [number, number]
}

const HOW_TO_ENABLE = "passing file descriptors needs a transport that carries them, and so effect-amp's native addon (native/fdpass.c), which was not built " +
  "when the package was installed (no C compiler, make or Python 3?). To enable it: install them " +
  "(Debian: apt-get install build-essential python3), then run `npm rebuild effect-amp`"

let loaded: FdPass | undefined
let failure: string | undefined

/** The addon, or `undefined` (then {@link whyUnavailable} says why). */
export const fdpass = (): FdPass | undefined => {
  if (loaded !== undefined || failure !== undefined) return loaded
  if (process.env.EFFECT_AMP_NATIVE === "skip") {
    failure = `${HOW_TO_ENABLE} (EFFECT_AMP_NATIVE=skip is set: the addon is not loaded)`
    setUnavailableReason(failure)
    return undefined
  }
  try {
    // dist/node/internal and src/node/internal both sit three levels under the package root.
    loaded = createRequire(import.meta.url)("../../../native/build/Release/fdpass.node") as FdPass
  } catch (e) {
    failure = `${HOW_TO_ENABLE} (loading it said: ${(e as Error).message.split("\n")[0]})`
    setUnavailableReason(failure)
  }
  return loaded
}

/** Why the addon is not there; `undefined` when it is. */
export const whyUnavailable = (): string | undefined => (fdpass() === undefined ? failure : undefined)

/** `-errno` from the addon as an Error with Node's usual `code`. */
export const errnoError = (n: number, syscall: string): NodeJS.ErrnoException => {
  const code = errnoNames[-n] ?? `E${-n}`
  const e: NodeJS.ErrnoException = new Error(`${syscall} ${code}`)
  e.code = code
  e.errno = n
  e.syscall = syscall
  return e
}

const errnoNames: Record<number, string> = {
  1: "EPERM", 4: "EINTR", 9: "EBADF", 11: "EAGAIN", 12: "ENOMEM", 22: "EINVAL", 23: "ENFILE", 24: "EMFILE",
  32: "EPIPE", 90: "EMSGSIZE", 104: "ECONNRESET", 105: "ENOBUFS", 107: "ENOTCONN", 110: "ETIMEDOUT"
}

export const EAGAIN = -11
