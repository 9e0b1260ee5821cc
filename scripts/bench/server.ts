/** A Sum server in its own process for the two-process workloads: `server.js effect-amp|raw`. */
import * as ours from "./impl/effectAmp.js"
import * as raw from "./impl/rawNode.js"

const which = process.argv[2]
if (which === "raw") {
  const server = await raw.serve(0)
  console.log(`listening ${(server.address() as { port: number }).port}`)
} else {
  const server = await ours.serve(0)
  console.log(`listening ${server.port}`)
}
