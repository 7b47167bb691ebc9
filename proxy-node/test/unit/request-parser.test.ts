import { strict as assert } from "node:assert";
import { parseRequestHead, RequestHead, RequestError, BodyDecoder, BodySink, Framing } from "../../src/proxy/request-parser";
import { refuseStatus } from "../../src/proxy/incoming";
import { damage, prng } from "../fuzz";

const MAX_HEADERS = 100;

function parse(head: string, maxHeadersCount = MAX_HEADERS): RequestHead {
  return parseRequestHead(head, maxHeadersCount);
}

/** The status a head is refused with, or 0 when it is accepted. */
function statusOf(head: string, maxHeadersCount = MAX_HEADERS): number {
  try {
    parseRequestHead(head, maxHeadersCount);
    return 0;
  } catch (e) {
    if (e instanceof RequestError) return e.status;
    throw e;
  }
}

function refused(status: number, heads: readonly string[], maxHeadersCount = MAX_HEADERS): void {
  for (const head of heads) assert.equal(statusOf(head, maxHeadersCount), status, JSON.stringify(head));
}

/** A request line and Host, so the header under test is the only thing at stake. */
const req = (...lines: string[]): string => ["GET / HTTP/1.1", "Host: h", ...lines].join("\r\n");
const req10 = (...lines: string[]): string => ["GET / HTTP/1.0", ...lines].join("\r\n");

