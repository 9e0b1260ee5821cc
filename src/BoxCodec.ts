/**
 * Boxes to bytes and back.
 *
 * Wire format (Twisted's `BinaryBoxProtocol`): a box is a run of key/value
 * pairs, each a 2-byte big-endian length and that many bytes, closed by a
 * zero key length (`00 00`). Keys are 1..255 bytes, values 0..65535.
 *
 * The decoder is a plain incremental state machine, usable without the
 * Effect runtime: push chunks of any size, pull boxes. A box inside one chunk
 * is read in place (no copy); a box that spans chunks is gathered into one
 * contiguous piece of memory. {@link decode} wraps it as a `Channel` for
 * `Stream`s.
 *
 * The encoders: {@link encodeBox} and {@link encodeBoxes} return fresh
 * buffers; {@link BoxWriter} is the write path of a connection (boxes packed
 * into reused slabs, large values not copied); {@link BoxEncoder} reuses one
 * scratch buffer.
 *
 * @since 0.1.0
 */
import type * as FileSystem from "@effect/platform/FileSystem"
import type { PlatformError } from "@effect/platform/Error"
import * as Channel from "effect/Channel"
import * as Chunk from "effect/Chunk"
import * as Effect from "effect/Effect"
import * as Stream from "effect/Stream"
import { AmpBox, unsafeFromSpans } from "./AmpBox.js"
import { attempt } from "./internal/attempt.js"
import { allocUnsafe, concatBytes } from "./internal/bytes.js"
import {
  BoxTooLarge,
  type DecodeError,
  type EncodeError,
  IncompleteBox,
  InvalidKey,
  isDecodeError,
  isEncodeError,
  LengthLimitExceeded,
  TooLong
} from "./AmpError.js"

/** The longest key AMP allows, in bytes. */
export const MAX_KEY_LENGTH = 255
/** The longest value AMP allows, in bytes. */
export const MAX_VALUE_LENGTH = 65535

/**
 * Limits a peer cannot push us past. Twisted has none; ours are generous:
 * a 16 MiB box holds a 16 MiB `BigString` in 257 keys.
 */
export interface DecoderLimits {
  /** Largest encoded box accepted, in bytes. Default 16 MiB. */
  readonly maxBoxBytes?: number
  /**
   * Most key fields in one box. Default 4096. Counted as fields arrive, before
   * the key is read, so a repeated key counts again.
   */
  readonly maxKeys?: number
}

/** The defaults of {@link DecoderLimits}. */
export const defaultLimits: Required<DecoderLimits> = { maxBoxBytes: 16 * 1024 * 1024, maxKeys: 4096 }

const EMPTY = new Uint8Array(0)

const enum State {
  KeyLength,
  Key,
  ValueLength,
  Value
}

const expecting = ["key length", "key", "value length", "value"] as const

/**
 * The same string, internalized: V8 then compares it with a literal such as
 * `"_command"` by pointer. Property names are internalized, so one round
 * through an object does it; it runs on key-cache misses only.
 */
const internalize = (s: string): string => {
  const o: Record<string, 0> = {}
  o[s] = 0
  for (const k in o) return k
  return s
}

/**
 * Reads a key as a byte string. The same few keys (`_command`, `_ask`, the
 * argument names) arrive in every box, so short keys go through a small cache
 * indexed by length and first and last byte: a hit costs a byte comparison
 * instead of building a string, and hands out the same (internalized) string
 * every time, which makes the box's key lookups pointer compares.
 */
const keyCache: Array<string | undefined> = new Array(1 << 12)
const readKey = (buf: Uint8Array, start: number, end: number): string => {
  const n = end - start
  if (n > 24) return String.fromCharCode.apply(null, buf.subarray(start, end) as unknown as Array<number>)
  const slot = ((n << 8) ^ (buf[start]! << 3) ^ buf[end - 1]!) & 0xfff
  const hit = keyCache[slot]
  if (hit !== undefined && hit.length === n) {
    let i = 0
    while (i < n && hit.charCodeAt(i) === buf[start + i]) i++
    if (i === n) return hit
  }
  let s = ""
  for (let i = start; i < end; i++) s += String.fromCharCode(buf[i]!)
  s = internalize(s)
  keyCache[slot] = s
  return s
}

/** Past this many keys a box under construction finds repeated keys with a `Map`, not a scan. */
const SCAN_KEYS = 12

/**
 * Records field `key` (value at `offset`, `length` bytes) with `dict`
 * semantics: a repeated key keeps its first position and takes the new value.
 * Returns the key index, built once the box outgrows a scan.
 */
