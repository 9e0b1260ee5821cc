/**
 * A child process tied to the test's Scope: when the scope closes, it is
 * killed (SIGKILL) and its exit awaited, so no test leaves a process behind.
 */
import type { ChildProcess } from "node:child_process"
import * as fs from "node:fs"
import * as Effect from "effect/Effect"
import type * as Scope from "effect/Scope"

/** Waits for `child` to exit, killing it first if it still runs. */
export const killAndWait = (child: ChildProcess): Effect.Effect<void> =>
  Effect.async<void>((resume) => {
    if (child.exitCode !== null || child.signalCode !== null) return resume(Effect.void)
    child.once("exit", () => resume(Effect.void))
    child.kill("SIGKILL")
  })

/** The child `start` spawns, killed and awaited when the scope closes. */
export const spawnScoped = <C extends ChildProcess>(start: () => C): Effect.Effect<C, never, Scope.Scope> =>
  Effect.acquireRelease(Effect.sync(start), killAndWait)

/** Whether `pid` is a live process (a zombie counts as dead). */
export const alive = (pid: number): boolean => {
  try {
    return !/^\d+ \(.*\) Z/.test(fs.readFileSync(`/proc/${pid}/stat`, "utf8"))
  } catch {
    return false
  }
}

/** How many descriptors this process has open. */
export const openFds = (): number => fs.readdirSync("/proc/self/fd").length
