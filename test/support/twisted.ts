/**
 * Live Twisted peers for tests.
 *
 * Twisted comes from Debian's python3-twisted and runs with /usr/bin/python3
 * (the first python3 on PATH may be another interpreter without it); set
 * AMP_PYTHON to use another one. A test that needs Twisted never skips: it
 * fails loudly, with the line that installs Twisted.
 *
 * - {@link requireTwisted}: Twisted's version, or an Error saying how to install it.
 * - {@link runPython}: a script's stdout (throws, with its stderr, when it fails).
 * - {@link execPython}: a script's `{ stdout, stderr, code }`, whatever its exit code.
 * - {@link startPeer}: a long-running peer script in a Scope, killed (with any
 *   children it spawned) when the Scope closes.
 */
import { type ChildProcess, spawn, spawnSync } from "node:child_process"
import * as path from "node:path"
import * as readline from "node:readline"
import * as Effect from "effect/Effect"
import type * as Scope from "effect/Scope"

/** The interpreter that runs Twisted peers. */
export const PYTHON = process.env.AMP_PYTHON ?? "/usr/bin/python3"

/** What installs Twisted on the Debian/Ubuntu images this project targets. */
export const INSTALL_LINE = "apt-get update && apt-get install -y python3-twisted"

/** Where the support scripts live; relative script names resolve against it. */
export const supportDir = import.meta.dirname

const resolveScript = (script: string) => path.resolve(supportDir, script)

/**
 * Twisted's version as `python` sees it. Throws an Error that carries the
 * install line when `python` is missing or cannot import twisted.
 */
export const checkTwisted = (python: string): string => {
  const r = spawnSync(python, ["-c", "import twisted; print(twisted.__version__)"], { encoding: "utf8" })
  if (r.status !== 0) {
    const why = r.error ? String(r.error.message) : (r.stderr ?? "").trim().split("\n").pop() ?? ""
    throw new Error(
      `These tests need a live Twisted peer, and ${python} cannot import twisted (${why}).\n` +
        `Install it with: ${INSTALL_LINE}\n` +
        `Then run peers with /usr/bin/python3 (the default here; AMP_PYTHON overrides it). ` +
        `A python3 earlier on PATH may not see Debian's Twisted.`
    )
  }
  return r.stdout.trim()
}

let twistedVersion: string | undefined

/** Twisted's version (checked once per process); throws with the install line when Twisted is missing. */
export const requireTwisted = (): string => {
  if (twistedVersion === undefined) twistedVersion = checkTwisted(PYTHON)
  return twistedVersion
}

/** What a finished Python script left behind. */
export interface PythonResult {
  readonly stdout: string
  readonly stderr: string
  /** The exit code, or `null` when a signal ended it. */
  readonly code: number | null
}

/**
 * Runs a Python script (relative to test/support, or absolute) to completion
 * and returns its output and exit code, whatever the code.
 */
export const execPython = (
  script: string,
  args: ReadonlyArray<string> = [],
  stdin?: string | Uint8Array
): PythonResult => {
  requireTwisted()
  const r = spawnSync(PYTHON, [resolveScript(script), ...args], {
    encoding: "utf8",
    maxBuffer: 256 * 1024 * 1024,
    ...(stdin !== undefined ? { input: stdin } : {})
  })
  if (r.error) throw new Error(`cannot run ${PYTHON} ${script}: ${r.error.message}`)
  return { stdout: r.stdout, stderr: r.stderr, code: r.status }
}

/**
 * Runs a Python script to completion and returns its stdout. Throws, with the
 * script's stderr, when it exits with anything but 0: a test that relies on
 * a script's output should never read half of it.
 */
export const runPython = (script: string, args: ReadonlyArray<string> = [], stdin?: string | Uint8Array): string => {
  const r = execPython(script, args, stdin)
  if (r.code !== 0) throw new Error(`${script} ${args.join(" ")} failed (exit ${r.code}):\n${r.stderr}`)
  return r.stdout
}

