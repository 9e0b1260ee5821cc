// Only the public entry points resolve: a deep import into dist/ is refused
// by the package's `exports` (under NodeNext and Bundler both).
// @ts-expect-error effect-amp/dist/* is not exported
export type Deep = typeof import("effect-amp/dist/index.js")