describe("unit: client request head parser", () => {
  it("a normal GET: method, target, version, raw headers in order with values trimmed, host, keep-alive", () => {
    const h = parse("GET /a/b?c=d&e=%20 HTTP/1.1\r\nHost: example.com\r\nAccept: \t */* \t\r\nX-Empty:\r\nX-Inner:a  \tb\r\nuser-agent: t/1");
    assert.equal(h.method, "GET");
    assert.equal(h.url, "/a/b?c=d&e=%20");
    assert.equal(h.minor, 1);
    assert.deepEqual(h.raw, ["Host", "example.com", "Accept", "*/*", "X-Empty", "", "X-Inner", "a  \tb", "user-agent", "t/1"]);
    assert.equal(h.host, "example.com");
    assert.equal(h.keepAlive, true);
    assert.equal(h.framing, Framing.None);
    assert.equal(h.contentLength, -1);
    assert.equal(h.cookie, undefined);
    assert.equal(h.hopTokens, null);
    assert.equal(h.expectContinue, false);
    assert.equal(h.upgrade, undefined);
  });

  it("HTTP/1.0 closes by default; Connection: keep-alive keeps it open unless close is also named", () => {
    assert.equal(parse(req10()).keepAlive, false);
    assert.equal(parse(req10()).minor, 0);
    assert.equal(parse(req10()).host, undefined);
    assert.equal(parse(req10("Connection: keep-alive")).keepAlive, true);
    assert.equal(parse(req10("Connection: Keep-Alive")).keepAlive, true);
    assert.equal(parse(req10("Connection: keep-alive, close")).keepAlive, false);
    assert.equal(parse(req10("Connection: keep-alive", "Connection: close")).keepAlive, false);
  });

  it("HTTP/1.1 keeps alive by default; Connection: close closes", () => {
    assert.equal(parse(req()).keepAlive, true);
    assert.equal(parse(req("Connection: keep-alive")).keepAlive, true);
    assert.equal(parse(req("Connection: close")).keepAlive, false);
    assert.equal(parse(req("Connection: CLOSE")).keepAlive, false);
    assert.equal(parse(req("Connection: x-foo ,\tclose")).keepAlive, false);
  });

  it("Connection tokens other than close, keep-alive and upgrade are reported lowercased as hop-by-hop", () => {
    assert.deepEqual(parse(req("Connection: keep-alive, X-Foo")).hopTokens, ["x-foo"]);
    assert.deepEqual(parse(req("Connection: X-A,, ,x-b", "Connection: close, X-C")).hopTokens, ["x-a", "x-b", "x-c"]);
    assert.equal(parse(req("Connection: keep-alive, close, upgrade")).hopTokens, null);
    assert.equal(parse(req("Connection:")).hopTokens, null);
  });

  it('several Cookie headers are joined with "; " in order', () => {
    const h = parse(req("Cookie: a=1", "X: y", "cookie: b=2; c=3", "COOKIE:  d=4 "));
    assert.equal(h.cookie, "a=1; b=2; c=3; d=4");
    assert.equal(parse(req("Cookie: only=1")).cookie, "only=1");
  });

  it("Upgrade is reported only when Connection names upgrade", () => {
    assert.equal(parse(req("Upgrade: websocket")).upgrade, undefined);
    assert.equal(parse(req("Upgrade: websocket", "Connection: keep-alive")).upgrade, undefined);
    assert.equal(parse(req("Upgrade: websocket", "Connection: Upgrade")).upgrade, "websocket");
    assert.equal(parse(req("Connection: keep-alive, upgrade", "Upgrade: websocket")).upgrade, "websocket");
    assert.equal(parse(req("Connection: upgrade")).upgrade, undefined);
  });

  it("Content-Length gives length framing; zero or no length gives none", () => {
    const five = parse(req("Content-Length: 5"));
    assert.equal(five.framing, Framing.Length);
    assert.equal(five.contentLength, 5);
    const zero = parse(req("Content-Length: 0"));
    assert.equal(zero.framing, Framing.None);
    assert.equal(zero.contentLength, 0);
    assert.equal(parse(req("content-length: 007")).contentLength, 7);
    assert.equal(parse(req("Content-Length: 999999999999999")).contentLength, 999999999999999);
  });

  it("Transfer-Encoding: chunked gives chunked framing, in any case", () => {
    for (const te of ["chunked", "Chunked", "CHUNKED", " chunked "]) {
      const h = parse(req(`Transfer-Encoding:${te}`));
      assert.equal(h.framing, Framing.Chunked, te);
      assert.equal(h.contentLength, -1, te);
    }
  });

  it("Expect: 100-continue in any case is flagged; any other expectation is 417", () => {
    assert.equal(parse(req("Expect: 100-continue")).expectContinue, true);
    assert.equal(parse(req("expect: 100-Continue")).expectContinue, true);
    refused(417, [req("Expect: 100-continue-please"), req("Expect: 200-ok"), req("Expect:"), req("Expect: 100-continue, x")]);
  });

  it("Content-Length with Transfer-Encoding is 400, in either order", () => {
    refused(400, [
      req("Content-Length: 5", "Transfer-Encoding: chunked"),
      req("Transfer-Encoding: chunked", "Content-Length: 5"),
      req("Transfer-Encoding: chunked", "Content-Length: 0"),
    ]);
  });

  it("Transfer-Encoding in an HTTP/1.0 request is 400", () => {
    refused(400, [req10("Transfer-Encoding: chunked"), req10("Host: h", "Transfer-Encoding: gzip")]);
  });

  it("a Transfer-Encoding other than exactly chunked is 501", () => {
    refused(501, [
      req("Transfer-Encoding: gzip"),
      req("Transfer-Encoding: gzip, chunked"),
      req("Transfer-Encoding: chunked, gzip"),
      req("Transfer-Encoding: identity"),
      req("Transfer-Encoding: chunked;q=1"),
      req("Transfer-Encoding: chunked", "Transfer-Encoding: chunked"),
      req("Transfer-Encoding:"),
    ]);
  });

  it("malformed Content-Length values are 400", () => {
    refused(
      400,
      ["", " ", "-1", "+5", "5 5", "0x5", "5,5", "5, 5", "1e3", "1234567890123456", "five"].map((v) => req(`Content-Length: ${v}`)),
    );
  });

  it("more than one Content-Length header is 400, even identical repeats (we would pass both on to the member)", () => {
    refused(400, [req("Content-Length: 5", "Content-Length: 6"), req("Content-Length: 0", "content-length: 1"), req("Content-Length: 5", "content-length: 5")]);
    const h = parse(req("CONTENT-LENGTH: 05"));
    assert.equal(h.framing, Framing.Length);
    assert.equal(h.contentLength, 5);
  });

  it("two Host headers are 400", () => {
    refused(400, [req("Host: h"), req("host: other"), req10("Host: a", "HOST: a")]);
  });

  it("HTTP/1.1 without Host is 400; HTTP/1.0 without Host is fine", () => {
    refused(400, ["GET / HTTP/1.1", "GET / HTTP/1.1\r\nX-Host: h"]);
    assert.equal(parse("GET / HTTP/1.0").host, undefined);
    assert.equal(parse("GET / HTTP/1.1\r\nHost:").host, "");
  });

  it("obs-fold (a header line starting with space or tab) is 400", () => {
    refused(400, [req("X: a", " b"), req("X: a", "\tb"), "GET / HTTP/1.1\r\n Host: h", req(" X: a")]);
  });

  it("whitespace before the colon, an empty name or a line without a colon is 400", () => {
    refused(400, [req("X : a"), req("X\t: a"), req(": a"), req("X"), req("X a: b"), req("X\u00ff: a"), req('X"y: a')]);
  });

  it("a control character in a header value is 400; obs-text bytes 0x80-0xFF are accepted and kept", () => {
    refused(
      400,
      ["\0", "\x01", "\x1f", "\x7f", "\r", "\n", "\v", "\f"].map((c) => req(`X: a${c}b`)),
    );
    const h = parse(req("X: caf\u00e9 \x80\u00ff", "Y: a\tb"));
    assert.deepEqual(h.raw.slice(2), ["X", "caf\u00e9 \x80\u00ff", "Y", "a\tb"]);
  });

  it("a method that is not a token is 400", () => {
    refused(
      400,
      ["G(T", "GE\0T", "G\u00ffT", 'GE"T', "G:T", "G/T", "G,T"].map((m) => `${m} / HTTP/1.1\r\nHost: h`),
    );
    refused(400, [" / HTTP/1.1\r\nHost: h", "\tGET / HTTP/1.1\r\nHost: h", "GET\t/ HTTP/1.1\r\nHost: h", "GET"]);
    // Any token is a method (RFC 9110 9.1); the case is significant.
    assert.equal(parse("M-SEARCH * HTTP/1.1\r\nHost: h").method, "M-SEARCH");
    assert.equal(parse("get / HTTP/1.1\r\nHost: h").method, "get");
  });

  it("a request target with a space, a CTL, DEL or a raw byte above 0x7F is 400", () => {
    refused(
      400,
      ["/a b", "/a\tb", "/a\0b", "/a\x01", "/\x1f", "/a\x7f", "/a\rb", "/a\nb", "/caf\u00e9", "/\u00ff", "/\x80"].map((u) => `GET ${u} HTTP/1.1\r\nHost: h`),
    );
    assert.equal(parse("GET /caf%C3%A9?q=%FF HTTP/1.1\r\nHost: h").url, "/caf%C3%A9?q=%FF");
    refused(400, ["GET  / HTTP/1.1\r\nHost: h", "GET / HTTP/1.1 \r\nHost: h", "GET /\r\nHost: h", "GET / \r\nHost: h"]);
  });

  it("versions: 1.2, 2.0 and 0.9 are 505; anything malformed is 400", () => {
    refused(
      505,
      ["HTTP/1.2", "HTTP/2.0", "HTTP/0.9", "HTTP/3.0"].map((v) => `GET / ${v}\r\nHost: h`),
    );
    refused(
      400,
      ["HTTP/1.1x", "http/1.1", "Http/1.1", "HTTP/1", "HTTP/11", "HTTP/1.", "HTTP/2", "HTTP/ 1.1", "HTTP/1.1\0", "HTTP/10.1", "HTTP/1.a"].map(
        (v) => `GET / ${v}\r\nHost: h`,
      ),
    );
  });

  it("more header fields than maxHeadersCount is 431; exactly the limit is fine", () => {
    const lines = Array.from({ length: 9 }, (_, i) => `X-${i}: ${i}`);
    assert.equal(parse(req(...lines), 10).raw.length, 20);
    refused(431, [req(...lines, "X-9: 9")], 10);
    assert.equal(parse(req10(), 0).raw.length, 0);
    refused(431, [req10("X: y")], 0);
  });
});