/** Where a peer said it listens (its first line). */
export type PeerAddress =
  | { readonly _tag: "tcp"; readonly host: string; readonly port: number }
  | { readonly _tag: "unix"; readonly path: string }
  /** `listening client` and other first lines that name no address (clients print one so starting is uniform). */
  | { readonly _tag: "other"; readonly line: string }

/** A running Python peer. */
export interface Peer {
  readonly address: PeerAddress
  /** The TCP port from `listening tcp HOST PORT`; 0 otherwise. */
  readonly port: number
  /** The socket path from `listening unix PATH`; "" otherwise. */
  readonly path: string
  /** The child process (its stdin is a pipe the test may write to). */
  readonly process: ChildProcess
  readonly pid: number
  /** Every stdout line printed after the first, as printed so far (nothing is removed). */
  readonly stdoutLines: ReadonlyArray<string>
  /** Same array as {@link stdoutLines} (older name). */
  readonly lines: ReadonlyArray<string>
  /**
   * The next stdout line not yet taken by `nextLine`; fails with the peer's
   * stderr when the peer exits first. Interruptible: a timed-out wait takes no line.
   */
  readonly nextLine: Effect.Effect<string, Error>
  /** Everything the peer wrote to stderr so far (Twisted logs there). */
  readonly stderr: () => string
  /** Whether the process is still running. */
  readonly isRunning: () => boolean
  /** Waits for the process to exit; its code, or `null` when a signal ended it. */
  readonly exited: Effect.Effect<number | null>
}

export interface StartPeerOptions {
  /** How long to wait for the first line. Default 20 seconds (Twisted imports take a while on a loaded machine). */
  readonly startTimeoutMillis?: number
}

/** Process groups still alive, killed if the test process exits without closing their Scopes. */
const liveGroups = new Set<number>()
let exitHookInstalled = false
const killGroup = (pid: number) => {
  try {
    // Negative pid: the whole process group, so children a peer spawned (`--spawn`) die with it.
    process.kill(-pid, "SIGKILL")
  } catch {
    // ESRCH: already gone.
  }
}

/**
 * Starts a peer script (relative to test/support, or absolute) that prints
 * `listening tcp HOST PORT`, `listening unix PATH` or `listening ...` as its
 * first line, and waits (bounded) for that line. When the Scope closes the
 * peer's whole process group gets SIGKILL and the release waits for the exit,
 * so no peer outlives its test.
 */
