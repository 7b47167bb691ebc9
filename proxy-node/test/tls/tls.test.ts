// Issue 10: HTTPS on proxy-node's client port and its manager. TLS sits in front
// of the same HTTP code, so what holds for plain HTTP (limits, refusals, the
// forwarding headers) holds over TLS too; these tests check what TLS adds.
import { strict as assert } from "node:assert";
import { X509Certificate } from "node:crypto";
import * as https from "node:https";
import * as tls from "node:tls";
import { ProxyNode } from "../../src/app";
import { validateConfig, ConfigError } from "../../src/config";
import { silentLogger } from "../../src/log";
import { secureOptions, TlsFileError } from "../../src/tls";
import { closeAll, request, startMember, startProxy, sleep } from "../helpers";
import { makeCa, TestCa } from "./certs";

interface TlsReply {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
  /** SHA-256 fingerprint of the certificate the server presented. */
  fingerprint: string;
  protocol: string | null;
}

function tlsRequest(port: number, ca: string, opts: https.RequestOptions & { body?: string } = {}): Promise<TlsReply> {
  return new Promise((resolve, reject) => {
    const { body, ...o } = opts;
    const req = https.request({ host: "127.0.0.1", port, agent: false, ca, servername: "public.example", ...o }, (res) => {
      const sock = res.socket as tls.TLSSocket;
      const fingerprint = sock.getPeerCertificate().fingerprint256;
      const protocol = sock.getProtocol();
      const chunks: Buffer[] = [];
      res.on("data", (c: Buffer) => chunks.push(c));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString("utf8"), fingerprint, protocol }));
      res.on("error", reject);
    });
    req.on("error", reject);
    req.end(body);
  });
}

/** A bare handshake with the given client limits; resolves with the negotiated protocol or the error. */
function handshake(port: number, opts: tls.ConnectionOptions): Promise<{ protocol: string | null } | { error: string }> {
  return new Promise((resolve) => {
    const s = tls.connect({ host: "127.0.0.1", port, rejectUnauthorized: false, ...opts }, () => {
      const protocol = s.getProtocol();
      s.destroy();
      resolve({ protocol });
    });
    s.on("error", (e) => resolve({ error: e.message }));
  });
}

function fingerprintOf(pem: string): string {
  return new X509Certificate(pem).fingerprint256;
}