const addField = (
  keys: Array<string>,
  spans: Array<number>,
  index: Map<string, number> | undefined,
  key: string,
  offset: number,
  length: number
): Map<string, number> | undefined => {
  let i: number | undefined
  if (index === undefined) {
    const n = keys.length
    for (let j = 0; j < n; j++) {
      if (keys[j] === key) {
        spans[2 * j] = offset
        spans[2 * j + 1] = length
        return undefined
      }
    }
    if (n < SCAN_KEYS) {
      keys.push(key)
      spans.push(offset, length)
      return undefined
    }
    index = new Map()
    for (let j = 0; j < n; j++) index.set(keys[j]!, j)
  } else if ((i = index.get(key)) !== undefined) {
    spans[2 * i] = offset
    spans[2 * i + 1] = length
    return index
  }
  index.set(key, keys.length)
  keys.push(key)
  spans.push(offset, length)
  return index
}

const allocUnsafeSlow: (n: number) => Uint8Array = typeof globalThis.Buffer === "function"
  ? (n) => globalThis.Buffer.allocUnsafeSlow(n)
  : (n) => new Uint8Array(n)

/**
 * Slabs carved back to back, as Node's `Buffer` pool is: `reserve(n)` makes
 * room for `n` bytes at `at` (in a fresh slab when the current one is
 * short), and the caller moves `at` past what it wrote. Carved memory is
 * never handed out twice; a slab lives as long as any view of it.
 */
class SlabPool {
  slab: Uint8Array = EMPTY
  at = 0
  constructor(readonly slabBytes: number) {}

  reserve(n: number): void {
    if (this.slab.length - this.at < n) {
      this.slab = allocUnsafeSlow(Math.max(this.slabBytes, n))
      this.at = 0
    }
  }
}

/**
 * Memory for boxes gathered from several chunks. For large values (64 KiB
 * values arriving in 64 KiB reads) the copy is the whole cost, and most of
 * it is the memory copied into: with one fresh `ArrayBuffer` per box this
 * decoder ran at 60-70% of the speed below, with twice the page faults
 * (malloc handing out freshly mapped pages). So pieces of up to 256 KiB are
 * carved from a shared 1 MiB slab pool; bigger ones get their own buffer.
 * The box owns its piece.
 */
const gatherPool = new SlabPool(1024 * 1024)

const SLAB_PIECE_MAX = gatherPool.slabBytes / 4
const gatherAlloc = (n: number): Uint8Array => {
  if (n > SLAB_PIECE_MAX) return allocUnsafe(n)
  gatherPool.reserve(n)
  const { slab, at } = gatherPool
  gatherPool.at = at + n
  return new Uint8Array(slab.buffer, slab.byteOffset + at, n)
}

/**
 * `piece` (holding `fill` bytes) grown to `n` bytes: in place when it is the
 * last piece carved from the slab and the slab has room (a gathering box is
 * usually the only one carving), else a fresh piece with the bytes copied.
 */
const gatherGrow = (piece: Uint8Array, fill: number, n: number): Uint8Array => {
  const extra = n - piece.length
  const { slab, at } = gatherPool
  if (
    n <= SLAB_PIECE_MAX && piece.buffer === slab.buffer &&
    piece.byteOffset + piece.length === slab.byteOffset + at && slab.length - at >= extra
  ) {
    gatherPool.at = at + extra
    return new Uint8Array(slab.buffer, piece.byteOffset, n)
  }
  const grown = gatherAlloc(n)
  if (fill > 0) grown.set(new Uint8Array(piece.buffer, piece.byteOffset, fill))
  return grown
}

/** Spare room a gathered box may keep; past it `finish` copies the box to a buffer of its size. */
const GATHER_SLACK_MAX = 64 * 1024

/**
 * Room a gathered box may reserve beyond the bytes it has, for the rest of
 * the field being read: at most this many bytes, or `GATHER_AHEAD` times
 * what has arrived. A length prefix is the peer's word, not bytes we hold:
 * reserving all 64 KiB a value announces would let a peer that sends ten
 * bytes and stops cost us 64 KiB per connection. A large value arriving in
 * large reads has most of itself in hand, so its reservation stays exact.
 */
const GATHER_RESERVE_MIN = 1024
const GATHER_AHEAD = 4