/** What a decoder delivered for one way of splitting the input. */
interface Decoded {
  body: string;
  done: boolean;
  /** Bytes taken from the input (not counting the head before the body). */
  consumed: number;
}

/** The head a body follows in the same read, as client.ts hands it over: execute() starts at an offset. */
const BEFORE = Buffer.from("POST / HTTP/1.1\r\nHost: h\r\n\r\n", "latin1");

function decode(framing: Framing, length: number, pieces: readonly Buffer[], maxTrailerSize: number): Decoded {
  const d = new BodyDecoder(maxTrailerSize);
  d.start(framing, length);
  const got: Decoded = { body: "", done: d.done, consumed: 0 };
  const sink: BodySink = { bodyData: (c) => (got.body += c.toString("latin1")) };
  pieces.forEach((piece, i) => {
    if (d.done) return;
    const buf = i === 0 ? Buffer.concat([BEFORE, piece]) : piece;
    const from = i === 0 ? BEFORE.length : 0;
    const end = d.execute(buf, from, sink);
    assert.ok(end >= from && end <= buf.length, `offset ${end} out of ${from}..${buf.length}`);
    // A body still incomplete takes everything it is given.
    if (!d.done) assert.equal(end, buf.length);
    got.consumed += end - from;
  });
  got.done = d.done;
  return got;
}

