/**
 * A handler that fails is logged, once, as a warning with its cause and the
 * server's address, through the logger the server was started with (the
 * connection runs in a fiber of its own, ended from its observer).
 */
import { describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as HashMap from "effect/HashMap"
import * as Logger from "effect/Logger"
import * as NodeConnect from "../../src/node/NodeConnect.js"
import * as NodeServer from "../../src/node/NodeServer.js"
import { bytes, eventually, local, portOf, readBytes, readToEnd } from "./fixtures/support.js"

interface Line {
  readonly level: string
  readonly message: string
  readonly cause: string
  readonly server: unknown
}

describe("a failing handler's log line", () => {
  it.scopedLive("is one warning naming the server and the cause; the connection is closed", () =>
    Effect.gen(function*() {
      const lines: Array<Line> = []
      const logger = Logger.make<unknown, void>(({ annotations, cause, logLevel, message }) => {
        lines.push({
          level: logLevel.label,
          message: String(Array.isArray(message) ? message.join(" ") : message),
          cause: String(cause),
          server: HashMap.get(annotations, "server").pipe((o) => (o._tag === "Some" ? o.value : undefined))
        })
      })
      const server = yield* NodeServer.listen(local, (t) =>
        Effect.flatMap(readBytes(t, 4), () => Effect.fail("the handler gave up"))).pipe(
          Effect.provide(Logger.replace(Logger.defaultLogger, logger))
        )
      const client = yield* NodeConnect.connectTcp({ host: "127.0.0.1", port: portOf(server) })
      yield* client.write(bytes("fail"))
      expect(yield* readToEnd(client)).toHaveLength(0)
      yield* eventually(() => lines.length > 0)
      expect(lines).toHaveLength(1)
      expect(lines[0]).toMatchObject({ level: "WARN", server: `tcp:127.0.0.1:${portOf(server)}` })
      expect(lines[0]!.message).toMatch(/^connection handler failed/)
      expect(lines[0]!.cause).toContain("the handler gave up")
      yield* eventually(() => Effect.runSync(server.connections) === 0)
    }))
})
