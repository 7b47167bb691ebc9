// HTTP/1.1 response parser for member connections (RFC 9112). It exists
// because node's http client costs more per request than everything else in
// the proxy together (measured: ~1.7x req/s without it). Client requests are
// read by request-parser.ts; this only reads members' answers, and anything
// it does not understand is an error (502), never a guess.
import { isToken, hasCtl, decimalLength, hexDigit } from "./tokens";

/** How the response body is delimited on the member connection. */
export const enum ResBody {
  None,
  Length,
  Chunked,
  UntilClose,
}

export interface ResponseHead {
  status: number;
  reason: string;
  /** Flat [name, value, ...] as received. */
  raw: string[];
  /** The connection may carry another request after this response. */
  keepAlive: boolean;
  body: ResBody;
  /** The member's Content-Length (repeats of one value merged), or -1. */
  contentLength: number;
}

export interface ResponseSink {
  head(h: ResponseHead): void;
  body(chunk: Buffer): void;
  complete(): void;
}

export class ParseError extends Error {}

const enum State {
  Head,
  Length,
  ChunkSize,
  ChunkData,
  ChunkDataEnd,
  Trailers,
  UntilClose,
  Done,
}

const MAX_HEAD = 65536;
const CRLFCRLF = Buffer.from("\r\n\r\n");

export class ResponseParser {
  private state = State.Done;
  private noBody = false;
  private pending: Buffer | null = null;
  private remaining = 0;
  private keepAlive = false;
  private discardRest = false;
  sink: ResponseSink | null = null;

  /** Prepares for the response to one request. */
  start(sink: ResponseSink, headRequest: boolean): void {
    this.sink = sink;
    this.state = State.Head;
    this.noBody = headRequest;
    this.pending = null;
  }

  get idle(): boolean {
    return this.state === State.Done;
  }

  /** True while a body delimited by connection close is being read. */
  get readsUntilClose(): boolean {
    return this.state === State.UntilClose;
  }

  /** Feeds bytes; throws ParseError. Bytes after a complete response are an error (no pipelining). */
  execute(data: Buffer): void {
    let buf = data;
    if (this.pending !== null) {
      buf = Buffer.concat([this.pending, data]);
      this.pending = null;
    }
    let pos = 0;
    const len = buf.length;
    while (pos < len) {
      switch (this.state) {
        case State.Head: {
          const end = buf.indexOf(CRLFCRLF, pos);
          if (end < 0) {
            if (len - pos > MAX_HEAD) throw new ParseError("response head too large");
            this.pending = buf.subarray(pos);
            return;
          }
          const start = pos;
          pos = end + 4;
          this.parseHead(buf.toString("latin1", start, end), pos < len);
          if (this.discardRest) {
            this.discardRest = false;
            return;
          }
          break;
        }
        case State.Length: {
          const n = Math.min(this.remaining, len - pos);
          this.remaining -= n;
          const chunk = buf.subarray(pos, pos + n);
          pos += n;
          (this.sink as ResponseSink).body(chunk);
          if (this.remaining === 0) {
            if (pos < len) throw new ParseError("data after the end of a response");
            this.state = State.Done;
            this.finish();
            return;
          }
          break;
        }
        case State.ChunkSize: {
          const eol = buf.indexOf(10, pos);
          if (eol < 0) {
            if (len - pos > 1024) throw new ParseError("chunk size line too long");
            this.pending = buf.subarray(pos);
            return;
          }
          this.remaining = parseChunkSize(buf, pos, eol);
          pos = eol + 1;
          this.state = this.remaining === 0 ? State.Trailers : State.ChunkData;
          break;
        }
        case State.ChunkData: {
          const n = Math.min(this.remaining, len - pos);
          this.remaining -= n;
          const chunk = buf.subarray(pos, pos + n);
          pos += n;
          if (this.remaining === 0) this.state = State.ChunkDataEnd;
          (this.sink as ResponseSink).body(chunk);
          break;
        }
        case State.ChunkDataEnd: {
          if (len - pos < 2) {
            this.pending = buf.subarray(pos);
            return;
          }
          if (buf[pos] !== 13 || buf[pos + 1] !== 10) throw new ParseError("missing CRLF after chunk");
          pos += 2;
          this.state = State.ChunkSize;
          break;
        }
        case State.Trailers: {
          // Trailer fields are dropped (we never announce TE: trailers); read to the empty line.
          const eol = buf.indexOf(10, pos);
          if (eol < 0) {
            if (len - pos > MAX_HEAD) throw new ParseError("trailers too large");
            this.pending = buf.subarray(pos);
            return;
          }
          const empty = eol === pos || (eol === pos + 1 && buf[pos] === 13);
          pos = eol + 1;
          if (empty) {
            if (pos < len) throw new ParseError("data after the end of a response");
            this.state = State.Done;
            this.finish();
            return;
          }
          break;
        }
        case State.UntilClose: {
          (this.sink as ResponseSink).body(pos === 0 ? buf : buf.subarray(pos));
          return;
        }
        case State.Done:
          throw new ParseError("data after the end of a response");
      }
    }
  }

  /** The member closed the connection. Returns true if that completed the response. */
  closed(): boolean {
    if (this.state === State.UntilClose) {
      this.state = State.Done;
      this.finish();
      return true;
    }
    return false;
  }

  private finish(): void {
    const sink = this.sink as ResponseSink;
    this.sink = null;
    sink.complete();
  }