export const startPeer = (
  script: string,
  args: ReadonlyArray<string> = [],
  options: StartPeerOptions = {}
): Effect.Effect<Peer, Error, Scope.Scope> =>
  Effect.gen(function*() {
    requireTwisted()
    if (!exitHookInstalled) {
      exitHookInstalled = true
      process.once("exit", () => liveGroups.forEach(killGroup))
    }
    let exitCode: number | null | undefined
    const exitWaiters: Array<(code: number | null) => void> = []
    const child = yield* Effect.acquireRelease(
      Effect.sync(() => {
        // detached: the peer leads its own process group, which the release kills as a whole.
        const c = spawn(PYTHON, [resolveScript(script), ...args], { stdio: ["pipe", "pipe", "pipe"], detached: true })
        if (c.pid !== undefined) liveGroups.add(c.pid)
        c.once("exit", (code) => {
          exitCode = code
          exitWaiters.splice(0).forEach((w) => w(code))
        })
        // A peer that exits closes its stdin; writing to it then must not crash the test process.
        c.stdin?.on("error", () => {})
        return c
      }),
      (c) =>
        Effect.async<void>((resume) => {
          const pid = c.pid
          if (pid === undefined) return resume(Effect.void)
          liveGroups.delete(pid)
          killGroup(pid)
          if (exitCode !== undefined || c.exitCode !== null || c.signalCode !== null) return resume(Effect.void)
          exitWaiters.push(() => resume(Effect.void))
        })
    )

    let stderr = ""
    child.stderr!.on("data", (d) => (stderr += String(d)))

    let spawnError: Error | undefined
    let first: string | undefined
    let ended = false
    const lines: Array<string> = []
    let cursor = 0
    const waiters: Array<() => void> = []
    const wake = () => waiters.splice(0).forEach((w) => w())
    child.once("error", (e) => {
      spawnError = e
      ended = true
      wake()
    })
    const rl = readline.createInterface({ input: child.stdout! })
    rl.on("line", (line) => {
      if (first === undefined) first = line
      else lines.push(line)
      wake()
    })
    // stdout closed: the peer exited (or closed it); no more lines will come.
    rl.on("close", () => {
      ended = true
      wake()
    })

    const describe = () =>
      `${path.basename(script)} ${args.join(" ")}` +
      (exitCode !== undefined ? ` (exited with ${exitCode})` : "") +
      (spawnError ? `: ${spawnError.message}` : "") +
      `\n--- stderr ---\n${stderr}`

    /** Waits until `ready()` holds or stdout ends; interruption removes the waiter. */
    const waitFor = (ready: () => boolean) =>
      Effect.async<void>((resume) => {
        if (ready() || ended) return resume(Effect.void)
        const w = () => {
          if (ready() || ended) resume(Effect.void)
          else waiters.push(w)
        }
        waiters.push(w)
        return Effect.sync(() => {
          const i = waiters.indexOf(w)
          if (i >= 0) waiters.splice(i, 1)
        })
      })

    const timeout = options.startTimeoutMillis ?? 20_000
    yield* waitFor(() => first !== undefined).pipe(
      Effect.timeoutFail({
        duration: `${timeout} millis`,
        onTimeout: () => new Error(`peer printed nothing within ${timeout} ms: ${describe()}`)
      })
    )
    if (first === undefined) return yield* Effect.fail(new Error(`peer ended before its first line: ${describe()}`))
    const parts = first.split(" ")
    if (parts[0] !== "listening") {
      return yield* Effect.fail(new Error(`peer's first line is ${JSON.stringify(first)}, not "listening ...": ${describe()}`))
    }
    // `listening on tcp:HOST:PORT` is how `effect-amp serve` and twisted_demo.py say it.
    const onTcp = /^listening on tcp:(.+):(\d+)$/.exec(first)
    const address: PeerAddress = parts[1] === "tcp" && parts.length === 4
      ? { _tag: "tcp", host: parts[2]!, port: Number(parts[3]) }
      : onTcp !== null
      ? { _tag: "tcp", host: onTcp[1]!, port: Number(onTcp[2]) }
      : parts[1] === "unix"
      ? { _tag: "unix", path: parts.slice(2).join(" ") }
      : { _tag: "other", line: first }

    const nextLine: Effect.Effect<string, Error> = Effect.suspend(() =>
      waitFor(() => cursor < lines.length).pipe(
        Effect.flatMap(() =>
          cursor < lines.length
            ? Effect.succeed(lines[cursor++]!)
            : Effect.fail(new Error(`peer printed no more lines: ${describe()}`))
        )
      )
    )

    const exited = Effect.async<number | null>((resume) => {
      if (exitCode !== undefined) return resume(Effect.succeed(exitCode))
      const w = (code: number | null) => resume(Effect.succeed(code))
      exitWaiters.push(w)
      return Effect.sync(() => {
        const i = exitWaiters.indexOf(w)
        if (i >= 0) exitWaiters.splice(i, 1)
      })
    })

    return {
      address,
      port: address._tag === "tcp" ? address.port : 0,
      path: address._tag === "unix" ? address.path : "",
      process: child,
      pid: child.pid!,
      stdoutLines: lines,
      lines,
      nextLine,
      stderr: () => stderr,
      isRunning: () => exitCode === undefined,
      exited
    } satisfies Peer
  })
