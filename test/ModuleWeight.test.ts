/**
 * What a program pays for loading effect-amp: the entry points a connection
 * needs (`effect-amp`, `effect-amp/node`) reach, by static imports, neither
 * `effect/Schema` (about 4 MiB of heap and 12 MiB of RSS once loaded) nor
 * `@effect/platform/FileSystem` (about 4 MiB of heap and 11 MiB of RSS), nor
 * `@effect/platform/Socket` (about 4 MiB and 11 MiB). `effect-amp/schema`,
 * `effect-amp/platform` and `BoxCodec.parseFile` load them when asked. The walk follows the sources' `import`/`export … from`
 * statements; `import type` is erased and does not count.
 */
import { describe, expect, it } from "@effect/vitest"
import * as fs from "node:fs"
import * as path from "node:path"

const src = path.resolve(import.meta.dirname, "..", "src")
const heavy = ["effect/Schema", "effect/ParseResult", "@effect/platform/FileSystem", "@effect/platform/Socket"]

/** Every module reachable from `entry` by value imports: local files, and the packages they name. */
const reach = (entry: string): { readonly files: ReadonlySet<string>; readonly packages: ReadonlyMap<string, string> } => {
  const files = new Set<string>()
  const packages = new Map<string, string>()
  const visit = (file: string) => {
    if (files.has(file)) return
    files.add(file)
    const text = fs.readFileSync(file, "utf8")
    const statements = text.matchAll(/^(?:import|export)\s+(type\s+)?[^"';]*?from\s+"([^"]+)"|^import\s+"([^"]+)"/gms)
    for (const m of statements) {
      if (m[1] !== undefined) continue
      const spec = m[2] ?? m[3]!
      if (spec.startsWith(".")) visit(path.resolve(path.dirname(file), spec.replace(/\.js$/, ".ts")))
      else if (!packages.has(spec)) packages.set(spec, path.relative(src, file))
    }
  }
  visit(entry)
  return { files, packages }
}

describe("module weight", () => {
  for (const entry of ["index.ts", "node/index.ts"]) {
    it(`src/${entry} reaches none of ${heavy.join(", ")}`, () => {
      const { files, packages } = reach(path.join(src, entry))
      expect(files.size).toBeGreaterThan(10)
      const found = heavy.filter((p) => packages.has(p)).map((p) => `${p} (from ${packages.get(p)})`)
      expect(found).toEqual([])
      // The walk sees packages at all: effect's own modules are reached.
      expect(packages.has("effect/Effect")).toBe(true)
    })
  }

  it("effect-amp/schema and effect-amp/platform are where Schema and platform sockets are loaded", () => {
    expect(reach(path.join(src, "schema/index.ts")).packages.has("effect/Schema")).toBe(true)
    expect(reach(path.join(src, "platform/index.ts")).packages.has("@effect/platform/Socket")).toBe(true)
  })
})
