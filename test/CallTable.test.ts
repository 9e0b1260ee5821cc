/**
 * The outstanding-call table: a map by tag whose slots are reused.
 */
import { describe, expect, it } from "@effect/vitest"
import { CallTable } from "../src/internal/callTable.js"

describe("CallTable", () => {
  it("behaves as a map from tag to entry, oldest first, whatever the slot reuse", () => {
    const table = new CallTable<string>()
    const model = new Map<number, string>()
    let next = 1
    // A deterministic mix of adds and removals, so slots are freed and reused out of order.
    for (let step = 0; step < 2000; step++) {
      if (step % 3 !== 2 || model.size === 0) {
        const tag = next++
        table.set(tag, `call ${tag}`)
        model.set(tag, `call ${tag}`)
      } else {
        const tags = [...model.keys()]
        const tag = tags[(step * 7919) % tags.length]!
        expect(table.take(tag)).toBe(model.get(tag))
        model.delete(tag)
        expect(table.take(tag)).toBeUndefined()
      }
      expect(table.size).toBe(model.size)
    }
    expect([...table.entries()]).toEqual([...model.entries()])
    for (const [tag, entry] of model) expect(table.get(tag)).toBe(entry)
    expect(table.get(next)).toBeUndefined()
    expect(table.clear()).toEqual([...model.values()])
    expect(table.size).toBe(0)
    expect([...table.entries()]).toEqual([])
  })

  it("setting a tag again replaces its entry in place", () => {
    const table = new CallTable<string>()
    table.set(1, "a")
    table.set(2, "b")
    table.set(1, "c")
    expect([...table.entries()]).toEqual([[1, "c"], [2, "b"]])
  })
})
