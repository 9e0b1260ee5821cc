/**
 * The default StartTLS responder's throwaway certificate: a real X.509
 * certificate that OpenSSL accepts, carries TLS 1.3, and verifies against
 * itself (so a peer that pins it can check it).
 */
import { describe, expect, it } from "@effect/vitest"
import { execFileSync } from "node:child_process"
import * as crypto from "node:crypto"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import * as tls from "node:tls"
import * as SelfSigned from "../../src/internal/selfSignedCertificate.js"

const handshake = (server: SelfSigned.SelfSigned, client: tls.ConnectionOptions) =>
  new Promise<{ protocol: string | null; authorized: boolean; echoed: string }>((resolve, reject) => {
    const srv = tls.createServer({ cert: server.cert, key: server.key }, (s) => s.pipe(s))
    srv.listen(0, "127.0.0.1", () => {
      const { port } = srv.address() as { port: number }
      const c = tls.connect({ host: "127.0.0.1", port, ...client }, () => {
        c.end("ping")
        let echoed = ""
        c.setEncoding("utf8").on("data", (d: string) => (echoed += d))
        c.on("end", () => (srv.close(), resolve({ protocol: c.getProtocol(), authorized: c.authorized, echoed })))
      })
      c.on("error", (e) => (srv.close(), reject(e)))
    })
  })

describe("selfSignedCertificate", () => {
  it("is an X.509 v3 certificate signed by its own key, valid from a day ago for a year", () => {
    const now = new Date("2026-12-02T10:00:00Z")
    const made = SelfSigned.make("effect-amp", now)
    const x509 = new crypto.X509Certificate(made.cert)
    expect(x509.subject).toBe("CN=effect-amp")
    expect(x509.issuer).toBe("CN=effect-amp")
    expect(x509.verify(x509.publicKey)).toBe(true)
    expect(x509.checkPrivateKey(crypto.createPrivateKey(made.key))).toBe(true)
    expect(new Date(x509.validFrom).toISOString()).toBe("2026-12-01T10:00:00.000Z")
    expect(new Date(x509.validTo).toISOString()).toBe("2027-12-02T10:00:00.000Z")
    expect(x509.serialNumber).not.toBe(new crypto.X509Certificate(SelfSigned.make().cert).serialNumber)
  })

  it("passes openssl's own verification", () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "amp-selfsigned-"))
    try {
      const file = path.join(dir, "cert.pem")
      fs.writeFileSync(file, SelfSigned.make().cert)
      expect(execFileSync("openssl", ["verify", "-check_ss_sig", "-CAfile", file, file], { encoding: "utf8" })).toBe(`${file}: OK\n`)
      expect(execFileSync("openssl", ["x509", "-in", file, "-noout", "-text"], { encoding: "utf8" }))
        .toMatch(/Version: 3 \(0x2\)[\s\S]*Signature Algorithm: ecdsa-with-SHA256[\s\S]*Public-Key: \(256 bit\)/)
    } finally {
      fs.rmSync(dir, { recursive: true, force: true })
    }
  })

  it("carries TLS 1.3 to a client that does not verify, and verifies for one that pins it", async () => {
    const made = SelfSigned.forProcess()
    expect(SelfSigned.forProcess()).toBe(made)
    const anonymous = await handshake(made, { rejectUnauthorized: false })
    expect(anonymous).toEqual({ protocol: "TLSv1.3", authorized: false, echoed: "ping" })
    const pinned = await handshake(made, { ca: made.cert, servername: "effect-amp" })
    expect(pinned).toEqual({ protocol: "TLSv1.3", authorized: true, echoed: "ping" })
  })
})
