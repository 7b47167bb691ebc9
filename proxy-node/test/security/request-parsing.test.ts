// How the proxy reads a client's request head and body. Anything that two
// HTTP parsers could read differently (the root of request smuggling) is
// refused outright: the client gets an error status and `Connection: close`,
// the proxy closes the connection, and no member ever sees the request.
import { strict as assert } from "node:assert";
import * as net from "node:net";
import { startMember, startProxy, baseConfig, closeAll, sleep, until, MemberServer } from "../helpers";
import type { ProxyNode } from "../../src/app";
import { parseResponses, show } from "../raw-http";

const clients = new Set<net.Socket>();

/** What came back on one connection, and whether the proxy closed it. */
interface Outcome {
  out: string;
  closed: boolean;
}

/** Writes `data` on a fresh connection, then collects what comes back until the proxy closes it (or `deadlineMs` passes). */
async function exchange(port: number, data: string, deadlineMs = 1200): Promise<Outcome> {
  const s = net.connect(port, "127.0.0.1");
  clients.add(s);
  const chunks: Buffer[] = [];
  let closed = false;
  s.on("data", (c: Buffer) => chunks.push(c));
  s.on("error", () => undefined);
  s.on("close", () => {
    closed = true;
    clients.delete(s);
  });
  s.write(data, "latin1");
  await until(() => closed, "close", deadlineMs).catch(() => undefined);
  s.destroy();
  return { out: Buffer.concat(chunks).toString("latin1"), closed };
}

/** The client got `status`, was told and shown the connection closes, and the member saw nothing. */
async function assertRefused(lb1: MemberServer, app: ProxyNode, data: string, status: number): Promise<void> {
  const { out, closed } = await exchange(app.port, data);
  assert.match(out, new RegExp(`^HTTP/1\\.[01] ${status} `), `expected ${status}, got ${show(out)}`);
  const head = out.slice(0, out.indexOf("\r\n\r\n") + 2);
  assert.match(head, /\r\nConnection: *close\r\n/i, `expected Connection: close in ${show(head)}`);
  assert.ok(closed, `the proxy keeps the connection open after ${show(out)}`);
  // A request the proxy had forwarded would have been recorded by now; give a late one a moment anyway.
  await sleep(50);
  assert.deepEqual(
    lb1.seen.map((r) => `${r.method} ${r.url}`),
    [],
    "a member saw the request",
  );
}

async function setup() {
  const lb1 = await startMember("lb1");
  const app = await startProxy(baseConfig([{ url: lb1.url, route: "lb1" }]));
  return { lb1, app };
}

