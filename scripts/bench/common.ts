/** Small helpers shared by the harness (run.ts) and its child processes (child.ts). */
import * as v8 from "node:v8"
import * as vm from "node:vm"

/** A full garbage collection: `global.gc` under --expose-gc, otherwise enabled at run time. */
export const gc: () => void = (() => {
  const exposed = (globalThis as { gc?: () => void }).gc
  if (exposed) return exposed
  v8.setFlagsFromString("--expose-gc")
  return vm.runInNewContext("gc") as () => void
})()

export const MiB = (bytes: number): number => bytes / 1024 / 1024

export const median = (xs: ReadonlyArray<number>): number => {
  const s = [...xs].sort((a, b) => a - b)
  const m = s.length >> 1
  return s.length % 2 === 1 ? s[m]! : (s[m - 1]! + s[m]!) / 2
}

/** The `p` quantile (0..1) by nearest rank. */
export const quantile = (xs: ReadonlyArray<number>, p: number): number => {
  const s = [...xs].sort((a, b) => a - b)
  return s[Math.min(s.length - 1, Math.floor(s.length * p))]!
}

/** The line every benchmark server prints once it listens (Twisted's side prints the same). */
export const listeningLine = (port: number): string => `listening tcp 127.0.0.1 ${port}`

/** `--name value` options of a bench script's `argv`; `fail` reports a missing or bad value. */
export const options = (argv: ReadonlyArray<string>, fail: (message: string) => never) => {
  const option = (name: string): string | undefined => {
    const i = argv.indexOf(name)
    if (i < 0) return undefined
    const v = argv[i + 1]
    if (v === undefined || v.startsWith("--")) fail(`${name} needs a value`)
    return v
  }
  const numberOption = (name: string): number | undefined => {
    const v = option(name)
    if (v === undefined) return undefined
    const n = Number(v.replace(/_/g, ""))
    if (!Number.isFinite(n) || n <= 0) fail(`${name}: not a positive number: ${v}`)
    return n
  }
  return { option, numberOption }
}

/**
 * `[cmd, args]` run through `sh` with the open-file limit raised to `fds`
 * first (to the hard limit if that is lower), for a process holding more
 * connections than a default soft limit of 1024 allows. `sh` execs the
 * command, so the pid a spawn reports is the command's own.
 */
export const withFdLimit = (fds: number, cmd: string, args: ReadonlyArray<string>): [string, Array<string>] => [
  "sh",
  ["-c", `ulimit -n ${fds} 2>/dev/null || ulimit -n "$(ulimit -Hn)" 2>/dev/null; exec "$0" "$@"`, cmd, ...args]
]