/** The input split in two at every position, then one byte at a time. */
function splits(text: string): Buffer[][] {
  const b = Buffer.from(text, "latin1");
  const out: Buffer[][] = [];
  for (let i = 0; i <= b.length; i++) out.push([b.subarray(0, i), b.subarray(i)]);
  out.push([...b].map((x) => Buffer.from([x])));
  return out;
}

const described = (pieces: readonly Buffer[]): string => JSON.stringify(pieces.map((p) => p.toString("latin1")));

function decodeAllSplits(framing: Framing, length: number, text: string, check: (d: Decoded) => void, maxTrailerSize = 1024): void {
  for (const pieces of splits(text)) {
    let d: Decoded;
    try {
      d = decode(framing, length, pieces, maxTrailerSize);
    } catch (e) {
      throw new assert.AssertionError({ message: `${String(e)}, with the body split as ${described(pieces)}` });
    }
    check(d);
  }
}

/** Every way of splitting a malformed body is refused with the same status. */
function refusedAllSplits(status: number, text: string, maxTrailerSize = 1024): void {
  for (const pieces of splits(text)) {
    assert.throws(
      () => decode(Framing.Chunked, -1, pieces, maxTrailerSize),
      (e: unknown) => e instanceof RequestError && e.status === status,
      `${JSON.stringify(text)} split as ${described(pieces)}`,
    );
  }
}

const NEXT = "GET /next HTTP/1.1\r\nHost: h\r\n\r\n";