/**
 * Incremental AMP decoder.
 *
 * ```ts
 * const decoder = new BoxDecoder()
 * decoder.push(chunk)
 * for (let box = decoder.next(); box; box = decoder.next()) handle(box)
 * ```
 *
 * `next` throws a {@link DecodeError} when the stream is bad; every box before
 * the bad bytes has been returned by then. After an error the decoder stays
 * failed.
 *
 * A box wholly inside one pushed chunk is read in one tight pass and keeps
 * a reference to that chunk: its values are made, as views, only when asked
 * for. A box that spans chunks is walked by a state machine that copies its
 * bytes as each chunk is left, so that its values are contiguous too (one
 * copy). Either way a box's bytes never change after it is returned, whatever
 * is pushed later, as long as callers do not reuse the memory of pushed chunks.
 *
 * @since 0.1.0
 */
export class BoxDecoder {
  private readonly maxBoxBytes: number
  private readonly maxKeys: number

  /** Current chunk and our position in it. */
  private buf: Uint8Array = EMPTY
  private pos = 0
  /** Stream offset of `buf[0]`. */
  private base = 0
  /** Chunks pushed while `buf` still had bytes. */
  private readonly queue: Array<Uint8Array> = []

  // The state machine, for a box that spans chunks (or holds an error).
  private state = State.KeyLength
  /** Whether the state machine is inside a box. */
  private inBox = false
  /** Stream offset where the current box started. */
  private boxStart = 0
  /** Where the current box starts in `buf` (0 when it started in an earlier chunk). */
  private boxPos = 0
  /**
   * Earlier chunks' raw bytes of the current box, copied in as each chunk is
   * left (`gathered[0, gatherFill)`): the box's values will read from here.
   */
  private gathered: Uint8Array = EMPTY
  private gatherFill = 0
  /** The current box's keys, and its values' offsets from the box start and lengths. */
  private keys: Array<string> = []
  private spans: Array<number> = []
  private index: Map<string, number> | undefined = undefined
  private key = ""
  /** Length of the current key or value; for a value, the bytes still to skip. */
  private fieldLength = 0
  /** Bytes of a straddling key gathered so far in `keyPart`. */
  private keyFill = 0
  /** Allocated on the first straddling key: most connections never need it. */
  private keyPart: Uint8Array = EMPTY
  /** First byte of a length prefix split across chunks, or -1. */
  private prefixHigh = -1
  private failure: DecodeError | undefined = undefined

  constructor(limits?: DecoderLimits) {
    this.maxBoxBytes = limits?.maxBoxBytes ?? defaultLimits.maxBoxBytes
    this.maxKeys = limits?.maxKeys ?? defaultLimits.maxKeys
  }

  /** Stream offset of the next byte the decoder will read. */
  get offset(): number {
    return this.base + this.pos
  }

  /** Whether the decoder is inside a box (some of its bytes read, not all). */
  get midBox(): boolean {
    return this.inBox
  }

  /** Stream offset where the unfinished box began (meaningful while {@link midBox}). */
  get boxOffset(): number {
    return this.boxStart
  }

  /** Bytes pushed and not yet consumed by a complete box. */
  get buffered(): number {
    let n = this.buf.length - (this.inBox ? this.boxPos : this.pos)
    n += this.gatherFill
    for (const c of this.queue) n += c.length
    return n
  }

  /** Appends bytes to decode. Zero-copy: the decoder keeps a reference, so do not reuse the chunk's memory. */
  push(chunk: Uint8Array): void {
    if (chunk.length === 0) return
    if (this.pos >= this.buf.length && this.queue.length === 0) this.advance(chunk)
    else this.queue.push(chunk)
  }

  /**
   * Lets go of the chunk just read to its end, so that an idle connection
   * keeps nothing of its last read but the unfinished box: a read may be a
   * large buffer, or a view of one, and a few bytes of it would keep it
   * all. Those bytes are copied now, which `advance` would do at the next
   * chunk anyway; boxes already returned keep their own reference.
   */
  private release(): undefined {
    const buf = this.buf
    if (buf.length === 0) return undefined
    if (this.inBox && this.boxPos < buf.length) this.gather(buf, this.boxPos, buf.length)
    this.base += buf.length
    this.buf = EMPTY
    this.pos = 0
    this.boxPos = 0
    return undefined
  }

  /** Moves on to `chunk`, keeping the current box's raw bytes. */
  private advance(chunk: Uint8Array): void {
    if (this.inBox && this.boxPos < this.buf.length) this.gather(this.buf, this.boxPos, this.buf.length)
    this.base += this.buf.length
    this.buf = chunk
    this.pos = 0
    this.boxPos = 0
  }