describe("tls: HTTPS on proxy-node", function () {
  this.timeout(60_000);
  let ca: TestCa;
  before(() => {
    ca = makeCa();
  });
  after(() => ca.remove());
  afterEach(closeAll);

  function tlsConfig(
    members: Array<{ url: string; route: string }>,
    tlsExtra: Record<string, unknown> = {},
    extra: Record<string, unknown> = {},
    balancer: Record<string, unknown> = {},
  ) {
    const leaf = ca.leaf(["public.example", "127.0.0.1"]);
    return validateConfig({
      listen: { host: "127.0.0.1", port: 0 },
      publicUrl: "http://public.example:8080",
      log: { requests: false },
      tls: { port: 0, cert: leaf.cert, key: leaf.key, publicUrl: "https://public.example:8443", ...tlsExtra },
      ...extra,
      balancer: { name: "drupal", members, ...balancer },
    });
  }

  it("serves the same proxy over HTTPS and tells the member the client used https", async () => {
    const lb1 = await startMember("lb1");
    const app = await startProxy(tlsConfig([{ url: lb1.url, route: "lb1" }], { redirect: false }));
    const r = await tlsRequest(app.tlsPort, ca.certPem, { path: "/x?y=1", headers: { "X-Forwarded-Proto": "http" } });
    assert.equal(r.status, 200);
    assert.equal(r.body, "lb1");
    assert.equal(lb1.seen[0].url, "/x?y=1");
    // The client's own header is dropped (not trusted), ours says what it used.
    assert.equal(lb1.seen[0].headers["x-forwarded-proto"], "https");
    const plain = await request(app.port, { path: "/" });
    assert.equal(plain.status, 200);
    assert.equal(lb1.seen[1].headers["x-forwarded-proto"], "http");
  });

  it("refuses TLS 1.0 and 1.1 and weak TLS 1.2 suites; TLS 1.2 and 1.3 with strong suites work", async () => {
    const lb1 = await startMember("lb1");
    // An RSA certificate, so the RSA key exchange and the CBC suites are the server's to refuse, not impossible.
    const leaf = ca.leaf(["public.example"], { rsa: true });
    const app = await startProxy(tlsConfig([{ url: lb1.url, route: "lb1" }], { cert: leaf.cert, key: leaf.key }));
    // SECLEVEL=0 lets this client offer what the server must refuse.
    for (const v of ["TLSv1", "TLSv1.1"] as const) {
      const r = await handshake(app.tlsPort, { minVersion: v, maxVersion: v, ciphers: "DEFAULT@SECLEVEL=0" });
      assert.ok("error" in r, `${v} was accepted`);
    }
    for (const weak of ["AES128-SHA", "AES256-GCM-SHA384", "ECDHE-RSA-AES128-SHA", "ECDHE-RSA-AES256-SHA384"]) {
      const r = await handshake(app.tlsPort, { maxVersion: "TLSv1.2", ciphers: `${weak}@SECLEVEL=0` });
      assert.ok("error" in r, `${weak} was accepted`);
    }
    assert.deepEqual(await handshake(app.tlsPort, { maxVersion: "TLSv1.2", ciphers: "ECDHE-RSA-AES128-GCM-SHA256" }), { protocol: "TLSv1.2" });
    assert.deepEqual(await handshake(app.tlsPort, {}), { protocol: "TLSv1.3" });
  });

  it("redirects plain HTTP to the HTTPS origin with path and query, except from the exempt networks", async () => {
    const lb1 = await startMember("lb1");
    const redirecting = await startProxy(tlsConfig([{ url: lb1.url, route: "lb1" }]));
    const r = await request(redirecting.port, { path: "/a/b?c=d", method: "POST", body: "x", headers: { "Content-Type": "text/plain" } });
    assert.equal(r.status, 301);
    assert.equal(r.headers.location, "https://public.example:8443/a/b?c=d");
    assert.equal(lb1.seen.length, 0, "a redirected request reached a member");
    // Still a reverse proxy only: the absolute form is refused, not redirected.
    const abs = await request(redirecting.port, { path: "http://evil.example/" });
    assert.equal(abs.status, 400);
    const exempt = await startProxy(tlsConfig([{ url: lb1.url, route: "lb1" }], { redirectExempt: ["127.0.0.0/8"] }));
    const e = await request(exempt.port, { path: "/" });
    assert.equal(e.status, 200);
    assert.equal(lb1.seen[0].headers["x-forwarded-proto"], "http");
  });

  it("marks the sticky cookie it sets Secure, HttpOnly and SameSite=Lax over HTTPS only", async () => {
    const lb1 = await startMember("lb1", undefined, false);
    const app = await startProxy(tlsConfig([{ url: lb1.url, route: "lb1" }], { redirect: false }, {}, { setCookie: { name: "BALANCEID" } }));
    const s = await tlsRequest(app.tlsPort, ca.certPem, { path: "/" });
    assert.deepEqual(s.headers["set-cookie"], ["BALANCEID=balancer.lb1; Path=/; HttpOnly; Secure; SameSite=Lax"]);
    const p = await request(app.port, { path: "/" });
    assert.deepEqual(p.headers["set-cookie"], ["BALANCEID=balancer.lb1; Path=/; HttpOnly"]);
  });

  it("sends Strict-Transport-Security only when asked, over HTTPS only, replacing a member's", async () => {
    const lb1 = await startMember("lb1", (_req, res) => {
      res.writeHead(200, { "Strict-Transport-Security": "max-age=1", "Content-Type": "text/plain" });
      res.end("lb1");
    });
    const on = await startProxy(tlsConfig([{ url: lb1.url, route: "lb1" }], { hstsMaxAge: 31536000, redirect: false }));
    assert.equal((await tlsRequest(on.tlsPort, ca.certPem, { path: "/" })).headers["strict-transport-security"], "max-age=31536000");
    assert.equal((await request(on.port, { path: "/" })).headers["strict-transport-security"], "max-age=1");
    const off = await startProxy(tlsConfig([{ url: lb1.url, route: "lb1" }], { redirect: false }));
    assert.equal((await tlsRequest(off.tlsPort, ca.certPem, { path: "/" })).headers["strict-transport-security"], "max-age=1");
  });

  it("rewrites a member's Location to the HTTPS origin for HTTPS clients", async () => {
    const lb1 = await startMember("lb1", (_req, res) => {
      res.writeHead(302, { Location: `${lb1.url}/next` });
      res.end();
    });
    const app = await startProxy(tlsConfig([{ url: lb1.url, route: "lb1" }], { redirect: false }));
    assert.equal((await tlsRequest(app.tlsPort, ca.certPem, { path: "/" })).headers.location, "https://public.example:8443/next");
    assert.equal((await request(app.port, { path: "/" })).headers.location, "http://public.example:8080/next");
  });

  it("keeps its limits and refusals over TLS", async () => {
    const lb1 = await startMember("lb1");
    const app = await startProxy(tlsConfig([{ url: lb1.url, route: "lb1" }]));
    const big = await tlsRequest(app.tlsPort, ca.certPem, { path: "/", headers: { "X-Big": "a".repeat(20_000) } });
    assert.equal(big.status, 431);
    const abs = await tlsRequest(app.tlsPort, ca.certPem, { path: "http://evil.example/" });
    assert.equal(abs.status, 400);
    assert.equal(lb1.seen.length, 0);
  });

  it("a certificate rotated by SIGHUP's reload serves new handshakes; a steady load sees no failure", async () => {
    const lb1 = await startMember("lb1");
    const first = ca.leaf(["public.example"], { file: "rotating" });
    const cfg = (): ReturnType<typeof validateConfig> =>
      validateConfig({
        listen: { host: "127.0.0.1", port: 0 },
        log: { requests: false },
        tls: { port: 0, cert: first.cert, key: first.key, redirect: false },
        balancer: { members: [{ url: lb1.url, route: "lb1" }] },
      });
    const app = await startProxy(cfg());
    assert.equal((await tlsRequest(app.tlsPort, ca.certPem, { path: "/" })).fingerprint, fingerprintOf(first.certPem));
    // Load: new connections and a keep-alive one, all through the rotation.
    const agent = new https.Agent({ keepAlive: true, maxSockets: 2 });
    let failed = 0;
    let ok = 0;
    let stop = false;
    const loop = async (keepAlive: boolean): Promise<void> => {
      while (!stop) {
        try {
          const r = await tlsRequest(app.tlsPort, ca.certPem, { path: "/", ...(keepAlive ? { agent } : {}) });
          if (r.status === 200) ok++;
          else failed++;
        } catch {
          failed++;
        }
      }
    };
    const loops = [loop(false), loop(false), loop(true), loop(true)];
    await sleep(300);
    const second = ca.leaf(["public.example"], { file: "rotating" });
    assert.notEqual(fingerprintOf(second.certPem), fingerprintOf(first.certPem));
    app.reload(cfg());
    await sleep(300);
    stop = true;
    await Promise.all(loops);
    agent.destroy();
    assert.equal(failed, 0, `${failed} of ${failed + ok} requests failed during the rotation`);
    assert.ok(ok > 20, `only ${ok} requests in the load`);
    assert.equal((await tlsRequest(app.tlsPort, ca.certPem, { path: "/" })).fingerprint, fingerprintOf(second.certPem));
  });

  it("refuses a key that does not match the certificate, at start and on reload (the old one keeps serving)", async () => {
    const lb1 = await startMember("lb1");
    const a = ca.leaf(["public.example"]);
    const b = ca.leaf(["public.example"]);
    const bad = validateConfig({
      listen: { host: "127.0.0.1", port: 0 },
      tls: { port: 0, cert: a.cert, key: b.key },
      balancer: { members: [{ url: lb1.url, route: "lb1" }] },
    });
    assert.throws(
      () => secureOptions(bad.tls!),
      (e: Error) => e instanceof TlsFileError && /tls\.cert .* and tls\.key .* cannot serve/.test(e.message),
    );
    const node = new ProxyNode(bad, silentLogger);
    await assert.rejects(node.start(), TlsFileError);
    await node.stop(0);
    const good = validateConfig({
      listen: { host: "127.0.0.1", port: 0 },
      tls: { port: 0, cert: a.cert, key: a.key },
      balancer: { members: [{ url: lb1.url, route: "lb1" }] },
    });
    const app = await startProxy(good);
    assert.throws(() => app.reload(bad), TlsFileError);
    const r = await tlsRequest(app.tlsPort, ca.certPem, { path: "/" });
    assert.equal(r.status, 200);
    assert.equal(r.fingerprint, fingerprintOf(a.certPem));
  });

  it("serves the manager over HTTP and HTTPS on its one port, allowlist and token alike", async () => {
    const lb1 = await startMember("lb1");
    const token = "manager-token-123";
    const make = (allow: string[]) => tlsConfig([{ url: lb1.url, route: "lb1" }], {}, { manager: { host: "127.0.0.1", port: 0, allow, token } });
    const app = await startProxy(make(["127.0.0.1/32"]));
    const auth = { Authorization: `Bearer ${token}` };
    assert.equal((await request(app.managerPort, { path: "/api/members" })).status, 401);
    assert.equal((await request(app.managerPort, { path: "/api/members", headers: auth })).status, 200);
    assert.equal((await tlsRequest(app.managerPort, ca.certPem, { path: "/api/members" })).status, 401);
    const r = await tlsRequest(app.managerPort, ca.certPem, { path: "/api/members", headers: auth });
    assert.equal(r.status, 200);
    assert.match(r.body, /lb1/);
    const closed = await startProxy(make(["10.0.0.0/8"]));
    assert.equal((await tlsRequest(closed.managerPort, ca.certPem, { path: "/api/members", headers: auth })).status, 403);
    assert.equal((await request(closed.managerPort, { path: "/api/members", headers: auth })).status, 403);
  });

  describe("config", () => {
    const members = [{ url: "http://127.0.0.1:1", route: "lb1" }];
    const bad = (tlsFile: Record<string, unknown>, key: string): void => {
      assert.throws(
        () => validateConfig({ listen: { port: 8080 }, tls: { port: 8443, cert: "/c.pem", key: "/k.pem", ...tlsFile }, balancer: { members } }),
        (e: Error) => e instanceof ConfigError && e.key === key,
      );
    };
    it("defaults: TLS 1.2 floor, Mozilla intermediate suites, redirect on, no HSTS, origin from publicUrl", () => {
      const c = validateConfig({
        listen: { port: 80 },
        publicUrl: "http://www.example.org",
        tls: { port: 443, cert: "/c.pem", key: "/k.pem" },
        balancer: { members },
      });
      assert.equal(c.tls!.minVersion, "TLSv1.2");
      assert.match(c.tls!.ciphers, /^ECDHE-ECDSA-AES128-GCM-SHA256:/);
      assert.ok(!/(RC4|3DES|CBC|SHA1|MD5|NULL)/.test(c.tls!.ciphers));
      assert.equal(c.tls!.redirect, true);
      assert.equal(c.tls!.hstsMaxAge, 0);
      assert.equal(c.tls!.publicUrl, "https://www.example.org");
    });
    it("refuses what it cannot use, naming the key", () => {
      bad({ port: 8080 }, "tls.port");
      bad({ cert: "c.pem" }, "tls.cert");
      bad({ minVersion: "TLSv1.1" }, "tls.minVersion");
      bad({ ciphers: "HIGH; rm -rf" }, "tls.ciphers");
      bad({ publicUrl: "http://x" }, "tls.publicUrl");
      bad({ redirectExempt: ["nope"] }, "tls.redirectExempt[0]");
      bad({ hstsMaxAge: -1 }, "tls.hstsMaxAge");
      bad({ extra: 1 }, "tls.extra");
    });
  });
});
