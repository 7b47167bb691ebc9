import { strict as assert } from "node:assert";
import { ResponseParser, ResponseHead, ParseError } from "../../src/proxy/response-parser";

interface Seen {
  heads: ResponseHead[];
  body: string;
  complete: number;
}

function feed(parts: Buffer[], head = false): Seen {
  const seen: Seen = { heads: [], body: "", complete: 0 };
  const p = new ResponseParser();
  p.start({ head: (h) => seen.heads.push(h), body: (b) => (seen.body += b.toString("latin1")), complete: () => seen.complete++ }, head);
  for (const part of parts) p.execute(part);
  return seen;
}

/** Every split of `text` into two pieces must parse the same as the whole. */
function allSplits(text: string, check: (s: Seen) => void): void {
  const b = Buffer.from(text, "latin1");
  for (let i = 0; i <= b.length; i++) check(feed([b.subarray(0, i), b.subarray(i)]));
  // And one byte at a time.
  check(feed([...b].map((x) => Buffer.from([x]))));
}

describe("unit: member response parser", () => {
  it("Content-Length body, split anywhere", () => {
    allSplits("HTTP/1.1 200 OK\r\nContent-Length: 5\r\nSet-Cookie: a=b\r\n\r\nhello", (s) => {
      assert.equal(s.heads[0].status, 200);
      assert.equal(s.heads[0].reason, "OK");
      assert.deepEqual(s.heads[0].raw, ["Content-Length", "5", "Set-Cookie", "a=b"]);
      assert.equal(s.heads[0].keepAlive, true);
      assert.equal(s.body, "hello");
      assert.equal(s.complete, 1);
    });
  });

  it("chunked body with extensions and trailers, split anywhere", () => {
    allSplits("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5;ext=1\r\nhello\r\nA\r\n0123456789\r\n0\r\nX-Trailer: t\r\n\r\n", (s) => {
      assert.equal(s.body, "hello0123456789");
      assert.equal(s.complete, 1);
      assert.equal(s.heads[0].keepAlive, true);
    });
  });

  it("interim 100 Continue is skipped; the final response is reported", () => {
    const s = feed([Buffer.from("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n")]);
    assert.deepEqual(
      s.heads.map((h) => h.status),
      [201],
    );
    assert.equal(s.complete, 1);
  });

  it("no length: the body runs until close and the connection is not reused", () => {
    const p = new ResponseParser();
    let body = "";
    let done = 0;
    let keep = true;
    p.start({ head: (h) => (keep = h.keepAlive), body: (b) => (body += b), complete: () => done++ }, false);
    p.execute(Buffer.from("HTTP/1.0 200 OK\r\n\r\npart1"));
    p.execute(Buffer.from("part2"));
    assert.equal(done, 0);
    assert.ok(p.closed());
    assert.equal(body, "part1part2");
    assert.equal(done, 1);
    assert.equal(keep, false);
  });

  it("HEAD, 204 and 304 have no body even with Content-Length", () => {
    assert.equal(feed([Buffer.from("HTTP/1.1 200 OK\r\nContent-Length: 1234\r\n\r\n")], true).complete, 1);
    assert.equal(feed([Buffer.from("HTTP/1.1 304 Not Modified\r\nContent-Length: 10\r\n\r\n")]).complete, 1);
    assert.equal(feed([Buffer.from("HTTP/1.1 204 No Content\r\n\r\n")]).complete, 1);
  });

  it("Connection: close means the connection is not reused", () => {
    assert.equal(feed([Buffer.from("HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n")]).heads[0].keepAlive, false);
  });

  it("malformed responses are errors, never guesses", () => {
    const bad = [
      "HTTP/2 200 OK\r\n\r\n",
      "HTTP/1.1 2x0 OK\r\n\r\n",
      "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
      "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n",
      "HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
      "HTTP/1.1 200 OK\r\n folded: x\r\n\r\n",
      "HTTP/1.1 200 OK\r\nBad Name: x\r\n\r\n",
      "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
      "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nabX\r\n",
      "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nabEXTRA",
    ];
    for (const text of bad) assert.throws(() => feed([Buffer.from(text)]), ParseError, JSON.stringify(text));
  });
});
