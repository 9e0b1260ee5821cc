/**
 * effect-amp/schema: AMP argument types as Effect `Schema`s, for
 * composition. An entry point of its own, since `effect/Schema` costs about
 * 4 MiB of heap and 12 MiB of RSS once loaded (see `ArgumentSchema`).
 *
 * @since 0.1.0
 */
export * as ArgumentSchema from "../ArgumentSchema.js"
