#!/usr/bin/env node
// The `effect-amp` command. Runs the compiled CLI (dist/, built by `npm install`
// in a clone via the `prepare` script, or `npm run build`; shipped in the package).
//
// The command's own packages are optional peer dependencies, so that library
// users do not install them: when one is missing, say which and how to add them.
const CLI_PACKAGES = ["@effect/cli", "@effect/printer", "@effect/printer-ansi"]
const PEERS = ["effect", "@effect/platform", "@effect/platform-node", ...CLI_PACKAGES]

import("../dist/cli/main.js").catch((error) => {
  const message = String(error && error.message)
  if (error && error.code === "ERR_MODULE_NOT_FOUND") {
    const missing = PEERS.find((name) => message.includes(`'${name}'`))
    if (missing !== undefined) {
      const optional = CLI_PACKAGES.includes(missing)
      const install = optional ? CLI_PACKAGES : [missing]
      console.error(
        [
          `effect-amp: the command needs ${missing}, which is not installed.`,
          optional
            ? "The command's packages are optional peer dependencies (the library does not use them); to run it, install them:"
            : "It is a peer dependency of effect-amp; install it:",
          `  npm install --save-dev ${install.join(" ")}`,
          ...(optional
            ? [`or run the command without installing: npx ${["effect-amp", ...CLI_PACKAGES].map((p) => `-p ${p}`).join(" ")} effect-amp --help`]
            : [])
        ].join("\n")
      )
      process.exit(2)
    }
    if (/Cannot find module '[^']*dist\/cli\/main\.js'/.test(message)) {
      console.error("effect-amp is not built yet: run `npm run build` (npm install does it too).")
      process.exit(2)
    }
  }
  throw error
})
