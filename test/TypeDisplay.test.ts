/**
 * What an editor shows on hover for a call: the TypeScript compiler checks
 * test/typeDisplay/fixture.ts and prints each of its exports' types the way
 * a hover does (`typeToString`). A record that is no longer simplified, or an
 * error channel written as an alias of the command, shows up here as a longer
 * string (`Type<{ result: Argument<number> }>`, `CallError<Command<…>>`).
 */
import { describe, expect, it } from "@effect/vitest"
import * as path from "node:path"
import ts from "typescript"

const root = path.resolve(import.meta.dirname, "..")
const fixture = path.join(root, "test/typeDisplay/fixture.ts")

/** The fixture's exported consts, name to displayed type, and its diagnostics. */
const compile = (): { readonly shown: ReadonlyMap<string, string>; readonly errors: ReadonlyArray<string> } => {
  const config = ts.getParsedCommandLineOfConfigFile(path.join(root, "tsconfig.json"), {}, {
    ...ts.sys,
    onUnRecoverableConfigFileDiagnostic: (d) => {
      throw new Error(ts.flattenDiagnosticMessageText(d.messageText, "\n"))
    }
  })
  if (config === undefined) throw new Error("tsconfig.json did not parse")
  const program = ts.createProgram([fixture], { ...config.options, noEmit: true })
  const checker = program.getTypeChecker()
  const source = program.getSourceFile(fixture)
  if (source === undefined) throw new Error(`${fixture} is not in the program`)
  const errors = ts.getPreEmitDiagnostics(program, source).map((d) => ts.flattenDiagnosticMessageText(d.messageText, "\n"))
  const shown = new Map<string, string>()
  for (const statement of source.statements) {
    if (!ts.isVariableStatement(statement)) continue
    for (const d of statement.declarationList.declarations) {
      if (!ts.isIdentifier(d.name)) continue
      shown.set(d.name.text, checker.typeToString(checker.getTypeAtLocation(d.name), undefined, ts.TypeFormatFlags.NoTruncation))
    }
  }
  return { shown, errors }
}

describe("displayed types", () => {
  // One program for every case: building it is most of the cost (seconds).
  let compiled: ReturnType<typeof compile> | undefined
  const shown = (name: string): string | undefined => (compiled ??= compile()).shown.get(name)

  it("the fixture compiles", () => {
    expect((compiled ??= compile()).errors).toEqual([])
  }, 120_000)

  it("Amp.callRemote: the response as a plain record, the command's errors then CallFailure", () => {
    expect(shown("onAmp")).toBe("Effect<{ readonly result: number; }, ZeroDivision | CallFailure, Amp>")
  }, 120_000)

  it("AmpPool and Reconnecting callRemote read the same way, with their own failures", () => {
    expect(shown("onPool")).toBe(
      "(pool: AmpPool) => Effect<{ readonly result: number; }, ZeroDivision | CallFailure | PoolError, never>"
    )
    expect(shown("onReconnecting")).toBe(
      "(r: Reconnecting) => Effect<{ readonly result: number; }, ZeroDivision | CallFailure | NoMemberAvailable, never>"
    )
  }, 120_000)

  it("field names, optional fields and AmpList elements are shown as records too", () => {
    expect(shown("lookup")).toBe(
      "Effect<{ readonly points: readonly { readonly x: number; readonly label?: string | undefined; }[]; }, CallFailure, Amp>"
    )
    expect(shown("lookupArguments")).toBe(
      "(args: { readonly user_name: string; readonly limit?: number | undefined; }) => { readonly user_name: string; readonly limit?: number | undefined; }"
    )
  }, 120_000)
})
