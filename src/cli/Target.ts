/**
 * Where `effect-amp call` connects: `tcp:HOST:PORT`, `unix:PATH`,
 * `tls:HOST:PORT`, or Twisted's client endpoint strings
 * (`tcp:host=H:port=P`, `unix:path=P`, `ssl:host=H:port=P`; also `tls:`).
 *
 * @since 0.1.0
 */
import type { Address } from "../node/NodeConnect.js"

/** Parses a target (`listen`: an address to listen on, where port 0 picks one); returns an error message for a target it cannot read. */
export const parse = (target: string, options?: { readonly listen?: boolean }): Address | string => {
  const colon = target.indexOf(":")
  if (colon < 0) return `cannot read target ${JSON.stringify(target)}: expected tcp:HOST:PORT, unix:PATH or tls:HOST:PORT`
  const scheme = target.slice(0, colon).toLowerCase()
  const rest = target.slice(colon + 1)
  // Twisted's endpoint syntax: key=value pairs separated by colons (backslash escapes a colon).
  if (/(^|:)(host|port|path)=/.test(rest)) {
    const params: Record<string, string> = {}
    for (const part of rest.split(/(?<!\\):/)) {
      const eq = part.indexOf("=")
      if (eq > 0) params[part.slice(0, eq)] = part.slice(eq + 1).replace(/\\:/g, ":")
    }
    if (scheme === "unix" && params.path) return { _tag: "unix", path: params.path }
    const port = Number(params.port)
    if (!params.host || !Number.isInteger(port)) return `cannot read target ${JSON.stringify(target)}: host= and port= are needed`
    if (scheme === "tcp") return { _tag: "tcp", host: params.host, port }
    if (scheme === "ssl" || scheme === "tls") return { _tag: "tls", host: params.host, port }
    return `unknown endpoint type ${JSON.stringify(scheme)}`
  }
  if (scheme === "unix") return rest.length > 0 ? { _tag: "unix", path: rest } : "unix: needs a path"
  const at = rest.lastIndexOf(":")
  const host = rest.slice(0, at).replace(/^\[(.*)\]$/, "$1")
  const port = Number(rest.slice(at + 1))
  if (at <= 0 || !Number.isInteger(port) || port < (options?.listen ? 0 : 1) || port > 65535) {
    return `cannot read target ${JSON.stringify(target)}: expected ${scheme}:HOST:PORT`
  }
  if (scheme === "tcp") return { _tag: "tcp", host, port }
  if (scheme === "tls" || scheme === "ssl") return { _tag: "tls", host, port }
  return `unknown target type ${JSON.stringify(scheme)}: use tcp, unix or tls`
}