describe("unit: client request body decoder", () => {
  it("Content-Length body, split anywhere, stops at its end and leaves a pipelined request unread", () => {
    const body = "hello\r\n0\r\n\r\nworld";
    decodeAllSplits(Framing.Length, body.length, body + NEXT, (d) => {
      assert.equal(d.body, body);
      assert.equal(d.done, true);
      assert.equal(d.consumed, body.length);
    });
  });

  it("no body and an empty Content-Length body are done before any byte is read", () => {
    for (const [framing, length] of [
      [Framing.None, -1],
      [Framing.Length, 0],
    ] as const) {
      const d = decode(framing, length, [Buffer.from(NEXT)], 1024);
      assert.deepEqual(d, { body: "", done: true, consumed: 0 });
    }
  });

  it("chunked body with extensions and trailers, split anywhere, ends exactly after the empty line", () => {
    const chunked =
      '5;name=value;flag\r\nhello\r\nA ; q="a b"\t\r\n0123456789\r\n001\r\n!\r\na\r\n\r\n\r\n\r\n\r\n\r\n\r\n0;last\r\nX-Trailer: t\r\nY: u\r\n\r\n';
    decodeAllSplits(Framing.Chunked, -1, chunked + NEXT, (d) => {
      assert.equal(d.body, "hello0123456789!\r\n\r\n\r\n\r\n\r\n");
      assert.equal(d.done, true);
      assert.equal(d.consumed, chunked.length);
    });
  });

  it('an empty chunked body, split anywhere, consumes exactly "0\\r\\n\\r\\n"', () => {
    decodeAllSplits(Framing.Chunked, -1, "0\r\n\r\n" + NEXT, (d) => {
      assert.deepEqual(d, { body: "", done: true, consumed: 5 });
    });
  });

  it("a chunked body cut short is not done and has delivered what it could", () => {
    const d = decode(Framing.Chunked, -1, [Buffer.from("5\r\nhel")], 1024);
    assert.deepEqual(d, { body: "hel", done: false, consumed: 6 });
    const t = decode(Framing.Chunked, -1, [Buffer.from("1\r\nx\r\n0\r\nX: y\r\n")], 1024);
    assert.deepEqual(t, { body: "x", done: false, consumed: 15 });
  });

  it("a chunk size of up to 12 hex digits is accepted; more is 400", () => {
    decodeAllSplits(Framing.Chunked, -1, "000000000001\r\nx\r\n0\r\n\r\n", (d) => assert.equal(d.body, "x"));
    refusedAllSplits(400, "0000000000001\r\nx\r\n0\r\n\r\n");
    refusedAllSplits(400, "fffffffffffff\r\n");
  });

  it("a chunk size that is not hex is 400", () => {
    for (const size of ["zz", "", "-1", "0x5", "+5", "g", ";ext", " 5", "5\0"]) refusedAllSplits(400, `${size}\r\nhello\r\n0\r\n\r\n`);
  });

  it("chunk data not followed by CRLF is 400", () => {
    refusedAllSplits(400, "2\r\nabX\r\n0\r\n\r\n");
    refusedAllSplits(400, "2\r\nab\n0\r\n\r\n");
    refusedAllSplits(400, "2\r\nab\rX0\r\n\r\n");
    refusedAllSplits(400, "2\r\nab\r\r\n0\r\n\r\n");
  });

  it("a bare LF ending a size line or a trailer line is 400", () => {
    refusedAllSplits(400, "5\nhello\r\n0\r\n\r\n");
    refusedAllSplits(400, "5;ext\nhello\r\n0\r\n\r\n");
    refusedAllSplits(400, "0\n\r\n");
    refusedAllSplits(400, "0\r\nX: y\n\r\n");
    refusedAllSplits(400, "0\r\n\n");
  });

  it("a control character in a chunk extension is 400", () => {
    for (const c of ["\0", "\x01", "\r", "\x1f", "\x7f"]) refusedAllSplits(400, `5;a=${c}b\r\nhello\r\n0\r\n\r\n`);
  });

  // Each trailer line counts with its CRLF: this one is exactly 32 bytes.
  const TRAILER_32 = `X-Big: ${"a".repeat(23)}\r\n`;

  it("trailers larger than the limit are 431", () => {
    assert.equal(TRAILER_32.length, 32);
    refusedAllSplits(431, `1\r\nx\r\n0\r\n${TRAILER_32}Y: z\r\n\r\n`, 32);
    refusedAllSplits(431, `0\r\nX-Big: ${"a".repeat(40)}\r\n\r\n`, 32);
    refusedAllSplits(431, `0\r\n${"X: y\r\n".repeat(6)}\r\n`, 32);
  });

  it("trailers exactly at the limit are accepted, split anywhere", () => {
    decodeAllSplits(
      Framing.Chunked,
      -1,
      `1\r\nx\r\n0\r\n${TRAILER_32}\r\n${NEXT}`,
      (d) => {
        assert.deepEqual(d, { body: "x", done: true, consumed: 9 + 32 + 2 });
      },
      32,
    );
  });
});

// ---------------------------------------------------------------------------
// Differential check against node's own parser (llhttp).
//
// Request heads are generated by mutating a valid base request with a fixed-
// seed PRNG. For every head our parser accepts, llhttp must accept the same
// bytes and see the same method, target, version and header list; it must also
// agree on keep-alive and on where the body ends (a probe body framed as we
// read it must come out whole, with the message complete). The reverse is not
// required: we are deliberately stricter.
//
// With SEED and CASES as below: 4000 distinct heads generated, 961 accepted by
// our parser (24%), each compared with llhttp (node 20.20). The test asserts
// that at least 5% are accepted, not the exact counts. When this was written,
// llhttp refused 36 of the 961: 16 with a repeated identical Content-Length,
// 16 with a method outside llhttp's fixed list, 4 with a target holding bytes
// 0x80-0xFF or not starting with "/". The parser now refuses repeated
// Content-Length and non-ASCII targets; heads the policy check refuses are
// skipped; extension methods are accepted on purpose and counted apart. No
// accepted head was read differently (method, target, version, fields, body
// end) by the two parsers.
// ---------------------------------------------------------------------------

