#!/usr/bin/env node
// The `effect-amp` command. Runs the compiled CLI (built by `npm install` via
// the `prepare` script, or `npm run build`).
import("../dist/cli/main.js").catch((error) => {
  if (error && error.code === "ERR_MODULE_NOT_FOUND" && String(error.message).includes("dist/cli/main.js")) {
    console.error("effect-amp is not built yet: run `npm run build` (npm install does it too).")
    process.exit(2)
  }
  throw error
})
