// In a clone of this repository, npm links the bins of dependencies into
// node_modules/.bin but never the package's own. `npx effect-amp` finds it
// through package.json's `bin` anyway; the `prepare` step links it there too,
// so that node_modules/.bin/effect-amp (and a PATH holding it) work as well.
import { chmodSync, mkdirSync, rmSync, symlinkSync } from "node:fs"
import { dirname, join, relative } from "node:path"
import { fileURLToPath } from "node:url"

const root = join(dirname(fileURLToPath(import.meta.url)), "..")
const binDir = join(root, "node_modules", ".bin")
const link = join(binDir, "effect-amp")
const target = join(root, "bin", "effect-amp.js")
mkdirSync(binDir, { recursive: true })
rmSync(link, { force: true })
symlinkSync(relative(binDir, target), link)
chmodSync(target, 0o755)