/** The parts of node's internal HTTPParser (process.binding('http_parser')) used here. */
interface LlhttpParser {
  [callback: number]: unknown;
  initialize(type: number, resource: object, maxHeaderSize: number, lenientFlags: number): void;
  execute(data: Buffer): number | Error;
  close(): void;
}
interface LlhttpBinding {
  HTTPParser: {
    new (): LlhttpParser;
    REQUEST: number;
    kOnMessageBegin: number;
    kOnHeaders: number;
    kOnHeadersComplete: number;
    kOnBody: number;
    kOnMessageComplete: number;
    kOnExecute: number;
    kLenientNone: number;
  };
  allMethods: string[];
}
type ParseErrorCode = Error & { code?: string };

function loadLlhttp(): LlhttpBinding {
  const proc = process as unknown as { binding?: (name: string) => unknown };
  if (typeof proc.binding !== "function") throw new Error(`process.binding is not available in node ${process.version}`);
  // The binding is deprecated (DEP0111) but still there in node 20; not worth a warning per run.
  const quiet = process.noDeprecation;
  process.noDeprecation = true;
  try {
    return proc.binding("http_parser") as LlhttpBinding;
  } finally {
    process.noDeprecation = quiet;
  }
}

interface NodeView {
  method: string;
  url: string;
  major: number;
  minor: number;
  headers: string[];
  upgrade: boolean;
  keepAlive: boolean;
  body: string;
  completed: number;
}

/** Runs llhttp in strict mode (node's default) over `bytes`, as node's http server would. */
function llhttpParse(b: LlhttpBinding, bytes: Buffer): NodeView | ParseErrorCode {
  const HP = b.HTTPParser;
  const p = new HP();
  let view: NodeView | null = null;
  // Past 32 fields llhttp flushes headers (and the URL) early through kOnHeaders.
  const flushed: string[] = [];
  let flushedUrl = "";
  let body = "";
  let completed = 0;
  p[HP.kOnMessageBegin] = (): number => 0;
  p[HP.kOnHeaders] = (headers: string[], url: string): void => {
    flushed.push(...headers);
    flushedUrl += url;
  };
  p[HP.kOnHeadersComplete] = (
    major: number,
    minor: number,
    headers: string[] | undefined,
    method: number,
    url: string | undefined,
    _status: unknown,
    _reason: unknown,
    upgrade: boolean,
    keepAlive: boolean,
  ): number => {
    view = {
      method: b.allMethods[method],
      url: url ?? flushedUrl,
      major,
      minor,
      headers: headers ?? flushed,
      upgrade,
      keepAlive,
      body: "",
      completed: 0,
    };
    return 0;
  };
  p[HP.kOnBody] = (chunk: Buffer): number => {
    body += chunk.toString("latin1");
    return 0;
  };
  p[HP.kOnMessageComplete] = (): number => {
    completed++;
    return 0;
  };
  p[HP.kOnExecute] = (): void => undefined;
  p.initialize(HP.REQUEST, {}, 0, HP.kLenientNone);
  const r = p.execute(bytes);
  p.close();
  if (r instanceof Error) return r;
  const v = view as NodeView | null;
  if (v === null) return Object.assign(new Error("headers not complete"), { code: "NO_HEADERS" });
  return { ...v, body, completed };
}

const SEED = 0x5eed1e55;
const CASES = 4000;
const ALPHABET = [" ", "\t", "\r", "\n", ":", ",", "\0", "\x7f", "\xff", "a", "A", "0", "/", '"', ";"];
const METHODS = ["GET", "POST", "PUT", "HEAD", "DELETE", "OPTIONS", "PATCH", "TRACE", "CONNECT", "PROPFIND", "M-SEARCH", "PURGE"];
const VERSIONS = ["HTTP/1.1", "HTTP/1.0", "HTTP/1.2", "HTTP/2.0", "HTTP/0.9", "http/1.1", "HTTP/1.1x", "HTTP/11", "HTTP/1."];
const LENGTHS = ["0", "5", "05", "000", "12", "+5", "-1", " 7 ", "\t3", "1 2", "0x5", "5,5", "99999999999999", "1234567890123456", ""];
const CODINGS = ["chunked", "Chunked", "CHUNKED", " chunked ", "gzip, chunked", "chunked, gzip", "identity", "chunked;q=1", "x", ""];

