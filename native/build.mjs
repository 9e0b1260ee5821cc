// Builds the descriptor-passing addon (native/fdpass.c) with node-gyp, against
// this Node's own headers when they are installed (no download of anything).
// Run by `npm install` (the "install" script). A failed build is not a failed
// install: the library works without it, only descriptor passing is then
// unavailable, and `Argument.Descriptor` says how to enable it.
//
//   node native/build.mjs          build, warn on failure (exit 0)
//   node native/build.mjs --strict build, fail on failure (CI)
import { spawnSync } from "node:child_process"
import { existsSync } from "node:fs"
import { dirname, join } from "node:path"
import { fileURLToPath } from "node:url"

const here = dirname(fileURLToPath(import.meta.url))
const strict = process.argv.includes("--strict") || process.env.EFFECT_AMP_NATIVE === "required"
if (process.env.EFFECT_AMP_NATIVE === "skip") {
  console.warn("effect-amp: EFFECT_AMP_NATIVE=skip: descriptor passing (native/fdpass) not built")
  process.exit(0)
}

// Node's headers ship with distribution packages under <prefix>/include/node.
const prefix = dirname(dirname(process.execPath))
const nodedir = existsSync(join(prefix, "include", "node", "node_api.h")) ? prefix : undefined

// npm puts its bundled node-gyp on PATH for install scripts; outside npm, find npm's copy.
const bundled = join(dirname(process.execPath), "..", "lib", "node_modules", "npm", "node_modules", "node-gyp", "bin", "node-gyp.js")
const gyp = process.env.npm_config_node_gyp ?? (existsSync(bundled) ? bundled : undefined)
const args = ["rebuild", ...(nodedir !== undefined ? [`--nodedir=${nodedir}`] : [])]
const run = gyp !== undefined
  ? spawnSync(process.execPath, [gyp, ...args], { cwd: here, stdio: ["ignore", "inherit", "inherit"] })
  : spawnSync("node-gyp", args, { cwd: here, stdio: ["ignore", "inherit", "inherit"], shell: process.platform === "win32" })

if (run.status === 0 && existsSync(join(here, "build", "Release", "fdpass.node"))) process.exit(0)
const why = run.error !== undefined ? run.error.message : `node-gyp exited with ${run.status ?? run.signal}`
console.warn(
  `effect-amp: the descriptor-passing addon was not built (${why}).\n` +
    "  Everything else works; Argument.Descriptor is unavailable. To enable it, install a C compiler,\n" +
    "  make and Python 3 (Debian: apt-get install build-essential python3), then run `npm rebuild effect-amp`."
)
process.exit(strict ? 1 : 0)
