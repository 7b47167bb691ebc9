// HTTP/1.1 request parser for client connections (RFC 9112), strict by
// design: anything two parsers could read differently (CL with TE, unknown
// codings, bare LF, obs-fold, a space before the colon, duplicate Host) is
// refused with the status RFC 9110/9112 names, never guessed at. It replaced
// node's http server, which cost about half of proxy-node's CPU per request
// (see bench/proxy-node.ts). Pure functions and one small decoder class: the
// connection handling around it is in client.ts.
import { isToken, hasCtl, decimalLength, hexDigit } from "./tokens";

/** How the request body is delimited. */
export const enum Framing {
  None,
  Length,
  Chunked,
}

export interface RequestHead {
  method: string;
  /** The request target exactly as sent (origin-form for anything we proxy). */
  url: string;
  /** 0 or 1: HTTP/1.0 or HTTP/1.1. */
  minor: number;
  /** Flat [name, value, ...] as received, values trimmed of surrounding whitespace. */
  raw: string[];
  host: string | undefined;
  /** All Cookie headers joined with "; ", as a browser sends one. */
  cookie: string | undefined;
  /** Lowercased names the Connection header lists beyond close/keep-alive/upgrade; null when none. */
  hopTokens: string[] | null;
  framing: Framing;
  contentLength: number;
  /** The client allows the connection to stay open after this exchange. */
  keepAlive: boolean;
  expectContinue: boolean;
  /** The Upgrade header's value when Connection names "upgrade"; else undefined. */
  upgrade: string | undefined;
}

export class RequestError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
    this.name = "RequestError";
  }
}

export const STATUS_TEXT: Record<number, string> = {
  400: "Bad Request",
  405: "Method Not Allowed",
  408: "Request Timeout",
  417: "Expectation Failed",
  431: "Request Header Fields Too Large",
  501: "Not Implemented",
  502: "Bad Gateway",
  503: "Service Unavailable",
  504: "Gateway Timeout",
  505: "HTTP Version Not Supported",
};

const bad = (why: string): RequestError => new RequestError(400, why);

/**
 * Parses a complete request head (request line and header lines, without the
 * final CRLFCRLF), read as latin1 so every byte maps to one char and back.
 */
