/**
 * `effect-amp encode` and `decode` as child processes: what encode writes
 * is read by Twisted's own parser as the boxes meant; decode then encode
 * gives back the same bytes (Twisted-serialized ones included), and encode
 * then decode the same lines; bad input says what and where.
 */
import { describe, expect, it } from "@effect/vitest"
import * as path from "node:path"
import { spawnSync } from "node:child_process"
import { PYTHON, requireTwisted, runPython } from "../support/twisted.js"
import { fixtures, run } from "./support.js"

const PARSE = path.join(fixtures, "parse_boxes.py")
const b64 = (s: string | Uint8Array) => Buffer.from(s as string, typeof s === "string" ? "utf8" : undefined).toString("base64")

const LINES = [
  '{"_command":"Sum","_ask":"1","a":"13","b":"81"}',
  // Keys JSON.parse would reorder, a non-UTF-8 key, a UTF-8 key that looks like base64, binary and empty values.
  '{"2":"two","1":"one","base64:/w==":{"base64":"AP8="},"base64:YmFzZTY0Onk=":"literal","empty":"","é":"ü \u{1f40d}"}',
  `{"big":"${"x".repeat(65535)}"}`,
  '{"_answer":"1","total":"94"}'
]

describe("effect-amp encode / decode", () => {
  it("encode writes the bytes Twisted's parseString reads as those boxes", () => {
    const r = run(["encode"], LINES.join("\n") + "\n")
    expect(r.stderr).toBe("")
    expect(r.code).toBe(0)
    const boxes = JSON.parse(runPython(PARSE, [], r.bytes)) as Array<Array<[string, string]>>
    expect(boxes).toHaveLength(4)
    expect(boxes[0]).toEqual([["_command", "Sum"], ["_ask", "1"], ["a", "13"], ["b", "81"]].map(([k, v]) => [b64(k!), b64(v!)]))
    expect(boxes[1]).toEqual([
      [b64("2"), b64("two")],
      [b64("1"), b64("one")],
      [b64(new Uint8Array([0xff])), b64(new Uint8Array([0, 0xff]))],
      [b64("base64:y"), b64("literal")],
      [b64("empty"), ""],
      [b64("é"), b64("ü \u{1f40d}")]
    ])
    expect(Buffer.from(boxes[2]![0]![1], "base64").length).toBe(65535)
  }, 120_000)

  it("decode then encode gives back the same bytes, and encode then decode the same lines", () => {
    const encoded = run(["encode"], LINES.join("\n"))
    const decoded = run(["decode"], encoded.bytes)
    expect(decoded.stdout).toBe(LINES.join("\n") + "\n")
    expect(Buffer.from(run(["encode"], decoded.stdout).bytes).equals(Buffer.from(encoded.bytes))).toBe(true)
  }, 120_000)

  it("bytes Twisted serialized survive decode then encode unchanged", () => {
    const script = [
      "import sys, os; from twisted.protocols import amp",
      "boxes = [amp.AmpBox(_command=b'Sum', _ask=b'1', a=b'13'), amp.AmpBox({b'\\xff\\x00': bytes(range(256)), b'9': b'', b'10': b'\\xc3\\xa9'})]",
      "sys.stdout.buffer.write(b''.join(b.serialize() for b in boxes * 50))"
    ].join("\n")
    const bytes = runPythonInline(script)
    const decoded = run(["decode"], bytes)
    expect(decoded.code).toBe(0)
    const again = run(["encode"], decoded.stdout)
    expect(again.code).toBe(0)
    expect(Buffer.from(again.bytes).equals(Buffer.from(bytes))).toBe(true)
  }, 120_000)

  it("bad input stops at the line that is wrong, after writing every box before it (exit 1)", () => {
    const cases: ReadonlyArray<readonly [string, string]> = [
      ['{"a":"1"}\n{"b":', "line 2: not JSON"],
      ['{"a":"1"}\n{"a":1}', 'line 2, key "a": a value is a string or {"base64": "…"}, not a number'],
      ['{"a":"1"}\n["a"]', "line 2: a box is a JSON object, not an array"],
      [`{"a":"1"}\n{"${"k".repeat(256)}":""}`, "is 256 bytes; AMP keys are at most 255 bytes"],
      [`{"a":"1"}\n{"v":"${"é".repeat(32768)}"}`, 'line 2, key "v": the value is 65536 bytes; AMP values are at most 65535 bytes'],
      ['{"a":"1"}\n{"u":"\\udc00"}', "lone surrogate U+DC00"],
      ['{"a":"1"}\n{"a":"1","a":"2"}', 'key "a" appears twice'],
      ['{"a":"1"}\n{"a":{"base64":"not base64!"}}', "is not base64"],
      ['{"a":"1"}\n{"":"x"}', "an AMP key cannot be empty"]
    ]
    for (const [input, message] of cases) {
      const r = run(["encode"], input)
      expect(r.code, input.slice(0, 40)).toBe(1)
      expect(r.stderr, input.slice(0, 40)).toContain(message)
      expect(Buffer.from(r.bytes).equals(Buffer.from([0, 1, 0x61, 0, 1, 0x31, 0, 0]))).toBe(true)
    }
  }, 120_000)
})

/** Runs inline Python (with Twisted) and returns its stdout bytes. */
const runPythonInline = (script: string): Uint8Array => {
  requireTwisted()
  const r = spawnSync(PYTHON, ["-c", script])
  if (r.status !== 0) throw new Error(String(r.stderr))
  return new Uint8Array(r.stdout)
}