describe("security: request parsing (smuggling and malformed requests)", () => {
  afterEach(async () => {
    for (const s of clients) s.destroy();
    clients.clear();
    await closeAll();
  });

  it("TE.CL smuggling (Transfer-Encoding: chunked, then Content-Length) is refused with 400 and no member sees either request", async () => {
    const { lb1, app } = await setup();
    await assertRefused(
      lb1,
      app,
      "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 6\r\n\r\n0\r\n\r\nGET /admin HTTP/1.1\r\nHost: x\r\n\r\n",
      400,
    );
  });

  for (const te of ["gzip, chunked", "chunked, identity", "identity"]) {
    it(`Transfer-Encoding "${te}" (not exactly chunked) is refused with 501 and reaches no member`, async () => {
      const { lb1, app } = await setup();
      await assertRefused(lb1, app, `POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: ${te}\r\n\r\n5\r\nhello\r\n0\r\n\r\n`, 501);
    });
  }

  it("Transfer-Encoding in an HTTP/1.0 request is refused with 400", async () => {
    const { lb1, app } = await setup();
    await assertRefused(lb1, app, "POST / HTTP/1.0\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n", 400);
  });

  for (const cl of ["+5", "5 5", "0x5", "-1", "5, 5"]) {
    it(`Content-Length "${cl}" is refused with 400`, async () => {
      const { lb1, app } = await setup();
      await assertRefused(lb1, app, `POST / HTTP/1.1\r\nHost: x\r\nContent-Length: ${cl}\r\n\r\nhello`, 400);
    });
  }

  it('a space between a header name and its colon ("Host : x") is refused with 400', async () => {
    const { lb1, app } = await setup();
    await assertRefused(lb1, app, "GET / HTTP/1.1\r\nHost : x\r\n\r\n", 400);
  });

  it('a space before the colon of Content-Length ("Content-Length : 5") is refused with 400, not read as a bodiless request', async () => {
    const { lb1, app } = await setup();
    await assertRefused(lb1, app, "POST / HTTP/1.1\r\nHost: x\r\nContent-Length : 5\r\n\r\nhello", 400);
  });

  it("obsolete line folding (a header line starting with a space) is refused with 400", async () => {
    const { lb1, app } = await setup();
    await assertRefused(lb1, app, "GET / HTTP/1.1\r\nHost: x\r\nX-Folded: a\r\n b\r\n\r\n", 400);
  });

  it("obsolete line folding (a header line starting with a tab) is refused with 400", async () => {
    const { lb1, app } = await setup();
    await assertRefused(lb1, app, "GET / HTTP/1.1\r\nHost: x\r\nX-Folded: a\r\n\tb\r\n\r\n", 400);
  });

  it("a NUL byte in a header value is refused with 400", async () => {
    const { lb1, app } = await setup();
    await assertRefused(lb1, app, "GET / HTTP/1.1\r\nHost: x\r\nX-Bad: a\x00b\r\n\r\n", 400);
  });

  it("a bare CR in a header value is refused with 400", async () => {
    const { lb1, app } = await setup();
    await assertRefused(lb1, app, "GET / HTTP/1.1\r\nHost: x\r\nX-Bad: a\rb\r\n\r\n", 400);
  });

  it("bare LF line endings in the request head are refused with 400", async () => {
    const { lb1, app } = await setup();
    await assertRefused(lb1, app, "GET / HTTP/1.1\nHost: x\n\n", 400);
  });

  it('a bare LF before the final CRLF ("Host: x\\n\\r\\n") is refused with 400 at once, not after the header timeout', async () => {
    const { lb1, app } = await setup();
    await assertRefused(lb1, app, "GET /a HTTP/1.1\r\nHost: x\n\r\n", 400);
  });

  it("a bare LF inside an unfinished head is refused at once", async () => {
    const { lb1, app } = await setup();
    await assertRefused(lb1, app, "GET /a HTTP/1.1\r\nHost: x\nX-More: y\r\n", 400);
  });

  const badRequestLines: Array<[string, string]> = [
    ["two spaces between method and target", "GET  / HTTP/1.1"],
    ['a lowercase version ("http/1.1")', "GET / http/1.1"],
    ["no version", "GET /"],
    ['a method with a non-token character ("GE(T")', "GE(T / HTTP/1.1"],
  ];
  for (const [what, line] of badRequestLines) {
    it(`a request line with ${what} is refused with 400`, async () => {
      const { lb1, app } = await setup();
      await assertRefused(lb1, app, `${line}\r\nHost: x\r\n\r\n`, 400);
    });
  }

  for (const version of ["HTTP/2.0", "HTTP/3.1"]) {
    it(`an unsupported version (${version}) is refused with 505`, async () => {
      const { lb1, app } = await setup();
      await assertRefused(lb1, app, `GET / ${version}\r\nHost: x\r\n\r\n`, 505);
    });
  }

  // The head is fine here, so the proxy may already have sent it to a member;
  // the test member records a request only once its body is complete, so
  // `seen` staying empty means no member got a whole (smuggled) request.
  const badChunks: Array<[string, string]> = [
    ['a chunk size that is not hex ("zz")', "zz\r\nhello\r\n0\r\n\r\n"],
    ["a chunk size too large to be real", "fffffffffffffffffff\r\nhello\r\n0\r\n\r\n"],
    ["chunk data not followed by CRLF", "5\r\nhelloXX\r\n0\r\n\r\n"],
  ];
  for (const [what, body] of badChunks) {
    it(`a chunked body with ${what} gets 400, the connection is closed and no member gets a complete request`, async () => {
      const { lb1, app } = await setup();
      await assertRefused(lb1, app, `POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n${body}`, 400);
    });
  }

  it("two Host headers are refused with 400", async () => {
    const { lb1, app } = await setup();
    await assertRefused(lb1, app, "GET / HTTP/1.1\r\nHost: a.example\r\nHost: b.example\r\n\r\n", 400);
  });

  it("a request hidden in a chunked body stays body, and the request after the body is answered on its own, in order", async () => {
    const lb1 = await startMember("lb1", (req, res, body) => {
      const text = `${req.method} ${req.url} ${body.length}`;
      res.writeHead(200, { "Content-Length": String(text.length) });
      res.end(text);
    });
    const app = await startProxy(baseConfig([{ url: lb1.url, route: "lb1" }]));
    // The chunk's data looks like a last chunk followed by a request; its size
    // is in uppercase hex with a chunk extension: unusual, but valid framing.
    const hidden = "0\r\n\r\nGET /admin HTTP/1.1\r\nHost: x\r\n\r\n";
    const size = hidden.length.toString(16).toUpperCase();
    const data =
      `POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n${size};note=1\r\n${hidden}\r\n0\r\n\r\n` +
      "GET /second HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    const { out, closed } = await exchange(app.port, data);
    const { responses, rest } = parseResponses(out, closed, ["POST", "GET"]);
    assert.equal(responses.length, 2, `not two complete responses in ${show(out)}`);
    const [first, second] = responses;
    assert.deepEqual([first.status, first.body, second.status, second.body], [200, `POST / ${hidden.length}`, 200, "GET /second 0"]);
    assert.equal(rest, "", `bytes after the second response: ${show(rest)}`);
    assert.deepEqual(
      lb1.seen.map((r) => [r.method, r.url, r.body]),
      [
        ["POST", "/", hidden],
        ["GET", "/second", ""],
      ],
    );
  });
});