export function parseRequestHead(head: string, maxHeadersCount: number): RequestHead {
  let eol = head.indexOf("\r\n");
  if (eol < 0) eol = head.length;
  const sp1 = head.indexOf(" ");
  if (sp1 <= 0 || sp1 > eol) throw bad("malformed request line");
  const sp2 = head.indexOf(" ", sp1 + 1);
  if (sp2 < 0 || sp2 > eol || sp2 === sp1 + 1) throw bad("malformed request line");
  const method = head.slice(0, sp1);
  if (!isToken(method)) throw bad("invalid method");
  const url = head.slice(sp1 + 1, sp2);
  // Visible ASCII only: clients percent-encode anything else (RFC 3986), and a
  // raw byte above 0x7F is read differently by different members.
  for (let i = 0; i < url.length; i++) {
    const c = url.charCodeAt(i);
    if (c <= 32 || c >= 127) throw bad("invalid request target");
  }
  const minor = parseVersion(head, sp2 + 1, eol);

  const raw: string[] = [];
  let host: string | undefined;
  let cookie: string | undefined;
  let upgradeValue: string | undefined;
  let connUpgrade = false;
  let hopTokens: string[] | null = null;
  let contentLength = -1;
  let te: string | undefined;
  let close = false;
  let ka = false;
  let expectContinue = false;
  let count = 0;
  let pos = eol + 2;
  while (pos < head.length) {
    let end = head.indexOf("\r\n", pos);
    if (end < 0) end = head.length;
    if (++count > maxHeadersCount) throw new RequestError(431, `more than ${maxHeadersCount} header fields`);
    const first = head.charCodeAt(pos);
    if (first === 32 || first === 9) throw bad("obsolete line folding");
    const colon = head.indexOf(":", pos);
    if (colon <= pos || colon > end) throw bad("header line without a name and colon");
    const name = head.slice(pos, colon);
    // Also refuses "Host : x" (space before the colon) and stray CR/LF.
    if (!isToken(name)) throw bad(`invalid header name ${JSON.stringify(name.slice(0, 40))}`);
    const value = trimOws(head, colon + 1, end);
    if (hasCtl(value)) throw bad(`control character in header ${name}`);
    raw.push(name, value);
    switch (name.length) {
      case 4:
        if (name.toLowerCase() === "host") {
          if (host !== undefined) throw bad("more than one Host header");
          host = value;
        }
        break;
      case 6: {
        const l = name.toLowerCase();
        if (l === "cookie") cookie = cookie === undefined ? value : `${cookie}; ${value}`;
        else if (l === "expect") {
          if (value.toLowerCase() !== "100-continue") throw new RequestError(417, `unsupported expectation ${JSON.stringify(value)}`);
          expectContinue = true;
        }
        break;
      }
      case 7:
        if (name.toLowerCase() === "upgrade") upgradeValue = value;
        break;
      case 10:
        if (name.toLowerCase() === "connection") {
          for (const part of value.split(",")) {
            const t = part.trim().toLowerCase();
            if (t === "close") close = true;
            else if (t === "keep-alive") ka = true;
            else if (t === "upgrade") connUpgrade = true;
            else if (t !== "") (hopTokens ??= []).push(t);
          }
        }
        break;
      case 14:
        if (name.toLowerCase() === "content-length") {
          // Even identical repeats are refused: we would pass both on, and a strict member refuses those.
          if (contentLength >= 0) throw bad("more than one Content-Length header");
          contentLength = parseLength(value);
        }
        break;
      case 17:
        if (name.toLowerCase() === "transfer-encoding") te = te === undefined ? value : `${te}, ${value}`;
        break;
    }
    pos = end + 2;
  }
  if (minor === 1 && host === undefined) throw bad("HTTP/1.1 request without Host");
  let framing = contentLength > 0 ? Framing.Length : Framing.None;
  if (te !== undefined) {
    // RFC 9112 6.1 and 6.3: TE in 1.0, or TE with CL, is faulty framing; it is
    // how requests are smuggled past one parser into another.
    if (minor === 0) throw bad("Transfer-Encoding in an HTTP/1.0 request");
    if (contentLength >= 0) throw bad("both Transfer-Encoding and Content-Length");
    if (te.trim().toLowerCase() !== "chunked") throw new RequestError(501, `unsupported Transfer-Encoding ${JSON.stringify(te)}`);
    framing = Framing.Chunked;
  }
  return {
    method,
    url,
    minor,
    raw,
    host,
    cookie,
    hopTokens,
    framing,
    contentLength,
    keepAlive: minor === 1 ? !close : ka && !close,
    expectContinue,
    upgrade: connUpgrade ? upgradeValue : undefined,
  };
}

function parseVersion(head: string, start: number, end: number): number {
  if (end - start === 8 && head.startsWith("HTTP/1.", start)) {
    const minor = head.charCodeAt(start + 7) - 48;
    if (minor === 0 || minor === 1) return minor;
  }
  const v = head.slice(start, end);
  if (/^HTTP\/\d\.\d$/.test(v)) throw new RequestError(505, `unsupported version ${v}`);
  throw bad("malformed HTTP version");
}

function trimOws(s: string, start: number, end: number): string {
  while (start < end && (s.charCodeAt(start) === 32 || s.charCodeAt(start) === 9)) start++;
  while (end > start && (s.charCodeAt(end - 1) === 32 || s.charCodeAt(end - 1) === 9)) end--;
  return s.slice(start, end);
}

function parseLength(v: string): number {
  const n = decimalLength(v);
  if (n < 0) throw bad(`invalid Content-Length ${JSON.stringify(v.slice(0, 20))}`);
  return n;
}

export interface BodySink {
  /** A piece of the decoded body; only valid during the call. */
  bodyData(chunk: Buffer): void;
}

const enum Chunk {
  Size,
  Data,
  DataEnd,
  Trailers,
}

const MAX_CHUNK_LINE = 4096;

/**
 * Decodes one request body (Content-Length or chunked). The decoded bytes go
 * to the sink; what follows the body (a pipelined request) is left for the
 * caller, whose pending buffer is handed back and forth by offset.
 */
export class BodyDecoder {
  private remaining = 0;
  private chunked = false;
  private state = Chunk.Size;
  private trailerBytes = 0;
  private line: Buffer | null = null;
  done = true;

  constructor(private readonly maxTrailerSize: number) {}

