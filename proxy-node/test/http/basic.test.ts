import { strict as assert } from "node:assert";
import * as http from "node:http";
import { startMember, startProxy, baseConfig, request, closeAll } from "../helpers";

describe("http: proxying to a member", () => {
  afterEach(closeAll);

  it("a GET reaches the member and its answer comes back", async () => {
    const lb1 = await startMember("lb1");
    const app = await startProxy(baseConfig([{ url: lb1.url, route: "lb1" }]));
    const r = await request(app.port, { path: "/node/1?x=1" });
    assert.equal(r.status, 200);
    assert.equal(r.body, "lb1");
    assert.equal(lb1.seen[0].url, "/node/1?x=1");
  });

  it("the member sees X-Forwarded-For, -Proto, -Host and Via; its own Host", async () => {
    const lb1 = await startMember("lb1");
    const app = await startProxy(baseConfig([{ url: lb1.url, route: "lb1" }]));
    await request(app.port, { path: "/", headers: { Host: "www.example.org", "X-Forwarded-For": "10.9.9.9", "X-Forwarded-Proto": "https" } });
    const h = lb1.seen[0].headers;
    // A client's own forwarding headers are not passed on (see security/forwarded-headers).
    assert.equal(h["x-forwarded-for"], "127.0.0.1");
    assert.equal(h["x-forwarded-proto"], "http");
    assert.equal(h["x-forwarded-host"], "www.example.org");
    assert.equal(h.host, `127.0.0.1:${lb1.port}`);
    assert.match(String(h.via), /^1\.1 .*proxy-node/);
  });

  it("a peer in trustForwardedFrom keeps its X-Forwarded-For and -Proto; ours is appended", async () => {
    const lb1 = await startMember("lb1");
    const app = await startProxy(baseConfig([{ url: lb1.url, route: "lb1" }], { trustForwardedFrom: ["127.0.0.0/8"] }));
    await request(app.port, { path: "/", headers: { Host: "www.example.org", "X-Forwarded-For": "10.9.9.9", "X-Forwarded-Proto": "https" } });
    const h = lb1.seen[0].headers;
    assert.equal(h["x-forwarded-for"], "10.9.9.9, 127.0.0.1");
    assert.equal(h["x-forwarded-proto"], "https");
  });

  it("preserveHost sends the client Host to the member", async () => {
    const lb1 = await startMember("lb1");
    const app = await startProxy(baseConfig([{ url: lb1.url, route: "lb1" }], {}, { preserveHost: true }));
    await request(app.port, { path: "/", headers: { Host: "www.example.org" } });
    assert.equal(lb1.seen[0].headers.host, "www.example.org");
  });

  it("hop-by-hop headers are not forwarded in either direction", async () => {
    const lb1 = await startMember("lb1", (_req, res) => {
      res.writeHead(200, { Connection: "X-Secret-Hop", "X-Secret-Hop": "no", "Keep-Alive": "timeout=5", "Proxy-Authenticate": "Basic", "X-End": "yes" });
      res.end("ok");
    });
    const app = await startProxy(baseConfig([{ url: lb1.url, route: "lb1" }]));
    const r = await request(app.port, {
      path: "/",
      headers: {
        Connection: "keep-alive, X-Client-Hop",
        "X-Client-Hop": "no",
        TE: "trailers",
        "Proxy-Authorization": "Basic eDp5",
        "Keep-Alive": "300",
        "X-Keep": "yes",
      },
    });
    const h = lb1.seen[0].headers;
    assert.equal(h["x-client-hop"], undefined);
    assert.equal(h.te, undefined);
    assert.equal(h["proxy-authorization"], undefined);
    assert.equal(h["keep-alive"], undefined);
    assert.equal(h["x-keep"], "yes");
    assert.equal(r.headers["x-secret-hop"], undefined);
    assert.equal(r.headers["proxy-authenticate"], undefined);
    assert.equal(r.headers["x-end"], "yes");
    assert.match(String(r.headers.via), /proxy-node/);
  });

  it("a Location naming a member is rewritten to the public URL (ProxyPassReverse)", async () => {
    let port = 0;
    const lb1 = await startMember("lb1", (_req, res) => {
      res.writeHead(302, {
        Location: `http://127.0.0.1:${port}/user/login?x=1`,
        "Content-Location": `http://127.0.0.1:${port}/a`,
        URI: `http://127.0.0.1:${port}`,
        "X-Other": `http://127.0.0.1:${port}/`,
      });
      res.end();
    });
    port = lb1.port;
    const app = await startProxy(baseConfig([{ url: lb1.url, route: "lb1" }]));
    const r = await request(app.port, { path: "/" });
    assert.equal(r.status, 302);
    assert.equal(r.headers.location, "http://public.example:8080/user/login?x=1");
    assert.equal(r.headers["content-location"], "http://public.example:8080/a");
    assert.equal(r.headers.uri, "http://public.example:8080");
    assert.equal(r.headers["x-other"], `http://127.0.0.1:${port}/`);
  });

  it("a Location naming another site is left alone", async () => {
    const lb1 = await startMember("lb1", (_req, res) => {
      res.writeHead(301, { Location: "https://www.drupal.org/" });
      res.end();
    });
    const app = await startProxy(baseConfig([{ url: lb1.url, route: "lb1" }]));
    const r = await request(app.port, { path: "/" });
    assert.equal(r.headers.location, "https://www.drupal.org/");
  });

  it("a large upload and a large download are streamed through intact", async () => {
    const big = Buffer.alloc(5 * 1024 * 1024, "abcdefghij");
    const lb1 = await startMember("lb1", (_req, res, body) => {
      res.writeHead(200, { "Content-Type": "text/plain" });
      // Chunked response: no Content-Length, written in pieces.
      for (let i = 0; i < 4; i++) res.write(body);
      res.end();
    });
    const app = await startProxy(baseConfig([{ url: lb1.url, route: "lb1" }]));
    const r = await request(app.port, { path: "/upload", method: "POST", body: big, headers: { "Content-Type": "text/plain" } });
    assert.equal(r.status, 200);
    assert.equal(r.body.length, big.length * 4);
    assert.equal(lb1.seen[0].body.length, big.length);
  });

  it("a chunked request body (no Content-Length) reaches the member", async () => {
    const lb1 = await startMember("lb1", (_req, res, body) => res.end(`got ${body}`));
    const app = await startProxy(baseConfig([{ url: lb1.url, route: "lb1" }]));
    const r = await new Promise<string>((resolve, reject) => {
      const req = http.request({ host: "127.0.0.1", port: app.port, method: "POST", path: "/", agent: false }, (res) => {
        let s = "";
        res.on("data", (c) => (s += c));
        res.on("end", () => resolve(s));
      });
      req.on("error", reject);
      req.write("part1-");
      setTimeout(() => req.end("part2"), 50);
    });
    assert.equal(r, "got part1-part2");
    assert.equal(lb1.seen[0].headers["transfer-encoding"], "chunked");
  });

  it("HEAD and 304 answers carry no body and keep the connection usable", async () => {
    const lb1 = await startMember("lb1", (req, res) => {
      if (req.method === "HEAD") {
        res.writeHead(200, { "Content-Length": "1234" });
        res.end();
        return;
      }
      res.writeHead(304, { ETag: '"x"' });
      res.end();
    });
    const app = await startProxy(baseConfig([{ url: lb1.url, route: "lb1" }]));
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    try {
      const h = await request(app.port, { method: "HEAD", path: "/", agent });
      assert.equal(h.status, 200);
      assert.equal(h.headers["content-length"], "1234");
      const n = await request(app.port, { path: "/", agent });
      assert.equal(n.status, 304);
      assert.equal(n.body, "");
    } finally {
      agent.destroy();
    }
  });

  it("keep-alive: many requests from one client reuse few member connections", async () => {
    const lb1 = await startMember("lb1");
    let connections = 0;
    lb1.server.on("connection", () => connections++);
    const app = await startProxy(baseConfig([{ url: lb1.url, route: "lb1" }]));
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    try {
      for (let i = 0; i < 20; i++) assert.equal((await request(app.port, { path: "/", agent })).body, "lb1");
    } finally {
      agent.destroy();
    }
    assert.equal(connections, 1);
  });

  it("a member that never answers gets a 504 after headersMs", async () => {
    const lb1 = await startMember("lb1", () => undefined);
    const app = await startProxy(baseConfig([{ url: lb1.url, route: "lb1" }], { timeouts: { headersMs: 300 } }));
    const r = await request(app.port, { path: "/slow" });
    assert.equal(r.status, 504);
  });

  it("no usable member: 503 with Retry-After", async () => {
    const lb1 = await startMember("lb1");
    const app = await startProxy(baseConfig([{ url: lb1.url, route: "lb1", status: "stopped" }]));
    const r = await request(app.port, { path: "/" });
    assert.equal(r.status, 503);
    assert.equal(r.headers["retry-after"], "1");
    assert.equal(lb1.seen.length, 0);
  });
});

describe("http: slow readers and connection reuse", () => {
  afterEach(closeAll);

  it("a client that reads a large answer slowly gets all of it, and the next request on the pooled connection works", async function () {
    this.timeout(30_000);
    const big = Buffer.alloc(8 * 1024 * 1024, "z");
    const lb1 = await startMember("lb1", (req, res) => {
      if (req.url === "/big") {
        res.writeHead(200, { "Content-Length": String(big.length) });
        return void res.end(big);
      }
      res.end("small");
    });
    const app = await startProxy(baseConfig([{ url: lb1.url, route: "lb1", maxSockets: 1 }]));
    const got = await new Promise<number>((resolve, reject) => {
      http
        .get({ host: "127.0.0.1", port: app.port, path: "/big", agent: false }, (res) => {
          let n = 0;
          res.on("data", (c: Buffer) => {
            n += c.length;
            res.pause();
            setTimeout(() => res.resume(), 1);
          });
          res.on("end", () => resolve(n));
          res.on("error", reject);
        })
        .on("error", reject);
    });
    assert.equal(got, big.length);
    // maxSockets 1: this must reuse the same member connection.
    for (let i = 0; i < 3; i++) assert.equal((await request(app.port, { path: "/small" })).body, "small");
  });
});