  /** The next complete box, or `undefined` when more bytes are needed. */
  next(): AmpBox | undefined {
    if (this.failure !== undefined) throw this.failure
    for (;;) {
      if (this.pos >= this.buf.length) {
        const chunk = this.queue.shift()
        if (chunk === undefined) return this.release()
        this.advance(chunk)
      }
      if (!this.inBox) {
        const box = this.readBox()
        if (box !== undefined) return box
      }
      const box = this.run()
      if (box !== undefined) return box
    }
  }

  /**
   * The fast path: a whole box at `pos` in `buf`, in one pass. Gives up
   * (returns `undefined`, leaving `pos` alone) when the box is not all there
   * or breaks a rule; the state machine then takes the box from its start,
   * and reports any error at its exact offset.
   */
  private readBox(): AmpBox | undefined {
    const buf = this.buf
    const len = buf.length
    const start = this.pos
    const maxKeys = this.maxKeys
    const maxEnd = start + this.maxBoxBytes
    const keys: Array<string> = []
    const spans: Array<number> = []
    let index: Map<string, number> | undefined
    let p = start
    for (;;) {
      if (p + 2 > len) return undefined
      const kl = (buf[p]! << 8) | buf[p + 1]!
      p += 2
      if (kl === 0) break
      if (kl > MAX_KEY_LENGTH || keys.length >= maxKeys || p + kl + 2 > len) return undefined
      const key = readKey(buf, p, p + kl)
      p += kl
      const vl = (buf[p]! << 8) | buf[p + 1]!
      p += 2
      // The box so far, this value, and the closing 00 00 must fit.
      if (p + vl + 2 > maxEnd || p + vl > len) return undefined
      index = addField(keys, spans, index, key, p, vl)
      p += vl
    }
    this.pos = p
    return unsafeFromSpans(keys, buf, spans, index)
  }

  /** The state machine: walks `buf` from `pos`; returns a box as soon as one completes. */
  private run(): AmpBox | undefined {
    const buf = this.buf
    const len = buf.length
    let pos = this.pos
    while (pos < len) {
      switch (this.state) {
        case State.KeyLength: {
          if (!this.inBox) {
            this.inBox = true
            this.boxStart = this.base + pos
            this.boxPos = pos
            this.keys = []
            this.spans = []
            this.index = undefined
          }
          const n = this.lengthPrefix(buf, pos)
          pos = this.pos
          if (n < 0) continue
          if (n === 0) return this.finish()
          if (n > MAX_KEY_LENGTH) {
            return this.fail(new LengthLimitExceeded({ length: n, offset: this.base + pos - 2 }))
          }
          if (this.keys.length >= this.maxKeys) {
            return this.fail(new BoxTooLarge({ limit: "keys", max: this.maxKeys, boxOffset: this.boxStart }))
          }
          this.fieldLength = n
          this.keyFill = 0
          this.state = State.Key
          break
        }
        case State.Key: {
          const n = this.fieldLength
          if (this.keyFill === 0 && pos + n <= len) {
            this.key = readKey(buf, pos, pos + n)
            pos += n
          } else {
            let part = this.keyPart
            if (part.length === 0) part = this.keyPart = new Uint8Array(MAX_KEY_LENGTH)
            let fill = this.keyFill
            while (fill < n && pos < len) part[fill++] = buf[pos++]!
            this.keyFill = fill
            if (fill < n) continue
            this.key = readKey(part, 0, n)
          }
          this.state = State.ValueLength
          break
        }
        case State.ValueLength: {
          const n = this.lengthPrefix(buf, pos)
          pos = this.pos
          if (n < 0) continue
          const at = this.base + pos - this.boxStart
          // The box so far, this value, and the closing 00 00 must fit.
          if (at + n + 2 > this.maxBoxBytes) {
            return this.fail(new BoxTooLarge({ limit: "bytes", max: this.maxBoxBytes, boxOffset: this.boxStart }))
          }
          this.index = addField(this.keys, this.spans, this.index, this.key, at, n)
          this.fieldLength = n
          this.state = n === 0 ? State.KeyLength : State.Value
          break
        }
        case State.Value: {
          const take = Math.min(this.fieldLength, len - pos)
          pos += take
          this.fieldLength -= take
          if (this.fieldLength === 0) this.state = State.KeyLength
          break
        }
      }
    }
    this.pos = pos
    return undefined
  }