  start(framing: Framing, length: number): void {
    this.chunked = framing === Framing.Chunked;
    this.remaining = this.chunked ? 0 : length;
    this.state = Chunk.Size;
    this.trailerBytes = 0;
    this.line = null;
    this.done = framing === Framing.None || (!this.chunked && length === 0);
  }

  /** Consumes body bytes from buf[pos..]; returns the offset after the last byte it took. Throws RequestError. */
  execute(buf: Buffer, pos: number, sink: BodySink): number {
    const len = buf.length;
    if (!this.chunked) {
      const n = Math.min(this.remaining, len - pos);
      this.remaining -= n;
      if (n > 0) sink.bodyData(pos === 0 && n === len ? buf : buf.subarray(pos, pos + n));
      if (this.remaining === 0) this.done = true;
      return pos + n;
    }
    while (pos < len && !this.done) {
      switch (this.state) {
        case Chunk.Size:
        case Chunk.Trailers: {
          const eol = buf.indexOf(10, pos);
          if (eol < 0) {
            this.keepLine(buf.subarray(pos));
            return len;
          }
          let line = buf.subarray(pos, eol + 1);
          if (this.line !== null) {
            line = Buffer.concat([this.line, line]);
            this.line = null;
          }
          pos = eol + 1;
          if (line.length < 2 || line[line.length - 2] !== 13) throw bad("chunked body line must end with CRLF");
          if (this.state === Chunk.Size) {
            if (line.length > MAX_CHUNK_LINE) throw bad("chunk size line too long");
            this.remaining = parseChunkSize(line);
            this.state = this.remaining === 0 ? Chunk.Trailers : Chunk.Data;
          } else if (line.length === 2) {
            this.done = true;
          } else {
            // Trailer fields are dropped: we never forward them, so we only bound them.
            this.trailerBytes += line.length;
            if (this.trailerBytes > this.maxTrailerSize) throw new RequestError(431, "chunked trailers too large");
          }
          break;
        }
        case Chunk.Data: {
          const n = Math.min(this.remaining, len - pos);
          this.remaining -= n;
          sink.bodyData(buf.subarray(pos, pos + n));
          pos += n;
          if (this.remaining === 0) this.state = Chunk.DataEnd;
          break;
        }
        case Chunk.DataEnd: {
          // The CRLF after chunk data may arrive split across reads.
          if (this.line === null && len - pos === 1) {
            if (buf[pos] !== 13) throw bad("chunk data not followed by CRLF");
            this.line = buf.subarray(pos, pos + 1);
            return len;
          }
          if (this.line !== null) {
            this.line = null;
            if (buf[pos] !== 10) throw bad("chunk data not followed by CRLF");
            pos += 1;
          } else {
            if (buf[pos] !== 13 || buf[pos + 1] !== 10) throw bad("chunk data not followed by CRLF");
            pos += 2;
          }
          this.state = Chunk.Size;
          break;
        }
      }
    }
    return pos;
  }

  private keepLine(part: Buffer): void {
    const line = this.line === null ? Buffer.from(part) : Buffer.concat([this.line, part]);
    if (line.length > MAX_CHUNK_LINE && this.state === Chunk.Size) throw bad("chunk size line too long");
    // A lone CR may be the start of the final empty line, which is not counted.
    if (this.state === Chunk.Trailers && line.length > 1 && this.trailerBytes + line.length + 1 > this.maxTrailerSize) {
      throw new RequestError(431, "chunked trailers too large");
    }
    this.line = line;
  }
}

/** chunk-size [ chunk-ext ] CRLF; extensions are checked for control characters and dropped. */
function parseChunkSize(line: Buffer): number {
  const end = line.length - 2;
  let n = 0;
  let i = 0;
  for (; i < end; i++) {
    const c = line[i];
    const v = hexDigit(c);
    if (v < 0) break;
    // 12 hex digits is 256 TiB: anything longer is an attack on a 32/53-bit integer somewhere.
    if (i >= 12) throw bad("chunk size too large");
    n = n * 16 + v;
  }
  if (i === 0) throw bad("invalid chunk size");
  if (i < end) {
    const c = line[i];
    if (c !== 59 /* ; */ && c !== 32 && c !== 9) throw bad("invalid chunk size");
    for (let j = i; j < end; j++) {
      const d = line[j];
      if ((d < 32 && d !== 9) || d === 127) throw bad("control character in chunk extension");
    }
  }
  return n;
}