  private parseHead(head: string, more: boolean): void {
    // Status line: HTTP/1.x SP 3DIGIT SP reason
    if (!head.startsWith("HTTP/1.") || head.charCodeAt(8) !== 32) throw new ParseError("bad status line");
    const minor = head.charCodeAt(7) - 48;
    if (minor !== 0 && minor !== 1) throw new ParseError("bad HTTP version");
    const d1 = head.charCodeAt(9) - 48;
    const d2 = head.charCodeAt(10) - 48;
    const d3 = head.charCodeAt(11) - 48;
    if (!(d1 >= 1 && d1 <= 9 && d2 >= 0 && d2 <= 9 && d3 >= 0 && d3 <= 9) || (head.length > 12 && head.charCodeAt(12) !== 32)) {
      throw new ParseError("bad status code");
    }
    const status = d1 * 100 + d2 * 10 + d3;
    let lineEnd = head.indexOf("\r\n");
    if (lineEnd < 0) lineEnd = head.length;
    const reason = head.length > 13 ? head.slice(13, lineEnd) : "";
    if (hasCtl(reason)) throw new ParseError("bad reason phrase");
    const raw: string[] = [];
    let contentLength = -1;
    let chunked = false;
    let te = false;
    let close = minor === 0;
    let pos = lineEnd + 2;
    while (pos < head.length) {
      let eol = head.indexOf("\r\n", pos);
      if (eol < 0) eol = head.length;
      const colon = head.indexOf(":", pos);
      if (colon <= pos || colon > eol) throw new ParseError("bad header line");
      const first = head.charCodeAt(pos);
      if (first === 32 || first === 9) throw new ParseError("obsolete line folding");
      const name = head.slice(pos, colon);
      if (!isToken(name)) throw new ParseError("bad header name");
      const value = head.slice(colon + 1, eol).trim();
      if (hasCtl(value)) throw new ParseError("bad header value");
      raw.push(name, value);
      const c = name.charCodeAt(0) | 0x20;
      if (c === 99 /* c */ || c === 116 /* t */) {
        const lower = name.toLowerCase();
        if (lower === "content-length") {
          const n = parseLength(value);
          if (contentLength >= 0 && contentLength !== n) throw new ParseError("conflicting Content-Length");
          contentLength = n;
        } else if (lower === "transfer-encoding") {
          te = true;
          const codings = value.toLowerCase();
          chunked = codings === "chunked" || codings.endsWith(",chunked") || /,\s*chunked$/.test(codings);
        } else if (lower === "connection") {
          const v = value.toLowerCase();
          if (v === "keep-alive") {
            if (minor === 0) close = false;
          } else if (v === "close" || /(^|,)\s*close\s*(,|$)/.test(v)) close = true;
          else if (minor === 0 && /(^|,)\s*keep-alive\s*(,|$)/.test(v)) close = false;
        }
      }
      pos = eol + 2;
    }
    if (te && contentLength >= 0) throw new ParseError("both Transfer-Encoding and Content-Length");
    if (status < 200) {
      // Interim response (100 Continue, 103 Early Hints): skipped, the final one follows.
      if (status === 101) throw new ParseError("unexpected 101 on a non-upgrade request");
      this.state = State.Head;
      return;
    }
    const sink = this.sink as ResponseSink;
    if (this.noBody || status === 204 || status === 304) {
      // Bytes after a head that has no body (a member answering HEAD with a
      // body): the answer is still good, the connection is not reused.
      this.keepAlive = !close && !more;
      this.discardRest = more;
      this.state = State.Done;
      sink.head({ status, reason, raw, keepAlive: this.keepAlive, body: ResBody.None, contentLength });
      if (this.sink === sink) this.finish();
      return;
    }
    if (te) {
      // A final coding other than chunked is delimited by close (RFC 9112 6.3).
      this.state = chunked ? State.ChunkSize : State.UntilClose;
      this.keepAlive = chunked && !close;
    } else if (contentLength >= 0) {
      if (contentLength === 0 && more) throw new ParseError("data after the end of a response");
      this.remaining = contentLength;
      this.state = contentLength === 0 ? State.Done : State.Length;
      this.keepAlive = !close;
    } else {
      this.state = State.UntilClose;
      this.keepAlive = false;
    }
    const body =
      this.state === State.Length
        ? ResBody.Length
        : this.state === State.ChunkSize
          ? ResBody.Chunked
          : this.state === State.UntilClose
            ? ResBody.UntilClose
            : ResBody.None;
    sink.head({ status, reason, raw, keepAlive: this.keepAlive, body, contentLength });
    if (this.state === State.Done && this.sink === sink) this.finish();
  }
}

function parseChunkSize(buf: Buffer, pos: number, eol: number): number {
  let n = 0;
  let digits = 0;
  let i = pos;
  for (; i < eol; i++) {
    const c = buf[i];
    const v = hexDigit(c);
    if (v < 0) break;
    n = n * 16 + v;
    if (++digits > 12) throw new ParseError("chunk size too large");
  }
  if (digits === 0) throw new ParseError("bad chunk size");
  // Allow chunk extensions (";..."), optional whitespace, and the CR.
  const c = buf[i];
  if (i < eol && c !== 59 && c !== 13 && c !== 32 && c !== 9) throw new ParseError("bad chunk size line");
  if (buf[eol - 1] !== 13) throw new ParseError("chunk size line must end with CRLF");
  return n;
}

function parseLength(v: string): number {
  const n = decimalLength(v);
  if (n < 0) throw new ParseError("bad Content-Length");
  return n;
}
