/**
 * RemotePool under faults, over real sockets: two Twisted demo servers
 * (test/support/twisted_demo.py) and one effect-amp server. One Twisted
 * server is killed (SIGKILL) mid-run and restarted on its port. Every call
 * ends with its answer or a typed error naming the killed member, calls go
 * on over the others while it is down, and traffic returns to it.
 */
import { describe, expect, it } from "@effect/vitest"
import * as path from "node:path"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Schedule from "effect/Schedule"
import type * as AmpPool from "../../src/AmpPool.js"
import * as Demo from "../../src/cli/Demo.js"
import * as NodeAmp from "../../src/node/NodeAmp.js"
import * as RemotePool from "../../src/RemotePool.js"
import * as Responders from "../../src/Responders.js"
import { startPeer } from "../support/twisted.js"

const DEMO = path.join(import.meta.dirname, "..", "support", "twisted_demo.py")
const tcp = (port: number) => ({ _tag: "tcp" as const, host: "127.0.0.1", port })

/** `n` Sum calls, `concurrency` at a time, each outcome with the member it ran on; `during(done)` sees progress. */
const run = <R = never>(pool: AmpPool.AmpPool, n: number, onProgress: (done: number) => Effect.Effect<void, Error, R> = () => Effect.void) => {
  let done = 0
  return Effect.forEach(
    Array.from({ length: n }, (_, i) => BigInt(i)),
    (a) =>
      pool.withWorker((worker) => Effect.map(worker.amp.callRemote(Demo.Sum, { a, b: 1n }), ({ total }) => ({ total, a, on: worker.name }))).pipe(
        Effect.either,
        Effect.tap(() => onProgress(++done))
      ),
    { concurrency: 30 }
  )
}

describe("RemotePool over Twisted and effect-amp servers", () => {
  it.scopedLive("one member killed and restarted mid-run: no call lost without a typed error, traffic returns to it", () =>
    Effect.gen(function*() {
      const twistedA = yield* startPeer(DEMO)
      let twistedB = yield* startPeer(DEMO)
      const ours = yield* NodeAmp.serve({ _tag: "tcp", host: "127.0.0.1", port: 0 }).pipe(
        Effect.provide(Responders.layer(...Demo.responders))
      )
      const ourPort = ours.address._tag === "unix" ? 0 : ours.address.port
      const bPort = twistedB.port
      const killedName = `tcp:127.0.0.1:${bPort}`
      const pool = yield* RemotePool.make({
        members: [NodeAmp.member(tcp(twistedA.port)), NodeAmp.member(tcp(bPort)), NodeAmp.member(tcp(ourPort))],
        backoff: Schedule.spaced("100 millis")
      })

      let killedAt = -1
      const outcomes = yield* run(pool, 3000, (done) =>
        Effect.gen(function*() {
          if (done === 600) {
            killedAt = done
            twistedB.process.kill("SIGKILL")
            yield* twistedB.exited
          }
          // Restarted while calls still run: the pool must find it again by itself.
          if (done === 1500) twistedB = yield* startPeer(DEMO, [String(bPort)])
        }))

      expect(killedAt).toBe(600)
      expect(outcomes).toHaveLength(3000)
      const failures = outcomes.filter(Either.isLeft).map((o) => o.left)
      // withWorker names no command of its own.
      for (const e of failures) expect(e).toMatchObject({ _tag: "WorkerCrashed", worker: killedName, command: "withWorker" })
      // Some calls were on it when it died, and no more than were in flight.
      expect(failures.length).toBeGreaterThan(0)
      expect(failures.length).toBeLessThanOrEqual(30)
      const answers = outcomes.filter(Either.isRight).map((o) => o.right)
      for (const r of answers) expect(r.total).toBe(r.a + 1n)
      expect(answers.length).toBe(3000 - failures.length)
      const on = (name: string) => answers.filter((r) => r.on === name).length
      expect(on(`tcp:127.0.0.1:${twistedA.port}`)).toBeGreaterThan(0)
      expect(on(`tcp:127.0.0.1:${ourPort}`)).toBeGreaterThan(0)

      // Back: the restarted member is up again and takes its share.
      for (let i = 0; i < 100; i++) {
        const members = yield* pool.members
        if (members.every((m) => m.status === "up")) break
        yield* Effect.sleep("100 millis")
      }
      expect((yield* pool.members).map((m) => m.status)).toEqual(["up", "up", "up"])
      const after = yield* run(pool, 600)
      expect(after.every(Either.isRight)).toBe(true)
      const afterOn = (name: string) => after.filter((o) => Either.isRight(o) && o.right.on === name).length
      // Least-busy routing gives the faster effect-amp server more than a third, so the
      // restarted member's share is measured against its twin, the other Twisted server.
      const onRestarted = afterOn(killedName)
      const onTwin = afterOn(`tcp:127.0.0.1:${twistedA.port}`)
      expect(onRestarted).toBeGreaterThan(30)
      expect(onRestarted).toBeGreaterThan(onTwin / 2)
      expect((yield* pool.stats).restarts.crash).toBe(1)
    }), 120_000)
})
