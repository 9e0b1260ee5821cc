/**
 * Driving the real `effect-amp` command as a child process, and a recording
 * relay that keeps every byte each way, for the command's tests.
 */
import { spawn, spawnSync } from "node:child_process"
import * as net from "node:net"
import * as path from "node:path"
import * as readline from "node:readline"
import * as Effect from "effect/Effect"
import { spawnScoped } from "../support/child.js"
import type * as Scope from "effect/Scope"

export const root = path.join(import.meta.dirname, "..", "..")
export const main = path.join(root, "src", "cli", "main.ts")
export const certs = path.join(root, "test", "certs")
export const fixtures = path.join(import.meta.dirname, "fixtures")
export const PEER = path.join(root, "test", "interop", "peers", "amp_peer.py")

/** Runs `effect-amp ARGS` to completion. */
export const run = (args: ReadonlyArray<string>, input?: string | Uint8Array, env?: NodeJS.ProcessEnv) => {
  const r = spawnSync(process.execPath, ["--import", "tsx", main, ...args], {
    cwd: root,
    timeout: 120_000,
    maxBuffer: 256 * 1024 * 1024,
    ...(input !== undefined ? { input } : {}),
    ...(env !== undefined ? { env: { ...process.env, ...env } } : {})
  })
  return { code: r.status, stdout: r.stdout.toString("utf8"), bytes: new Uint8Array(r.stdout), stderr: r.stderr.toString("utf8") }
}

/** `effect-amp ARGS` with `input` on stdin, without blocking the test's event loop (a relay or server may live in it). */
export const runAsync = (args: ReadonlyArray<string>, input = "") =>
  Effect.async<{ code: number | null; stdout: string; stderr: string }>((resume) => {
    const c = spawn(process.execPath, ["--import", "tsx", main, ...args], { cwd: root })
    let stdout = ""
    let stderr = ""
    c.stdout.on("data", (d) => (stdout += String(d)))
    c.stderr.on("data", (d) => (stderr += String(d)))
    c.on("close", (code) => resume(Effect.succeed({ code, stdout, stderr })))
    c.stdin.end(input)
  })

/** A long-running `effect-amp` child: its stdout lines and stderr as they come. */
export interface Running {
  /** The first stdout line (`listening on …`). */
  readonly first: string
  /** The address after `listening on `. */
  readonly address: string
  /** Stdout lines after the first, as printed so far. */
  readonly lines: ReadonlyArray<string>
  readonly stderr: () => string
  /** Waits (bounded) until `ready` holds of the lines (checked on every stdout line and stderr write). */
  readonly until: (ready: (lines: ReadonlyArray<string>) => boolean, what: string) => Effect.Effect<void, Error>
  readonly kill: (signal: NodeJS.Signals) => void
  readonly exited: Effect.Effect<number | null>
}

/** Starts `effect-amp ARGS`, waits for its first line; killed when the scope closes. */
export const start = (args: ReadonlyArray<string>): Effect.Effect<Running, Error, Scope.Scope> =>
  Effect.gen(function*() {
    const child = yield* spawnScoped(() => spawn(process.execPath, ["--import", "tsx", main, ...args], { cwd: root }))
    let stderr = ""
    const lines: Array<string> = []
    let first: string | undefined
    const waiters = new Set<() => void>()
    child.stderr.on("data", (d) => {
      stderr += String(d)
      waiters.forEach((w) => w())
    })
    readline.createInterface({ input: child.stdout }).on("line", (l) => {
      if (first === undefined) first = l
      else lines.push(l)
      waiters.forEach((w) => w())
    })
    child.on("exit", () => waiters.forEach((w) => w()))
    const until = (ready: () => boolean, what: string, seconds = 60) =>
      Effect.async<void>((resume) => {
        const check = () => {
          if (ready() || child.exitCode !== null) {
            waiters.delete(check)
            resume(Effect.void)
          }
        }
        waiters.add(check)
        check()
        return Effect.sync(() => waiters.delete(check))
      }).pipe(
        Effect.timeoutFail({ duration: `${seconds} seconds`, onTimeout: () => new Error(`effect-amp ${args.join(" ")}: ${what}\nstdout: ${lines.join("\n")}\nstderr: ${stderr}`) }),
        Effect.flatMap(() => (ready() ? Effect.void : Effect.fail(new Error(`effect-amp ${args.join(" ")} exited (${child.exitCode}) before ${what}\nstderr: ${stderr}`))))
      )
    yield* until(() => first !== undefined, "its first line")
    const exited = Effect.async<number | null>((resume) => {
      if (child.exitCode !== null) return resume(Effect.succeed(child.exitCode))
      child.once("exit", (code) => resume(Effect.succeed(code)))
    })
    return {
      first: first!,
      address: first!.replace(/^listening on /, ""),
      lines,
      stderr: () => stderr,
      until: (ready, what) => until(() => ready(lines), what),
      kill: (signal) => void child.kill(signal),
      exited
    } satisfies Running
  })

/** One connection through a {@link recorder}: every byte each way, and whether both sides are done. */
export interface Recorded {
  readonly c2s: Array<Buffer>
  readonly s2c: Array<Buffer>
  closed: boolean
}

export const bytesOf = (chunks: ReadonlyArray<Buffer>): Buffer => Buffer.concat(chunks)

/**
 * A relay in front of `port` that forwards without looking and records every
 * byte each way, per connection, in order of arrival. Closed with the scope.
 */
export const recorder = (port: number) =>
  Effect.gen(function*() {
    const connections: Array<Recorded> = []
    const server = net.createServer({ allowHalfOpen: true }, (a) => {
      const rec: Recorded = { c2s: [], s2c: [], closed: false }
      connections.push(rec)
      const b = net.connect({ host: "127.0.0.1", port, allowHalfOpen: true })
      let open = 2
      const done = () => {
        if (--open === 0) rec.closed = true
      }
      for (const [from, to, into] of [[a, b, rec.c2s], [b, a, rec.s2c]] as const) {
        from.on("data", (c: Buffer) => {
          into.push(c)
          to.write(c)
        })
        from.on("end", () => to.end())
        from.on("error", () => to.destroy())
        from.on("close", done)
      }
    })
    yield* Effect.acquireRelease(
      Effect.async<void>((resume) => void server.listen(0, "127.0.0.1", () => resume(Effect.void))),
      () => Effect.sync(() => server.close())
    )
    const waitClosed = (n: number) =>
      Effect.gen(function*() {
        while (connections.length < n || !connections.every((c) => c.closed)) yield* Effect.sleep("20 millis")
      }).pipe(Effect.timeoutFail({ duration: "30 seconds", onTimeout: () => new Error(`recorder: ${connections.length} connections, not all closed`) }))
    return { port: (server.address() as net.AddressInfo).port, connections, waitClosed }
  })