  /** The box the state machine just closed (`pos` is past its `00 00`). */
  private finish(): AmpBox {
    const spans = this.spans
    let src: Uint8Array
    if (this.gatherFill === 0) {
      // All in this chunk after all: offsets from the box start become offsets in `buf`.
      src = this.buf
      for (let i = 0; i < spans.length; i += 2) spans[i] = spans[i]! + this.boxPos
    } else {
      if (this.pos > 0) this.gather(this.buf, 0, this.pos)
      src = this.gathered
      const fill = this.gatherFill
      if (src.length - fill > GATHER_SLACK_MAX) {
        // A big box that grew by doubling: do not let it keep up to twice its size.
        const exact = gatherAlloc(fill)
        exact.set(new Uint8Array(src.buffer, src.byteOffset, fill))
        src = exact
      }
      this.gathered = EMPTY
      this.gatherFill = 0
    }
    const box = unsafeFromSpans(this.keys, src, spans, this.index)
    this.inBox = false
    this.keys = []
    this.spans = []
    this.index = undefined
    return box
  }

  /**
   * Appends `chunk[from, to)` to the current box's gathered bytes. The first
   * time, the buffer is sized for the box so far plus the rest of the field
   * being read and the closing `00 00`: exact for the common case of one
   * large value straddling a chunk boundary, within what the bytes in hand
   * justify (`GATHER_AHEAD`). After that it doubles (within `maxBoxBytes`);
   * `finish` trims a buffer left with much slack.
   */
  private gather(chunk: Uint8Array, from: number, to: number): void {
    const n = to - from
    const fill = this.gatherFill
    let out = this.gathered
    if (fill + n > out.length) {
      const have = fill + n
      const rest = this.state === State.Value ? this.fieldLength : this.state === State.Key ? this.fieldLength - this.keyFill + 2 : 0
      const ahead = Math.min(rest + 2, Math.max(GATHER_RESERVE_MIN, GATHER_AHEAD * have))
      const size = Math.max(have, Math.min(Math.max(have + ahead, 2 * out.length), this.maxBoxBytes))
      out = this.gathered = gatherGrow(out, fill, size)
    }
    out.set(from === 0 && to === chunk.length ? chunk : new Uint8Array(chunk.buffer, chunk.byteOffset + from, n), fill)
    this.gatherFill = fill + n
  }

  /**
   * Reads a 2-byte length prefix at `pos` (its first byte may have come at
   * the end of the previous chunk). Leaves the new position in `this.pos`;
   * returns -1 when only the first byte was there.
   */
  private lengthPrefix(buf: Uint8Array, pos: number): number {
    if (this.prefixHigh >= 0) {
      const n = (this.prefixHigh << 8) | buf[pos]!
      this.prefixHigh = -1
      this.pos = pos + 1
      return n
    }
    if (pos + 1 < buf.length) {
      this.pos = pos + 2
      return (buf[pos]! << 8) | buf[pos + 1]!
    }
    this.prefixHigh = buf[pos]!
    this.pos = pos + 1
    return -1
  }

  private fail(error: DecodeError): never {
    this.failure = error
    throw error
  }

  /**
   * Every byte pushed but not part of a complete box: the unfinished box's
   * bytes from its start, then everything after. Resets the decoder to the
   * start of a box with nothing buffered.
   */
  takeLeftover(): Uint8Array {
    const boundary = this.inBox ? this.boxStart : this.base + this.pos
    const parts = this.gatherFill > 0 ? [this.gathered.subarray(0, this.gatherFill)] : []
    const from = this.inBox ? this.boxPos : this.pos
    if (from < this.buf.length) parts.push(this.buf.subarray(from))
    parts.push(...this.queue)
    const leftover = concatBytes(parts)
    // Offsets go on counting from the boundary: the bytes handed back were never consumed.
    this.base = boundary
    this.buf = EMPTY
    this.pos = 0
    this.boxPos = 0
    this.queue.length = 0
    this.gathered = EMPTY
    this.gatherFill = 0
    this.inBox = false
    this.keys = []
    this.spans = []
    this.index = undefined
    this.state = State.KeyLength
    this.prefixHigh = -1
    this.keyFill = 0
    return leftover
  }

  /** Declares the end of the stream: throws {@link IncompleteBox} when it ends inside a box. */
  end(): void {
    if (this.failure !== undefined) throw this.failure
    if (this.pos < this.buf.length || this.queue.length > 0) {
      // Bytes not yet walked: walk them; a complete box here is a caller bug, say so loudly.
      if (this.next() !== undefined) throw new Error("BoxDecoder.end called with undelivered boxes")
    }
    if (this.inBox) {
      this.fail(
        new IncompleteBox({
          boxOffset: this.boxStart,
          endOffset: this.base + this.pos,
          expecting: expecting[this.state]
        })
      )
    }
  }
}

