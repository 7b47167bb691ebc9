// HTTPS for proxy-node: node's TLS in front of the same HTTP code. The client
// listener wraps its sockets in TLS and hands the decrypted stream to the same
// ClientConn (server.ts), so parsing, limits and safety checks are one code path;
// the manager answers HTTP and HTTPS on its one port (the first byte tells them
// apart). Certificates are files, read at start and again on SIGHUP: a rotation
// swaps the secure context of the running listeners and drops no connection.
import { readFileSync } from "node:fs";
import type * as http from "node:http";
import * as net from "node:net";
import * as tls from "node:tls";
import type { TlsConfig } from "./config";

/** The first byte of a TLS record carrying a handshake (RFC 8446 5.1). */
const HANDSHAKE = 0x16;
/** How long a manager connection may stay silent before it shows which protocol it speaks. */
const SNIFF_MS = 10_000;

export class TlsFileError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "TlsFileError";
  }
}

/**
 * The secure-context options from the config's files, checked by building a
 * context once: a key that does not match the certificate, or a file that is
 * not PEM, fails here (at start, or on a reload that then keeps the old one).
 */
export function secureOptions(t: TlsConfig): tls.SecureContextOptions {
  const read = (what: string, path: string): Buffer => {
    try {
      return readFileSync(path);
    } catch (e) {
      throw new TlsFileError(`tls.${what}: cannot read ${path}: ${(e as Error).message}`);
    }
  };
  const opts: tls.SecureContextOptions = {
    cert: read("cert", t.cert),
    key: read("key", t.key),
    minVersion: t.minVersion,
    ciphers: t.ciphers,
    // Mozilla intermediate: every suite offered is strong, so the client's order
    // (which knows whether it has AES hardware) is the better choice.
    honorCipherOrder: false,
    // DHE suites with RFC 7919's groups instead of none.
    dhparam: "auto",
  };
  try {
    tls.createSecureContext(opts);
  } catch (e) {
    throw new TlsFileError(`tls.cert ${t.cert} and tls.key ${t.key} cannot serve: ${(e as Error).message}`);
  }
  return opts;
}

/** Options of a TLS listener: the context plus what keeps a stalled handshake from holding a socket. */
export function serverOptions(t: TlsConfig, handshakeMs: number): tls.TlsOptions {
  return { ...secureOptions(t), handshakeTimeout: handshakeMs };
}

/**
 * One port for the manager's HTTP and HTTPS: a connection whose first byte
 * starts a TLS handshake goes through TLS to the same http.Server, any other
 * straight to it. Returns the listener to bind; `plain` is never bound itself.
 */
export function sniffingListener(plain: http.Server, secure: tls.Server): net.Server {
  secure.on("secureConnection", (s: tls.TLSSocket) => plain.emit("connection", s));
  // A failed handshake is the client's problem; the server goes on.
  secure.on("tlsClientError", (_e, s) => s.destroy());
  return net.createServer({ pauseOnConnect: true }, (socket) => {
    socket.setTimeout(SNIFF_MS, () => socket.destroy());
    socket.on("error", () => socket.destroy());
    socket.once("readable", () => {
      const first = socket.read(1) as Buffer | null;
      if (first === null) {
        socket.destroy();
        return;
      }
      socket.unshift(first);
      socket.setTimeout(0);
      socket.removeAllListeners("error");
      if (first[0] === HANDSHAKE) secure.emit("connection", socket);
      else plain.emit("connection", socket);
    });
  });
}
