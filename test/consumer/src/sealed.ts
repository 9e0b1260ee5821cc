// Only the public entry points resolve: a deep import into dist/ is refused
// by the package's `exports` (under NodeNext and Bundler both).
// @ts-expect-error effect-amp/dist/* is not exported
export type Deep = typeof import("effect-amp/dist/index.js")

// The box protocol's machinery is not part of its public type.
import type { BinaryBoxProtocol } from "effect-amp"
type Protocol = BinaryBoxProtocol.BinaryBoxProtocol
// @ts-expect-error unsafeSendBox is internal
export type UnsafeSend = Protocol["unsafeSendBox"]
// @ts-expect-error boundary is internal
export type Boundary = Protocol["boundary"]
export type Send = Protocol["sendBox"]