function generateHead(rnd: (n: number) => number): string {
  const pick = <T>(a: readonly T[]): T => a[rnd(a.length)];
  let method = "GET";
  let version = "HTTP/1.1";
  const url = pick(["/path/to?q=1&r=%20", "/", "/a;b=c/d?e", "/x.php?a[]=1&b=%7E"]);
  const fields: Array<[string, string]> = [
    ["Host", "example.com"],
    ["User-Agent", "test/1.0"],
    ["Accept", "*/*"],
    ["Cookie", 'a=1; b="2"'],
    ["Connection", "keep-alive"],
    ["X-Custom", "\tsome  value "],
    ["X-Latin", "caf\u00e9"],
  ];
  if (rnd(3) === 0) fields.push(["Content-Length", "5"]);
  const steps = 1 + rnd(4);
  for (let s = 0; s < steps; s++) {
    switch (rnd(10)) {
      case 0:
        method = pick(METHODS);
        break;
      case 1:
        version = pick(VERSIONS);
        break;
      case 2:
        fields.splice(rnd(fields.length + 1), 0, [pick(["Content-Length", "content-length"]), pick(LENGTHS)]);
        break;
      case 3:
        fields.splice(rnd(fields.length + 1), 0, [pick(["Transfer-Encoding", "transfer-encoding"]), pick(CODINGS)]);
        break;
      case 4:
        if (fields.length > 0) fields.splice(rnd(fields.length + 1), 0, fields[rnd(fields.length)]);
        break;
      case 5:
        if (fields.length > 1) {
          const i = rnd(fields.length);
          const j = rnd(fields.length);
          [fields[i], fields[j]] = [fields[j], fields[i]];
        }
        break;
      case 6:
        if (fields.length > 0) fields.splice(rnd(fields.length), 1);
        break;
      case 7:
        fields.splice(rnd(fields.length + 1), 0, ["Connection", pick(["close", "keep-alive", "Upgrade", "keep-alive, X-Foo", "upgrade, close"])]);
        if (rnd(2) === 0) fields.push(["Upgrade", "websocket"]);
        break;
      case 8: {
        // Enough fields that llhttp hands them over in more than one batch.
        const n = 20 + rnd(30);
        for (let i = 0; i < n; i++) fields.push([`X-Many-${i}`, String(i)]);
        break;
      }
      default:
        fields.push([pick(["Expect", "Upgrade", "Cookie", "Host", "X-Empty"]), pick(["100-continue", "websocket", "c=3", "other.example", ""])]);
    }
  }
  const text = `${method} ${url} ${version}` + fields.map(([n, v]) => `\r\n${n}: ${v}`).join("");
  // Byte-level damage, most cases: insert, delete or replace one byte at a time.
  return damage(text, rnd(4), rnd, ALPHABET);
}

/**
 * What client.ts would make of `generated` followed by CRLFCRLF: leading empty
 * lines skipped, the head cut at the first CRLFCRLF. Returns the head given to
 * parseRequestHead and the bytes (head and its CRLFCRLF) llhttp gets.
 */
function frame(generated: string): { head: string; wire: string } {
  let full = `${generated}\r\n\r\n`;
  let start = 0;
  while (start < full.length && (full[start] === "\r" || full[start] === "\n")) start++;
  full = full.slice(start);
  const end = full.indexOf("\r\n\r\n");
  return { head: full.slice(0, end), wire: full.slice(0, end + 4) };
}