// ---------------------------------------------------------------------------
// Encoding
// ---------------------------------------------------------------------------

/** Encoded size of `box`, validating it on the way. Throws {@link EncodeError}. */
export const encodedLength = (box: AmpBox): number => {
  const keys = box._keys
  let n = 2
  for (let i = 0; i < keys.length; i++) {
    const k = keys[i]!
    const kl = k.length
    if (kl === 0 || kl > MAX_KEY_LENGTH) throw new TooLong({ isKey: true, isLocal: true, key: k, length: kl })
    const vl = box.valueLength(i)
    if (vl > MAX_VALUE_LENGTH) throw new TooLong({ isKey: false, isLocal: true, key: k, length: vl })
    for (let j = 0; j < kl; j++) if (k.charCodeAt(j) > 0xff) throw new InvalidKey({ key: k })
    n += 4 + kl + vl
  }
  return n
}

/** Writes a field's key length, key and value length at `at`; returns where the value goes. */
const writeHeader = (out: Uint8Array, at: number, k: string, vl: number): number => {
  const kl = k.length
  out[at] = 0
  out[at + 1] = kl
  at += 2
  for (let j = 0; j < kl; j++) out[at++] = k.charCodeAt(j)
  out[at] = vl >>> 8
  out[at + 1] = vl & 0xff
  return at + 2
}

/** Writes `box`, already validated by {@link encodedLength}, at `at` in `out`; returns the end offset. */
const writeBox = (box: AmpBox, out: Uint8Array, at: number): number => {
  const keys = box._keys
  for (let i = 0; i < keys.length; i++) {
    const vl = box.valueLength(i)
    at = writeHeader(out, at, keys[i]!, vl)
    box.copyValue(i, out, at)
    at += vl
  }
  out[at] = 0
  out[at + 1] = 0
  return at + 2
}

/** The wire bytes of one box, in one fresh buffer the caller owns. Throws {@link EncodeError}. */
export const encodeBox = (box: AmpBox): Uint8Array => {
  const out = allocUnsafe(encodedLength(box))
  writeBox(box, out, 0)
  return out
}

/** The wire bytes of several boxes, back to back, in one fresh buffer. Throws {@link EncodeError}. */
export const encodeBoxes = (boxes: Iterable<AmpBox>): Uint8Array => {
  const list = Array.isArray(boxes) ? (boxes as ReadonlyArray<AmpBox>) : [...boxes]
  let n = 0
  for (let i = 0; i < list.length; i++) n += encodedLength(list[i]!)
  const out = allocUnsafe(n)
  let at = 0
  for (let i = 0; i < list.length; i++) at = writeBox(list[i]!, out, at)
  return out
}

/**
 * Encodes one box at a time into a scratch buffer it reuses: no allocation
 * per box once the scratch is big enough.
 *
 * The bytes `encode` returns are only valid until the next call to `encode`
 * on the same encoder, which overwrites them (and may hand back the very
 * same `Uint8Array` object). Copy them, or finish with them (for instance
 * with a synchronous write that copies), before encoding the next box. For
 * bytes you keep, use {@link encodeBox}; for a socket, {@link BoxWriter}.
 *
 * @since 0.1.0
 */
export class BoxEncoder {
  private scratch: Uint8Array
  private last: Uint8Array = EMPTY

  /** `initialBytes`: the scratch buffer's first size (it grows to the largest box seen). Default 64 KiB. */
  constructor(initialBytes = 64 * 1024) {
    this.scratch = allocUnsafeSlow(Math.max(2, initialBytes))
  }

  /**
   * The wire bytes of `box`: a view of the scratch buffer, valid until the
   * next `encode`. Throws {@link EncodeError} (leaving the last result intact).
   */
  encode(box: AmpBox): Uint8Array {
    const n = encodedLength(box)
    let scratch = this.scratch
    if (n > scratch.length) scratch = this.scratch = allocUnsafeSlow(Math.max(n, 2 * scratch.length))
    writeBox(box, scratch, 0)
    let last = this.last
    // A view costs more than encoding a small box: keep the last one while it fits.
    if (last.length !== n || last.buffer !== scratch.buffer) {
      last = this.last = new Uint8Array(scratch.buffer, scratch.byteOffset, n)
    }
    return last
  }
}

/** The slabs of every {@link BoxWriter} made without `slabBytes`. */
const sharedWritePool = new SlabPool(16 * 1024)

