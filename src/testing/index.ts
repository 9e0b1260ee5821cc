/**
 * effect-amp/test: testing your AMP commands and responders in memory.
 *
 * @since 0.1.0
 */
export * as AmpTest from "./AmpTest.js"
