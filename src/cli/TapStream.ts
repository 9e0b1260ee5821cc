/**
 * What `effect-amp tap` sees in one proxied connection: a copy of the bytes
 * of each direction, read as AMP boxes, TLS records after a StartTLS, or
 * raw bytes after a protocol switch or a violation. It only reads: the
 * bytes themselves are forwarded by the caller, before and whatever this
 * makes of them.
 *
 * - Boxes are found by their length prefixes, then decoded; an ask is
 *   remembered so that its answer or error (in the other direction) is
 *   shown with the command and the latency.
 * - After a successful `StartTLS` answer, each direction turns to TLS at its
 *   next box boundary that starts with a TLS record (AMP boxes start with a
 *   0 byte, TLS records with 20..23). Handshake records are named
 *   (`ClientHello`...); encrypted records are counted as opaque. TLS is not
 *   terminated: the tap never holds the keys, so it cannot alter a byte.
 * - After a successful answer to a switch command (`--switch NAME`), both
 *   directions are raw bytes, counted. The asking side's bytes after the ask
 *   are held back from reading (never from forwarding) until the answer
 *   says whether they are boxes or raw. A switch the tap was not told about
 *   shows as a violation, then raw bytes.
 * - A violation (a key length over 255, a box over the size limit, a TLS
 *   record where none can be) is reported once; the rest of that direction
 *   is counted as raw bytes.
 *
 * @since 0.1.0
 */
import type { AmpBox } from "../AmpBox.js"
import { decodeUtf8Lenient } from "../AmpBox.js"
import { parse } from "../BoxCodec.js"

/** `c>s`: from the client to the target; `s>c`: back. */
export type Dir = "c>s" | "s>c"

/** What the tap reports, in the order it saw it. */
export type Event =
  | { readonly kind: "ask"; readonly dir: Dir; readonly at: number; readonly tag: string; readonly command: string; readonly box: AmpBox }
  | { readonly kind: "note"; readonly dir: Dir; readonly at: number; readonly command: string; readonly box: AmpBox }
  | {
    readonly kind: "answer" | "error"
    readonly dir: Dir
    readonly at: number
    readonly tag: string
    /** The ask's command, when the ask was seen. */
    readonly command: string | undefined
    /** Milliseconds since the ask passed the tap. */
    readonly latencyMs: number | undefined
    readonly box: AmpBox
  }
  | { readonly kind: "box"; readonly dir: Dir; readonly at: number; readonly box: AmpBox }
  | { readonly kind: "tls"; readonly dir: Dir; readonly at: number; readonly record: string; readonly bytes: number }
  | { readonly kind: "opaque" | "raw"; readonly dir: Dir; readonly at: number; readonly bytes: number; readonly total: number }
  | { readonly kind: "violation"; readonly dir: Dir; readonly at: number; readonly offset: number; readonly detail: string }

/** Options of {@link make}. */
export interface Options {
  /** Commands whose successful answer switches the connection to another protocol. */
  readonly switches?: ReadonlyArray<string>
  /** The largest box read whole (bigger is a violation). Default 16 MiB, the library's default. */
  readonly maxBoxBytes?: number
  /** The clock, in milliseconds. Default `performance.now`. */
  readonly now?: () => number
}

/** Growable byte buffer: appends amortised O(1), so a large box arriving in small chunks is not copied over and over. */
class ByteQueue {
  private buf = new Uint8Array(1024)
  private start = 0
  private end = 0
  get length(): number {
    return this.end - this.start
  }
  push(chunk: Uint8Array): void {
    if (this.end + chunk.length > this.buf.length) {
      const need = this.length + chunk.length
      const next = need > this.buf.length / 2 ? new Uint8Array(Math.max(need * 2, 1024)) : this.buf
      next.set(this.buf.subarray(this.start, this.end))
      this.buf = next
      this.end -= this.start
      this.start = 0
    }
    this.buf.set(chunk, this.end)
    this.end += chunk.length
  }
  byte(i: number): number {
    return this.buf[this.start + i]!
  }
  u16(i: number): number {
    return (this.byte(i) << 8) | this.byte(i + 1)
  }
  /** The first `n` bytes, removed (a copy). */
  take(n: number): Uint8Array {
    const out = this.buf.slice(this.start, this.start + n)
    this.skip(n)
    return out
  }
  skip(n: number): void {
    this.start += n
    if (this.start === this.end) this.start = this.end = 0
  }
}

