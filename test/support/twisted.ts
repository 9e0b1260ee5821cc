/**
 * Live Twisted peers for tests. Twisted comes from Debian's python3-twisted,
 * run with /usr/bin/python3 (the first python3 on PATH may lack it). A test
 * that needs Twisted fails loudly when it is missing, with the line that
 * installs it; it never skips.
 */
import { spawn, spawnSync } from "node:child_process"
import * as path from "node:path"
import * as readline from "node:readline"
import * as Effect from "effect/Effect"

export const PYTHON = process.env.AMP_PYTHON ?? "/usr/bin/python3"
export const INSTALL_LINE = "apt-get update && apt-get install -y python3-twisted"
export const supportDir = import.meta.dirname

let version: string | undefined

/** Twisted's version; throws with the install line when Twisted cannot be imported. */
export const requireTwisted = (): string => {
  if (version !== undefined) return version
  const r = spawnSync(PYTHON, ["-c", "import twisted; print(twisted.__version__)"], { encoding: "utf8" })
  if (r.status !== 0) {
    throw new Error(
      `These tests need a live Twisted peer, and ${PYTHON} cannot import twisted.\n` +
        `Install it with: ${INSTALL_LINE}\n(then peers run with /usr/bin/python3; set AMP_PYTHON to use another interpreter)\n${r.stderr ?? ""}`
    )
  }
  version = r.stdout.trim()
  return version
}

/** Runs a Python script (relative to test/support or absolute) to completion. */
export const runPython = (script: string, args: ReadonlyArray<string> = [], input?: string) => {
  requireTwisted()
  const r = spawnSync(PYTHON, [path.resolve(supportDir, script), ...args], {
    encoding: "utf8",
    maxBuffer: 256 * 1024 * 1024,
    ...(input !== undefined ? { input } : {})
  })
  if (r.status !== 0) throw new Error(`${script} failed (${r.status}):\n${r.stderr}`)
  return r.stdout
}

/** A running Python peer. */
export interface Peer {
  /** The first line's address: `{ tcp: port }` or `{ unix: path }`. */
  readonly port: number
  readonly path: string
  /** Lines printed after the first. */
  readonly lines: Array<string>
  /** Waits for the next printed line. */
  readonly nextLine: Effect.Effect<string>
  readonly pid: number
}

/**
 * Starts a peer script that prints `listening tcp HOST PORT` or
 * `listening unix PATH` first; kills it when the scope closes.
 */
export const startPeer = (script: string, args: ReadonlyArray<string> = []) =>
  Effect.gen(function*() {
    requireTwisted()
    const child = yield* Effect.acquireRelease(
      Effect.sync(() => spawn(PYTHON, [path.resolve(supportDir, script), ...args], { stdio: ["pipe", "pipe", "pipe"] })),
      (c) =>
        Effect.async<void>((resume) => {
          if (c.exitCode !== null || c.signalCode !== null) return resume(Effect.void)
          c.once("exit", () => resume(Effect.void))
          c.kill("SIGKILL")
        })
    )
    let stderr = ""
    child.stderr.on("data", (d) => (stderr += String(d)))
    const lines: Array<string> = []
    const waiters: Array<(line: string) => void> = []
    readline.createInterface({ input: child.stdout }).on("line", (line) => {
      const w = waiters.shift()
      if (w) w(line)
      else lines.push(line)
    })
    const nextLine = Effect.async<string>((resume) => {
      const l = lines.shift()
      if (l !== undefined) return resume(Effect.succeed(l))
      waiters.push((line) => resume(Effect.succeed(line)))
    })
    const first = yield* nextLine.pipe(
      Effect.timeoutFail({ duration: "20 seconds", onTimeout: () => new Error(`${script} did not start:\n${stderr}`) })
    )
    const parts = first.split(" ")
    if (parts[0] !== "listening") return yield* Effect.die(new Error(`${script} printed ${first}\n${stderr}`))
    return {
      port: parts[1] === "tcp" ? Number(parts[3]) : 0,
      path: parts[1] === "unix" ? parts.slice(2).join(" ") : "",
      lines,
      nextLine,
      pid: child.pid!
    } satisfies Peer
  })
