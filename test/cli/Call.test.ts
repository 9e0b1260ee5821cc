/**
 * `effect-amp call` with typed arguments, `--json`, `--module` and
 * `--stdin` pipelines, driven as a child process against a live Twisted
 * server and against `serve --module`.
 */
import { describe, expect, it } from "@effect/vitest"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import * as Effect from "effect/Effect"
import { startPeer } from "../support/twisted.js"
import { fixtures, PEER, root, run, runAsync, start } from "./support.js"

const COMMANDS = path.join(root, "test", "interop", "commands.ts")
const SERVICE = path.join(fixtures, "service.ts")
const tmp = () => fs.mkdtempSync(path.join(os.tmpdir(), "amp-call-"))

const EDGE = [
  "i:=12345678901234567890123",
  "u=h\u00e9llo \u{1f40d}",
  "fl:=0.5",
  "b:=true",
  "d=1.50",
  "dt=2026-11-24T23:59:59.999999+05:45",
  "li:=[1,2,-3]",
  'lu:=["a","\u00e9",""]',
  'al:=[{"x":1,"y":"one"},{"x":2}]',
  'nested:=[{"inner":[{"z":1},{"z":2}]},{"inner":[]}]',
  "o:=7"
]

describe("effect-amp call", () => {
  it.scopedLive("typed arguments reach Twisted as its types; --module prints the answer typed", () =>
    Effect.gen(function*() {
      const peer = yield* startPeer(PEER, ["--listen", "tcp:0"])
      const target = `tcp:127.0.0.1:${peer.port}`
      const blob = path.join(tmp(), "blob.bin")
      fs.writeFileSync(blob, Buffer.from([0, 1, 2, 0xff, 0xfe]))
      const typed = run(["call", "--module", COMMANDS, target, "EchoAll", `s@${blob}`, ...EDGE])
      expect(typed.stderr).toBe("")
      expect(JSON.parse(typed.stdout)).toEqual({
        i: 12345678901234567890123,
        s: { base64: "AAEC//4=" },
        u: "h\u00e9llo \u{1f40d}",
        fl: 0.5,
        b: true,
        d: "1.50",
        dt: "2026-11-24T23:59:59.999999+05:45",
        li: [1, 2, -3],
        lu: ["a", "\u00e9", ""],
        al: [{ x: 1, y: "one" }, { x: 2 }],
        nested: [{ inner: [{ z: 1 }, { z: 2 }] }, { inner: [] }],
        o: 7
      })
      // The integer's digits are exact on the wire and in the output (beyond 2^53).
      expect(typed.stdout).toContain('"i":12345678901234567890123,')
      // Bytes as base64, and the same without a module: values as decode prints them.
      const raw = run(["call", target, "EchoAll", 's:={"base64":"AAEC//4="}', ...EDGE])
      expect(raw.code).toBe(0)
      expect(JSON.parse(raw.stdout)).toMatchObject({ s: { base64: "AAEC//4=" }, i: "12345678901234567890123", b: "True", fl: "0.5" })
      // --json wraps answers and errors alike.
      expect(run(["call", "--json", target, "Sum", "a:=1", "b:=2"]).stdout).toBe('{"ok":true,"answer":{"total":"3"}}\n')
      expect(run(["call", "--json", target, "Divide", "numerator:=1", "denominator:=0"])).toMatchObject({
        code: 1,
        stdout: '{"ok":false,"error":{"code":"ZERO_DIVISION","description":"float division by zero"}}\n'
      })
    }), { timeout: 120_000 })

  it.scopedLive("says which argument is wrong: --module checks before sending; UNKNOWN says what it may mean", () =>
    Effect.gen(function*() {
      const peer = yield* startPeer(PEER, ["--listen", "tcp:0"])
      const target = `tcp:127.0.0.1:${peer.port}`
      const checked = run(["call", "--module", COMMANDS, target, "Sum", "a=x", "b=1"])
      expect(checked.code).toBe(2)
      expect(checked.stderr).toContain('Sum\'s argument "a" is Integer')
      expect(checked.stderr).toContain('"x"')
      expect(run(["call", "--module", COMMANDS, target, "Sum", "a=1"]).stderr).toContain('Sum needs the argument "b" (Integer)')
      expect(run(["call", "--module", COMMANDS, target, "Sum", "a=1", "b=2", "c=3"]).stderr).toContain('Sum has no argument "c"')
      expect(run(["call", "--module", COMMANDS, target, "Nope"]).stderr).toContain('the module defines no command "Nope"')
      const unknown = run(["call", target, "Sum", "a=x", "b=1"])
      expect(unknown.code).toBe(1)
      expect(unknown.stderr).toMatch(/^UNKNOWN: .*an argument does not parse/)
    }), { timeout: 120_000 })

  it("input AMP cannot carry is refused before connecting, with what and where", () => {
    // Nothing listens on port 1: each message comes from the input check, before any connection.
    const target = "tcp:127.0.0.1:1"
    const key = run(["call", target, "Sum", `${"k".repeat(256)}=1`])
    expect(key.code).toBe(2)
    expect(key.stderr).toContain("is 256 bytes; AMP keys are at most 255 bytes")
    const big = path.join(tmp(), "big.bin")
    fs.writeFileSync(big, Buffer.alloc(65536, 1))
    const value = run(["call", target, "Sum", `a@${big}`])
    expect(value.code).toBe(2)
    expect(value.stderr).toContain("the value is 65536 bytes; AMP values are at most 65535 bytes")
    fs.writeFileSync(big, Buffer.alloc(65535, 1))
    // 65,535 is allowed: this one fails only at the connection.
    expect(run(["call", target, "Sum", `a@${big}`]).stderr).toContain("cannot connect")
    const surrogate = run(["call", target, "Echo", 'text:="\\ud800x"'])
    expect(surrogate.code).toBe(2)
    expect(surrogate.stderr).toContain("lone surrogate U+D800 at index 0")
    const list = run(["call", target, "X", `li:=["${"a".repeat(65536)}"]`])
    expect(list.stderr).toContain('argument "li:=[\\"aaaa')
    expect(list.stderr).toContain("[0]: the value is 65536 bytes")
    expect(run(["call", target, "X", "a:=nul"]).stderr).toContain("after := comes JSON")
    expect(run(["call", target, "X", "a:=null"]).stderr).toContain("null has no AMP form")
    expect(run(["call", target, "X", "novalue"]).stderr).toContain("expected key=text, key:=JSON or key@FILE")
    expect(run(["call", target, "X", "a@/nonexistent/file"]).stderr).toContain("cannot read /nonexistent/file")
  }, 120_000)

  it.scopedLive("--stdin pipelines 1000 commands to Twisted on one connection, one answer line each, in order", () =>
    Effect.gen(function*() {
      const peer = yield* startPeer(PEER, ["--listen", "tcp:0"])
      const lines = Array.from({ length: 1000 }, (_, i) =>
        i === 500 ? '{"_command":"Divide","numerator":1,"denominator":0}' : JSON.stringify({ _command: "Sum", a: i, b: 1 }))
      const r = yield* runAsync(["call", "--stdin", `tcp:127.0.0.1:${peer.port}`], lines.join("\n") + "\n")
      const out = r.stdout.trimEnd().split("\n").map((l) => JSON.parse(l))
      expect(out).toHaveLength(1000)
      out.forEach((o, i) => {
        if (i === 500) expect(o).toEqual({ ok: false, error: { code: "ZERO_DIVISION", description: "float division by zero" } })
        else expect(o).toEqual({ ok: true, answer: { total: String(i + 1) } })
      })
      expect(r.code).toBe(1)
      expect(r.stderr).toContain("1 of 1000 lines failed")
    }), { timeout: 120_000 })

  it.scopedLive("--stdin really pipelines: 1000 Gate calls, each answered only once 200 are waiting at once", () =>
    Effect.gen(function*() {
      const server = yield* start(["serve", "--port", "0", "--module", SERVICE])
      // 200: under the server's 256 commands running per connection. A client that waits for each answer gets none.
      const lines = Array.from({ length: 1000 }, (_, i) => JSON.stringify({ _command: "Gate", id: i, n: 200 }))
      // A bad line in the middle gets its error line in its place; the rest go on.
      lines.splice(10, 0, '{"_command": "Gate", "id": }')
      const r = yield* runAsync(["call", "--stdin", "--module", SERVICE, server.address], lines.join("\n"))
      const out = r.stdout.trimEnd().split("\n").map((l) => JSON.parse(l))
      expect(out).toHaveLength(1001)
      expect(out[10]).toMatchObject({ ok: false, error: { code: "BAD_INPUT" } })
      expect(out[10].error.description).toMatch(/^line 11: not JSON/)
      expect([...out.slice(0, 10), ...out.slice(11)]).toEqual(Array.from({ length: 1000 }, (_, i) => ({ ok: true, answer: { id: i } })))
      expect(r.code).toBe(1)
    }), { timeout: 120_000 })
})