const HANDSHAKE: Record<number, string> = {
  1: "ClientHello",
  2: "ServerHello",
  4: "NewSessionTicket",
  8: "EncryptedExtensions",
  11: "Certificate",
  12: "ServerKeyExchange",
  13: "CertificateRequest",
  14: "ServerHelloDone",
  15: "CertificateVerify",
  16: "ClientKeyExchange",
  20: "Finished"
}

const isTlsContentType = (b: number) => b >= 20 && b <= 23

/** One direction's reading state. */
interface Side {
  mode: "amp" | "held" | "tls" | "raw"
  readonly queue: ByteQueue
  /** Stream offset of the queue's first byte. */
  offset: number
  /** Total bytes seen. */
  total: number
  /** `raw`/`opaque` bytes counted so far. */
  counted: number
  /** TLS: bytes of the current record's body still to pass, and whether they count as opaque. */
  recordLeft: number
  recordOpaque: boolean
  /** Asks sent this way, by tag, waiting for their answers (which come the other way). */
  readonly asks: Map<string, { readonly command: string; readonly at: number }>
}

/** The tap's reader for one connection. */
export interface TapStream {
  /** Reads a copy of bytes that went `dir`. */
  readonly push: (dir: Dir, chunk: Uint8Array) => void
  /** `dir` ended; a box cut short is reported. */
  readonly end: (dir: Dir) => void
}

const text = (bytes: Uint8Array | undefined): string => (bytes === undefined ? "" : decodeUtf8Lenient(bytes))