/** What {@link BoxWriter} accepts. */
export interface BoxWriterOptions {
  /**
   * Given, the writer has slabs of its own of this size. By default every
   * writer in the process carves from one shared pool of 16 KiB slabs, so
   * that a connection holds no slab while it is not writing.
   */
  readonly slabBytes?: number
  /**
   * Values of at least this many bytes are not copied: {@link BoxWriter.take}
   * hands out the value's own memory as a chunk of its own. Default 8 KiB:
   * over loopback TCP (chunks written corked), not copying already paid at
   * 8 KiB and was even at 4 KiB.
   */
  readonly largeValueBytes?: number
}

/**
 * The encoder of a connection's write path: boxes in, chunks to write out,
 * with no allocation per box and no copy of large values.
 *
 * ```ts
 * const writer = new BoxWriter()
 * writer.add(box1) // throws EncodeError for a bad box, appending nothing
 * writer.add(box2)
 * socket.cork(); for (const chunk of writer.take()) socket.write(chunk); socket.uncork()
 * ```
 *
 * Boxes are written back to back into a slab and handed out by `take` as
 * views of it; later boxes go on in the same slab after the part handed out,
 * which is never written again (like Node's `Buffer` pool), and a full slab
 * is replaced by a fresh one. The slabs are shared by every writer unless
 * `slabBytes` is given: one per connection would cost each idle connection
 * a whole slab (64 KiB each, measured with 1000 connections making a call
 * a second). A value of `largeValueBytes` or more is not copied: `take`
 * returns that value itself as a chunk, between the chunks holding the
 * bytes around it. So do not change a value's bytes until
 * the chunks are written (boxes are meant to be immutable anyway).
 *
 * Chunks are views of memory the writer never touches again once taken: they
 * can be queued, written later or kept.
 *
 * @since 0.1.0
 */
export class BoxWriter {
  private readonly pool: SlabPool
  private readonly largeValueBytes: number
  /** The pool's slab while boxes are pending; `slab[start, at)`: written and not yet handed out. */
  private slab: Uint8Array = EMPTY
  private start = 0
  private at = 0
  /** Chunks sealed since the last `take`, in order. */
  private chunks: Array<Uint8Array> = []
  private pending = 0

  constructor(options?: BoxWriterOptions) {
    this.pool = options?.slabBytes === undefined ? sharedWritePool : new SlabPool(Math.max(512, options.slabBytes))
    this.largeValueBytes = Math.max(1, options?.largeValueBytes ?? 8 * 1024)
  }

  /** Bytes appended and not yet taken. */
  get size(): number {
    return this.pending
  }

  /**
   * Validates `box` (throws {@link EncodeError}: {@link TooLong} or
   * {@link InvalidKey}, appending nothing) and appends its bytes. Returns
   * its encoded length.
   */
  add(box: AmpBox): number {
    const n = encodedLength(box)
    const large = this.largeValueBytes
    const keys = box._keys
    // What goes into the slab: everything but the large values.
    let copied = n
    if (n - 6 >= large) {
      for (let i = 0; i < keys.length; i++) {
        const vl = box.valueLength(i)
        if (vl >= large) copied -= vl
      }
    }
    const pool = this.pool
    if (pool.slab !== this.slab || pool.at !== this.at || pool.slab.length - pool.at < copied) {
      // Another writer carved after us, or the slab is short: go on where the pool is.
      this.seal()
      pool.reserve(copied)
      this.slab = pool.slab
      this.start = this.at = pool.at
    }
    const slab = this.slab
    let at = this.at
    for (let i = 0; i < keys.length; i++) {
      const vl = box.valueLength(i)
      at = writeHeader(slab, at, keys[i]!, vl)
      if (vl >= large) {
        this.at = at
        this.seal()
        this.chunks.push(box.valueAt(i))
      } else {
        box.copyValue(i, slab, at)
        at += vl
      }
    }
    slab[at] = 0
    slab[at + 1] = 0
    this.at = pool.at = at + 2
    this.pending += n
    return n
  }

  /**
   * Everything appended since the last `take`, as chunks to write in order
   * (several boxes share a chunk). The writer never touches their memory
   * again. An empty array when nothing was appended.
   */
  take(): Array<Uint8Array> {
    this.seal()
    // Hold no slab between writes; the next add goes on where the pool is.
    this.slab = EMPTY
    this.start = this.at = 0
    const out = this.chunks
    this.chunks = []
    this.pending = 0
    return out
  }

