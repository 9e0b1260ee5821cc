/**
 * Without the native addon (EFFECT_AMP_NATIVE=skip stands in for a machine
 * with no compiler: the addon is not loaded), `descriptors: true` falls back
 * to the plain UNIX transport, plain calls work, and a Descriptor argument
 * fails with a message that says how to enable descriptor passing.
 */
import { describe, expect, it } from "vitest"
import { spawnSync } from "node:child_process"
import * as path from "node:path"

const root = path.join(import.meta.dirname, "..", "..")
const script = `
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import * as Effect from "effect/Effect"
import * as Argument from "./src/Argument.js"
import * as Command from "./src/Command.js"
import * as Demo from "./src/cli/Demo.js"
import * as Responders from "./src/Responders.js"
import * as NodeAmp from "./src/node/NodeAmp.js"
import * as UnixDescriptorTransport from "./src/node/UnixDescriptorTransport.js"
const ReadFd = Command.make("ReadFd", { arguments: { fd: Argument.Descriptor } })
const where = path.join(fs.mkdtempSync(path.join(os.tmpdir(), "amp-noaddon-")), "s.sock")
Effect.gen(function*() {
  yield* NodeAmp.serve({ _tag: "unix", path: where }, { descriptors: true })
  const amp = yield* NodeAmp.connect({ _tag: "unix", path: where }, { descriptors: true })
  const sum = yield* amp.callRemote(Demo.Sum, { a: 1n, b: 2n })
  const e = yield* Effect.flip(amp.callRemote(ReadFd, { fd: 0 }))
  process.stderr.write(JSON.stringify({ available: UnixDescriptorTransport.available(), total: String(sum.total), message: e.message }))
}).pipe(Effect.provide(Responders.layer(...Demo.responders)), Effect.scoped, Effect.runPromise).then(() => process.exit(0))
`

describe("without the native addon", () => {
  it("descriptors: true falls back to plain UNIX, and Descriptor says how to enable it", () => {
    const r = spawnSync(process.execPath, ["--import", "tsx", "--input-type=module", "-e", script], {
      cwd: root,
      env: { ...process.env, EFFECT_AMP_NATIVE: "skip" },
      encoding: "utf8",
      timeout: 60_000
    })
    const out = JSON.parse(r.stderr.slice(r.stderr.indexOf("{"))) as { available: boolean; total: string; message: string }
    expect(out.available).toBe(false)
    expect(out.total).toBe("3")
    expect(out.message).toMatch(/native addon \(native\/fdpass\.c\).*build-essential python3.*npm rebuild effect-amp/)
  }, 60_000)
})
