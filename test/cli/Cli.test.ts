/**
 * The `effect-amp` command, driven as a child process: every subcommand and
 * every exit code, against our server and a live Twisted one; and the
 * runnable examples, so they cannot rot.
 */
import { describe, expect, it } from "@effect/vitest"
import { spawn, spawnSync } from "node:child_process"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import * as readline from "node:readline"
import * as Effect from "effect/Effect"
import { requireTwisted, startPeer } from "../support/twisted.js"
import { certs, PEER, root, run, start } from "./support.js"

/** Starts `effect-amp serve ARGS`; its first line, and the running child. */
const startServe = (args: ReadonlyArray<string>) => Effect.map(start(["serve", ...args]), (child) => ({ child, first: child.first }))

describe("effect-amp", () => {
  it("--help works for the command and every subcommand", () => {
    for (const args of [["--help"], ["serve", "--help"], ["call", "--help"], ["tap", "--help"], ["decode", "--help"], ["encode", "--help"]]) {
      const r = run(args)
      expect(r.code).toBe(0)
      expect(r.stdout).toContain("effect-amp")
    }
  }, 120_000)

  it.scopedLive("serve prints its address first; call prints the answer as JSON (exit 0)", () =>
    Effect.gen(function*() {
      const { first } = yield* startServe(["--port", "0"])
      expect(first).toMatch(/^listening on tcp:127\.0\.0\.1:\d+$/)
      const target = first.replace("listening on ", "")
      const r = run(["call", target, "Sum", "a=13", "b=81"])
      expect(r).toMatchObject({ code: 0, stdout: '{"total":"94"}\n' })
      const port = target.split(":")[2]
      expect(run(["call", `tcp:host=127.0.0.1:port=${port}`, "Echo", "text=héllo"]).stdout).toBe('{"text":"héllo"}\n')
    }))

  it.scopedLive("an error answer goes to stderr as CODE: description (exit 1)", () =>
    Effect.gen(function*() {
      const { first } = yield* startServe(["--port", "0"])
      const target = first.replace("listening on ", "")
      expect(run(["call", target, "Divide", "numerator=1", "denominator=0"])).toMatchObject({
        code: 1,
        stderr: "ZERO_DIVISION: float division by zero\n"
      })
      expect(run(["call", target, "Nope"])).toMatchObject({ code: 1 })
    }))

  it("a connection failure says what failed (exit 2)", () => {
    const r = run(["call", "unix:/nonexistent/amp.sock", "Sum", "a=1", "b=2"])
    expect(r.code).toBe(2)
    expect(r.stderr).toContain("cannot connect to unix:/nonexistent/amp.sock")
    expect(run(["call", "nonsense", "Sum"]).code).toBe(2)
  }, 120_000)

  it.scopedLive("serve --unix, and SIGTERM closes everything and exits 0", () =>
    Effect.gen(function*() {
      const socketPath = path.join(fs.mkdtempSync(path.join(os.tmpdir(), "amp-cli-")), "amp.sock")
      const { child, first } = yield* startServe(["--unix", socketPath])
      expect(first).toBe(`listening on unix:${socketPath}`)
      expect(run(["call", `unix:${socketPath}`, "Sum", "a=1", "b=2"]).stdout).toBe('{"total":"3"}\n')
      child.kill("SIGTERM")
      expect(yield* child.exited).toBe(0)
      expect(fs.existsSync(socketPath)).toBe(false)
    }))

  it.scopedLive("serve --tls-cert --tls-key answers StartTLS; call --starttls --ca verifies it", () =>
    Effect.gen(function*() {
      const { first } = yield* startServe([
        "--port",
        "0",
        "--tls-cert",
        path.join(certs, "server.pem"),
        "--tls-key",
        path.join(certs, "server.key")
      ])
      const target = first.replace("listening on ", "")
      const r = run(["call", target, "Sum", "a=2", "b=2", "--starttls", "--ca", path.join(certs, "ca.pem")])
      expect(r).toMatchObject({ code: 0, stdout: '{"total":"4"}\n' })
      const rogue = run(["call", target, "Sum", "a=2", "b=2", "--starttls", "--ca", path.join(certs, "rogue-ca.pem")])
      expect(rogue.code).toBe(2)
      expect(rogue.stderr).toContain("TLS")
    }))

  it("decode prints every box as a JSON line; non-UTF-8 as base64", () => {
    const bytes = new Uint8Array([
      ...[0, 8, ...Buffer.from("_command"), 0, 3, ...Buffer.from("Sum")],
      ...[0, 1, 0xff, 0, 2, 0xfe, 0x00, 0, 0],
      ...[0, 1, 0x61, 0, 0, 0, 0]
    ])
    const r = run(["decode"], bytes)
    expect(r.code).toBe(0)
    expect(r.stdout).toBe('{"_command":"Sum","base64:/w==":{"base64":"/gA="}}\n{"a":""}\n')
  }, 120_000)

  it("decode of a truncated stream prints the complete boxes, then the offset (exit 1)", () => {
    const file = path.join(fs.mkdtempSync(path.join(os.tmpdir(), "amp-cli-")), "cut.bin")
    fs.writeFileSync(file, new Uint8Array([0, 1, 0x61, 0, 1, 0x31, 0, 0, 0, 1, 0x62]))
    const r = run(["decode", file])
    expect(r).toMatchObject({ code: 1, stdout: '{"a":"1"}\n' })
    expect(r.stderr).toContain("inside the box that starts at byte 8")
    const bad = run(["decode", "-"], new Uint8Array([0, 1, 0x61, 0, 0, 0, 0, 1, 0]))
    expect(bad).toMatchObject({ code: 1, stdout: '{"a":""}\n' })
    expect(bad.stderr).toContain("key length prefix 256 at byte 7")
  }, 120_000)

  it("decode reads a stream Twisted serialized", () => {
    requireTwisted()
    const r = spawnSync("/usr/bin/python3", ["-c", [
      "import sys; from twisted.protocols import amp",
      "sys.stdout.buffer.write(b''.join(amp.AmpBox(_command=b'Sum', _ask=b'1', a=b'13', b=b'81').serialize() for _ in range(3)))"
    ].join("\n")])
    const out = run(["decode"], r.stdout)
    expect(out.code).toBe(0)
    expect(out.stdout.trim().split("\n").map((l) => JSON.parse(l))).toEqual(Array(3).fill({ _ask: "1", _command: "Sum", a: "13", b: "81" }))
  }, 120_000)

  it.scopedLive("call against a Twisted server; a Twisted client against serve", () =>
    Effect.gen(function*() {
      const peer = yield* startPeer(PEER, ["--listen", "tcp:0"])
      expect(run(["call", `tcp:127.0.0.1:${peer.port}`, "Sum", "a=13", "b=81"]).stdout).toBe('{"total":"94"}\n')
      expect(run(["call", `tcp:127.0.0.1:${peer.port}`, "Divide", "numerator=1", "denominator=0"])).toMatchObject({
        code: 1,
        stderr: "ZERO_DIVISION: float division by zero\n"
      })
      const { first } = yield* startServe(["--port", "0"])
      const client = yield* startPeer(PEER, ["--connect", first.replace("listening on ", ""), "--script", "sum"])
      expect(JSON.parse(yield* client.nextLine)).toEqual({ total: 94 })
    }))

  it.scopedLive("the examples run: a client against the example server", () =>
    Effect.gen(function*() {
      const server = yield* Effect.acquireRelease(
        Effect.sync(() => spawn(process.execPath, ["--import", "tsx", path.join(root, "scripts/examples/server.ts"), "0"], { cwd: root })),
        (c) => Effect.sync(() => c.kill("SIGKILL"))
      )
      const first = yield* Effect.async<string>((resume) => {
        readline.createInterface({ input: server.stdout }).once("line", (l) => resume(Effect.succeed(l)))
      })
      const port = first.split(":").pop()!
      const r = spawnSync(process.execPath, ["--import", "tsx", path.join(root, "scripts/examples/client.ts"), port], {
        cwd: root,
        encoding: "utf8"
      })
      expect(r.status).toBe(0)
      expect(r.stdout).toBe("1 / 8 = 0.125\n1 / 0 failed: float division by zero\n")
    }))

  it.scopedLive("the examples run: the example module under serve --module, with the example client and call --module", () =>
    Effect.gen(function*() {
      const module = path.join(root, "scripts/examples/module.ts")
      const { first } = yield* startServe(["--port", "0", "--module", module])
      const target = first.replace("listening on ", "")
      const r = spawnSync(process.execPath, ["--import", "tsx", path.join(root, "scripts/examples/client.ts"), target.split(":").pop()!], {
        cwd: root,
        encoding: "utf8"
      })
      expect(r.stdout).toBe("1 / 8 = 0.125\n1 / 0 failed: float division by zero\n")
      expect(run(["call", "--module", module, target, "Divide", "numerator:=1", "denominator:=8"]).stdout).toBe('{"result":0.125}\n')
    }))
})