  /** Moves `slab[start, at)` to the chunks. */
  private seal(): void {
    if (this.at > this.start) {
      this.chunks.push(new Uint8Array(this.slab.buffer, this.slab.byteOffset + this.start, this.at - this.start))
      this.start = this.at
    }
  }
}

/** {@link encodeBox} as an Effect with a typed error. */
export const encode = (box: AmpBox): Effect.Effect<Uint8Array, EncodeError> =>
  attempt(() => encodeBox(box), isEncodeError)

// ---------------------------------------------------------------------------
// Whole inputs and Streams
// ---------------------------------------------------------------------------

/**
 * Every box in `bytes` (Twisted's `parseString`). Throws {@link DecodeError};
 * a trailing partial box is an {@link IncompleteBox}.
 */
export const parse = (bytes: Uint8Array, limits?: DecoderLimits): Array<AmpBox> => {
  const d = new BoxDecoder(limits)
  d.push(bytes)
  const out: Array<AmpBox> = []
  for (let b = d.next(); b !== undefined; b = d.next()) out.push(b)
  d.end()
  return out
}

/** {@link parse} as an Effect with a typed error. */
export const parseEffect = (bytes: Uint8Array, limits?: DecoderLimits): Effect.Effect<Array<AmpBox>, DecodeError> =>
  attempt(() => parse(bytes, limits), isDecodeError)

/**
 * Every box in a file (Twisted's `parse`), read through `@effect/platform`'s `FileSystem`.
 * That module is loaded on the first call, not with the codec: with what it
 * imports it is about 6 MiB of heap and 13 MiB of RSS in every process,
 * which a connection never uses.
 */
export const parseFile = (
  path: string,
  limits?: DecoderLimits
): Effect.Effect<Array<AmpBox>, DecodeError | PlatformError, FileSystem.FileSystem> =>
  Effect.flatMap(Effect.promise(() => import("@effect/platform/FileSystem")), ({ FileSystem }) =>
    Effect.flatMap(FileSystem, (fs) => fs.stream(path).pipe(decode(limits), Stream.runCollect, Effect.map(Chunk.toArray))))

/**
 * The decoder as a `Channel`: chunks of bytes in, boxes out. Boxes before a bad
 * byte are emitted before the failure.
 */
export const decodeChannel = <E>(
  limits?: DecoderLimits
): Channel.Channel<Chunk.Chunk<AmpBox>, Chunk.Chunk<Uint8Array>, E | DecodeError, E, void, unknown> =>
  Channel.suspend(() => {
    const decoder = new BoxDecoder(limits)
    const loop: Channel.Channel<Chunk.Chunk<AmpBox>, Chunk.Chunk<Uint8Array>, E | DecodeError, E, void, unknown> =
      Channel.readWithCause({
        onInput: (input: Chunk.Chunk<Uint8Array>) => {
          const out: Array<AmpBox> = []
          let error: DecodeError | undefined
          try {
            for (const bytes of input) {
              decoder.push(bytes)
              for (let b = decoder.next(); b !== undefined; b = decoder.next()) out.push(b)
            }
          } catch (e) {
            if (!isDecodeError(e)) throw e
            error = e
          }
          const emit = out.length > 0 ? Channel.write(Chunk.unsafeFromArray(out)) : Channel.void
          return error === undefined ? Channel.zipRight(emit, loop) : Channel.zipRight(emit, Channel.fail(error))
        },
        onFailure: (cause) => Channel.failCause(cause),
        onDone: () => {
          try {
            decoder.end()
          } catch (e) {
            if (isDecodeError(e)) return Channel.fail(e)
            throw e
          }
          return Channel.void
        }
      })
    return loop
  })

/**
 * Decodes a byte `Stream` into a box `Stream`.
 *
 * @example
 * socketBytes.pipe(BoxCodec.decode(), Stream.runForEach(handle))
 */
export const decode = (limits?: DecoderLimits) =>
<E, R>(self: Stream.Stream<Uint8Array, E, R>): Stream.Stream<AmpBox, E | DecodeError, R> =>
  Stream.pipeThroughChannelOrFail(self, decodeChannel<E>(limits))

/** Encodes a box `Stream` into a byte `Stream`, one buffer per chunk of boxes. */
export const encodeStream = <E, R>(self: Stream.Stream<AmpBox, E, R>): Stream.Stream<Uint8Array, E | EncodeError, R> =>
  Stream.mapChunksEffect(self, (boxes) =>
    attempt(() => Chunk.of(encodeBoxes(boxes)), isEncodeError))

/** Re-exported so `BoxCodec` users need not import `AmpBox` for the type. */
export type { AmpBox }