/** Reads both directions of one connection; every finding goes to `emit`. */
export const make = (emit: (event: Event) => void, options: Options = {}): TapStream => {
  const now = options.now ?? (() => performance.now())
  const switches = new Set(options.switches ?? [])
  const maxBox = options.maxBoxBytes ?? 16 * 1024 * 1024
  const side = (): Side => ({ mode: "amp", queue: new ByteQueue(), offset: 0, total: 0, counted: 0, recordLeft: 0, recordOpaque: false, asks: new Map() })
  const sides: Record<Dir, Side> = { "c>s": side(), "s>c": side() }
  const other = (d: Dir): Dir => (d === "c>s" ? "s>c" : "c>s")
  let tlsAgreed = false

  const violation = (dir: Dir, s: Side, offset: number, detail: string) => {
    emit({ kind: "violation", dir, at: now(), offset, detail })
    s.mode = "raw"
    countRaw(dir, s, s.queue.length)
  }

  const countRaw = (dir: Dir, s: Side, n: number) => {
    s.queue.skip(n)
    s.offset += n
    if (n === 0) return
    s.counted += n
    emit({ kind: s.mode === "tls" ? "opaque" : "raw", dir, at: now(), bytes: n, total: s.counted })
  }

  /** The length of the box at the head of the queue, `undefined` while incomplete, or a violation message. */
  const boxLength = (q: ByteQueue): number | undefined | { readonly detail: string; readonly at: number } => {
    let i = 0
    for (;;) {
      if (i + 2 > q.length) return i + 2 > maxBox ? { detail: `a box longer than ${maxBox} bytes`, at: 0 } : undefined
      const kl = q.u16(i)
      if (kl === 0) return i + 2
      if (kl > 255) return { detail: `key length prefix ${kl} (AMP keys are at most 255 bytes)`, at: i }
      if (i + 2 + kl + 2 > q.length) return undefined
      const vl = q.u16(i + 2 + kl)
      i += 4 + kl + vl
      if (i > maxBox) return { detail: `a box longer than ${maxBox} bytes`, at: 0 }
    }
  }

  const onBox = (dir: Dir, s: Side, box: AmpBox) => {
    const at = now()
    const command = box.get("_command")
    const ask = box.get("_ask")
    const answer = box.get("_answer") ?? box.get("_error")
    if (command !== undefined) {
      const name = text(command)
      if (ask !== undefined) {
        const tag = text(ask)
        s.asks.set(tag, { command: name, at })
        emit({ kind: "ask", dir, at, tag, command: name, box })
        if (switches.has(name)) s.mode = "held"
      } else {
        emit({ kind: "note", dir, at, command: name, box })
      }
      return
    }
    if (answer !== undefined) {
      const tag = text(answer)
      const asker = sides[other(dir)]
      const asked = asker.asks.get(tag)
      asker.asks.delete(tag)
      const isError = box.has("_error")
      emit({
        kind: isError ? "error" : "answer",
        dir,
        at,
        tag,
        command: asked?.command,
        latencyMs: asked === undefined ? undefined : at - asked.at,
        box
      })
      if (asked?.command === "StartTLS" && !isError) tlsAgreed = true
      if (asked !== undefined && switches.has(asked.command)) {
        if (!isError) {
          // This side is raw right after the answer; the asker's held bytes are raw too.
          s.mode = "raw"
          asker.mode = "raw"
          countRaw(other(dir), asker, asker.queue.length)
        } else if (asker.mode === "held") {
          asker.mode = "amp"
          read(other(dir), asker)
        }
      }
      return
    }
    emit({ kind: "box", dir, at, box })
  }

  const readTls = (dir: Dir, s: Side) => {
    const q = s.queue
    let opaque = 0
    const flush = () => {
      if (opaque === 0) return
      s.counted += opaque
      emit({ kind: "opaque", dir, at: now(), bytes: opaque, total: s.counted })
      opaque = 0
    }
    for (;;) {
      if (s.recordLeft > 0) {
        const n = Math.min(s.recordLeft, q.length)
        if (n === 0) break
        q.skip(n)
        s.offset += n
        s.recordLeft -= n
        if (s.recordOpaque) opaque += n
        continue
      }
      if (q.length === 0) break
      const type = q.byte(0)
      if (!isTlsContentType(type)) {
        flush()
        return violation(dir, s, s.offset, `byte ${type} where a TLS record should start`)
      }
      if (q.length < 5) break
      const length = q.u16(3)
      if (type === 22 && length > 0 && q.length < 6) break
      if (type === 23) {
        // Encrypted: only its size is known.
        opaque += 5
        s.recordOpaque = true
      } else {
        flush()
        const record = type === 22
          ? `handshake ${HANDSHAKE[q.byte(5)] ?? `type ${q.byte(5)}`}`
          : type === 20
          ? "change_cipher_spec"
          : "alert"
        emit({ kind: "tls", dir, at: now(), record, bytes: 5 + length })
        s.recordOpaque = false
      }
      q.skip(5)
      s.offset += 5
      s.recordLeft = length
    }
    flush()
  }

  const read = (dir: Dir, s: Side): void => {
    for (;;) {
      if (s.mode === "held") return
      if (s.mode === "raw") return countRaw(dir, s, s.queue.length)
      if (s.mode === "tls") return readTls(dir, s)
      if (s.queue.length === 0) return
      if (tlsAgreed && isTlsContentType(s.queue.byte(0))) {
        s.mode = "tls"
        continue
      }
      const n = boxLength(s.queue)
      if (n === undefined) return
      if (typeof n !== "number") return violation(dir, s, s.offset + n.at, n.detail)
      const bytes = s.queue.take(n)
      s.offset += n
      const box = parse(bytes)[0]
      if (box !== undefined) onBox(dir, s, box)
    }
  }

  return {
    push: (dir, chunk) => {
      const s = sides[dir]
      s.total += chunk.length
      if (s.mode === "raw" && s.queue.length === 0) {
        s.offset += chunk.length
        s.counted += chunk.length
        emit({ kind: "raw", dir, at: now(), bytes: chunk.length, total: s.counted })
        return
      }
      s.queue.push(chunk)
      read(dir, s)
    },
    end: (dir) => {
      const s = sides[dir]
      if (s.mode === "amp" && s.queue.length > 0) {
        violation(dir, s, s.offset, `the stream ended inside a box (${s.queue.length} bytes of it)`)
      } else if (s.mode === "held" && s.queue.length > 0) {
        s.mode = "raw"
        countRaw(dir, s, s.queue.length)
      }
    }
  }
}
