/**
 * The Node implementations the harness measures, by id; add one here to
 * bench it. Loaded on demand, so that a child process serving one of them
 * carries no code (nor heap) of the others.
 */
import type { NodeAdapter } from "./types.js"

export const nodeImpls = {
  "effect-amp": () => import("./effectAmp.js").then((m) => m.adapter),
  raw: () => import("./rawNode.js").then((m) => m.adapter)
} satisfies Record<string, () => Promise<NodeAdapter>>

export type NodeImplId = keyof typeof nodeImpls

export const isNodeImplId = (s: string | undefined): s is NodeImplId => s !== undefined && s in nodeImpls