/** Where node and we disagree on a head we accept; '' when we agree. */
function disagreement(ours: RequestHead, node: NodeView | ParseErrorCode, probeBody: string): string {
  if (node instanceof Error) return `llhttp refuses it: ${node.code ?? node.message}`;
  if (node.method !== ours.method) return `method: llhttp ${JSON.stringify(node.method)}, ours ${JSON.stringify(ours.method)}`;
  if (node.url !== ours.url) return `target: llhttp ${JSON.stringify(node.url)}, ours ${JSON.stringify(ours.url)}`;
  if (node.major !== 1 || node.minor !== ours.minor) return `version: llhttp ${node.major}.${node.minor}, ours 1.${ours.minor}`;
  if (JSON.stringify(node.headers) !== JSON.stringify(ours.raw)) return `headers: llhttp ${JSON.stringify(node.headers)}, ours ${JSON.stringify(ours.raw)}`;
  // Closing where llhttp would keep the connection is on the safe side (llhttp lets a 1.0
  // keep-alive win over a close); keeping a connection llhttp would close is not.
  if (ours.keepAlive && !node.keepAlive) return `keep-alive: llhttp ${node.keepAlive}, ours ${ours.keepAlive}`;
  // llhttp also treats CONNECT as an upgrade (a tunnel); proxy-node refuses CONNECT with 405 after parsing.
  if (ours.upgrade !== undefined || node.upgrade) {
    if (ours.upgrade === undefined && ours.method === "CONNECT") return "";
    if (ours.upgrade === undefined || !node.upgrade) return `upgrade: llhttp ${node.upgrade}, ours ${ours.upgrade !== undefined}`;
    return "";
  }
  const complete = ours.framing !== Framing.Length || ours.contentLength <= probeBody.length ? 1 : 0;
  const expected = ours.framing === Framing.Chunked ? "abc" : probeBody;
  if (node.body !== expected || node.completed !== complete) {
    return `body end: llhttp read ${JSON.stringify(node.body)} (${node.completed} complete), ours ${JSON.stringify(expected)} (${complete} complete)`;
  }
  return "";
}

describe("unit: client request parser against node's llhttp", () => {
  it("every generated head we accept, llhttp accepts and reads the same way", () => {
    const llhttp = loadLlhttp();
    const rnd = prng(SEED);
    const seen = new Set<string>();
    const found: Array<{ head: string; why: string }> = [];
    let accepted = 0;
    let extensionMethods = 0;
    let attempts = 0;
    while (seen.size < CASES && attempts++ < CASES * 10) {
      const { head, wire } = frame(generateHead(rnd));
      if (seen.has(head)) continue;
      seen.add(head);
      let ours: RequestHead;
      try {
        ours = parseRequestHead(head, 64);
      } catch (e) {
        if (e instanceof RequestError) continue;
        throw e;
      }
      // Absolute-form, asterisk-form and CONNECT are refused by the policy check right after parsing.
      if (refuseStatus(ours) !== 0) continue;
      accepted++;
      // A body framed the way we read it, capped so a huge Content-Length stays cheap.
      const probe = ours.framing === Framing.Chunked ? "3\r\nabc\r\n0\r\n\r\n" : "z".repeat(Math.min(64, Math.max(0, ours.contentLength)));
      const node = llhttpParse(llhttp, Buffer.from(wire + probe, "latin1"));
      // Deliberate: any token is a method (RFC 9110 9.1), as Apache and members
      // accept extension methods; llhttp only knows a fixed list.
      if (node instanceof Error && node.code === "HPE_INVALID_METHOD") {
        extensionMethods++;
        continue;
      }
      const why = disagreement(ours, node, probe);
      if (why !== "") found.push({ head, why });
    }
    assert.equal(seen.size, CASES, "the generator repeats itself too much");
    assert.ok(extensionMethods < accepted / 2, `${extensionMethods} of ${accepted} accepted heads had methods llhttp does not know: the generator is off`);
    assert.ok(accepted >= CASES * 0.05, `only ${accepted} of ${CASES} generated heads were accepted: the comparison would be vacuous`);
    if (found.length > 0) {
      const kinds = new Map<string, string[]>();
      for (const f of found) {
        const kind = f.why.startsWith("llhttp refuses") ? f.why : f.why.slice(0, f.why.indexOf(":"));
        kinds.set(kind, [...(kinds.get(kind) ?? []), `${JSON.stringify(f.head)}\n        ${f.why}`]);
      }
      const report = [...kinds]
        .map(
          ([k, v]) =>
            `  ${k} (${v.length}), e.g.\n${v
              .sort((a, b) => a.length - b.length)
              .slice(0, 4)
              .map((x) => `      ${x}`)
              .join("\n")}`,
        )
        .join("\n");
      assert.fail(`${found.length} of the ${accepted} heads we accept (of ${CASES}) are read differently by llhttp:\n${report}`);
    }
  });
});
