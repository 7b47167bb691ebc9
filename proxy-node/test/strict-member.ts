// A strict HTTP/1.1 request reader (RFC 9112, no leniency: a bare CR or LF, obs-fold,
// Transfer-Encoding with Content-Length, more than one Content-Length, a coding other
// than exactly "chunked" are errors) and a member on a raw socket that logs every
// byte of every connection and answers each request it reads from the bytes as
// framed on the wire, so a request smuggled inside another one's body shows up as
// a request of its own. The same reader frames what a client sent, as the
// reference of what a proxy should have forwarded.
import type * as net from "node:net";
import { rawMember, RawMember } from "./raw-http";
import { sleep } from "./helpers";

export interface WireRequest {
  method: string;
  target: string;
  minor: number;
  /** Header fields in order, values without surrounding whitespace. */
  fields: Array<[string, string]>;
  /** The decoded body (chunked framing removed). */
  body: string;
  /** Order of arrival over all connections of one member (0 for a reference parse). */
  seq: number;
}

export type ParseStep =
  | { kind: "request"; req: WireRequest; end: number }
  /** More bytes are needed; `head` once the head is complete (the body is not). */
  | { kind: "incomplete"; head: { method: string; target: string } | null; partial: boolean }
  | { kind: "error"; why: string };

const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
const REQUEST_LINE = /^([!#$%&'*+\-.^_`|~0-9A-Za-z]+) ([\x21-\x7e]+) HTTP\/1\.([01])$/;
const FIELD_VALUE_BAD = /[\x00-\x08\x0a-\x1f\x7f]/;
const MAX_HEAD = 65536;

/** Reads CRLF-terminated lines from `p` up to and including an empty one. */
function readLines(data: string, p: number): { lines: string[]; end: number } | { error: string } | null {
  const lines: string[] = [];
  for (;;) {
    const lf = data.indexOf("\n", p);
    if (lf < 0) {
      const cr = data.indexOf("\r", p);
      if (cr >= 0 && cr < data.length - 1) return { error: "bare CR" };
      return null;
    }
    if (lf === p || data[lf - 1] !== "\r") return { error: "bare LF" };
    const line = data.slice(p, lf - 1);
    if (line.includes("\r")) return { error: "bare CR" };
    p = lf + 1;
    if (line === "") return { lines, end: p };
    lines.push(line);
  }
}

function parseField(line: string): [string, string] | string {
  if (line[0] === " " || line[0] === "\t") return "obs-fold";
  const colon = line.indexOf(":");
  if (colon <= 0) return "field without a colon";
  const name = line.slice(0, colon);
  if (!TOKEN.test(name)) return `bad field name ${JSON.stringify(name)}`;
  const value = line.slice(colon + 1).replace(/^[ \t]+|[ \t]+$/g, "");
  if (FIELD_VALUE_BAD.test(value)) return "control character in a field value";
  return [name, value];
}

/** Reads one request starting at `pos` (empty lines before it are skipped). */
export function parseOne(data: string, pos: number): ParseStep {
  let start = pos;
  while (start < data.length && (data[start] === "\r" || data[start] === "\n")) start++;
  if (start === data.length) return { kind: "incomplete", head: null, partial: false };
  const head = readLines(data, start);
  if (head === null) {
    if (data.length - start > MAX_HEAD) return { kind: "error", why: "head too long" };
    return { kind: "incomplete", head: null, partial: true };
  }
  if ("error" in head) return { kind: "error", why: `${head.error} in the head` };
  const m = REQUEST_LINE.exec(head.lines[0]);
  if (!m) return { kind: "error", why: `bad request line ${JSON.stringify(head.lines[0])}` };
  const [, method, target, minorText] = m;
  const minor = Number(minorText);
  const fields: Array<[string, string]> = [];
  for (const line of head.lines.slice(1)) {
    const f = parseField(line);
    if (typeof f === "string") return { kind: "error", why: f };
    fields.push(f);
  }
  const values = (n: string): string[] => fields.filter(([k]) => k.toLowerCase() === n).map(([, v]) => v);
  const hosts = values("host");
  if (hosts.length > 1 || (minor === 1 && hosts.length === 0)) return { kind: "error", why: `${hosts.length} Host fields` };
  const te = values("transfer-encoding");
  const cl = values("content-length");
  const req: WireRequest = { method, target, minor, fields, body: "", seq: 0 };
  const incomplete: ParseStep = { kind: "incomplete", head: { method, target }, partial: true };
  let p = head.end;
  if (te.length > 0) {
    if (minor === 0) return { kind: "error", why: "Transfer-Encoding in HTTP/1.0" };
    if (cl.length > 0) return { kind: "error", why: "Transfer-Encoding and Content-Length" };
    const codings = te
      .join(",")
      .split(",")
      .map((c) => c.trim().toLowerCase());
    if (codings.length !== 1 || codings[0] !== "chunked") return { kind: "error", why: `Transfer-Encoding ${JSON.stringify(te.join(", "))}` };
    for (;;) {
      const lf = data.indexOf("\n", p);
      if (lf < 0) return data.length - p > 4096 ? { kind: "error", why: "chunk size line too long" } : incomplete;
      if (lf === p || data[lf - 1] !== "\r") return { kind: "error", why: "chunk size line without CRLF" };
      const sizeLine = /^([0-9A-Fa-f]{1,12})[ \t]*(?:;[^\x00-\x08\x0a-\x1f\x7f]*)?$/.exec(data.slice(p, lf - 1));
      if (!sizeLine) return { kind: "error", why: `bad chunk size line ${JSON.stringify(data.slice(p, lf - 1))}` };
      const size = parseInt(sizeLine[1], 16);
      p = lf + 1;
      if (size === 0) {
        const trailer = readLines(data, p);
        if (trailer === null) return incomplete;
        if ("error" in trailer) return { kind: "error", why: `${trailer.error} in the trailer` };
        for (const line of trailer.lines) if (typeof parseField(line) === "string") return { kind: "error", why: "bad trailer field" };
        return { kind: "request", req, end: trailer.end };
      }
      if (data.length < p + size + 2) return incomplete;
      req.body += data.slice(p, p + size);
      if (data.slice(p + size, p + size + 2) !== "\r\n") return { kind: "error", why: "chunk data without CRLF" };
      p += size + 2;
    }
  }
  if (cl.length > 1) return { kind: "error", why: `${cl.length} Content-Length fields` };
  if (cl.length === 1) {
    if (!/^[0-9]{1,15}$/.test(cl[0])) return { kind: "error", why: `Content-Length ${JSON.stringify(cl[0])}` };
    const n = Number(cl[0]);
    if (data.length < p + n) return incomplete;
    req.body = data.slice(p, p + n);
    p += n;
  }
  return { kind: "request", req, end: p };
}

export interface ReferenceParse {
  requests: WireRequest[];
  /**
   * What follows the last complete request: nothing, an incomplete request,
   * bytes that are not a request, or a tunnel (after CONNECT nothing is HTTP).
   */
  tail: "clean" | "incomplete" | "error" | "tunnel";
  /** The incomplete request's method and target, when its head is complete. */
  partialHead: { method: string; target: string } | null;
  why: string;
}

/** Frames everything a client sent into requests, strictly. */
export function parseAll(data: string): ReferenceParse {
  const requests: WireRequest[] = [];
  let pos = 0;
  for (;;) {
    const step = parseOne(data, pos);
    if (step.kind === "error") return { requests, tail: "error", partialHead: null, why: step.why };
    if (step.kind === "incomplete") return { requests, tail: step.partial ? "incomplete" : "clean", partialHead: step.head, why: "" };
    requests.push(step.req);
    pos = step.end;
    if (step.req.method === "CONNECT") return { requests, tail: pos < data.length ? "tunnel" : "clean", partialHead: null, why: "" };
  }
}

export interface MemberConnLog {
  /** Every byte received, one character a byte. */
  data: string;
  requests: WireRequest[];
  /** After the last request read: nothing, an incomplete request, or bytes that are not a request (answered 400, closed). */
  state: "clean" | "incomplete" | "error";
  partialHead: { method: string; target: string } | null;
  why: string;
  /** The peer has closed its side: whatever it left unfinished here is abandoned, never continued. */
  peerClosed: boolean;
}

export interface LoggingMember {
  raw: RawMember;
  port: number;
  /** The connections since the last reset(), in the order accepted. */
  readonly conns: MemberConnLog[];
  /** Bytes received since the last reset(), over all connections. */
  readonly bytes: number;
  /**
   * Ends every connection (FIN) and waits until the peer has closed each one
   * (so a proxy has dropped it from its pool), destroying stragglers after
   * `deadlineMs`; then forgets the logs.
   */
  reset(deadlineMs?: number): Promise<void>;
}

/** The body of the member's answer to a request: names what it answered. */
export function answerBody(method: string, target: string, fields: ReadonlyArray<[string, string]>): string {
  const cookie = fields
    .filter(([k]) => k.toLowerCase() === "cookie")
    .map(([, v]) => v)
    .join("; ");
  return `served ${method} ${target} cookie=${cookie || "-"}\n`;
}

/**
 * A member that reads every connection's bytes with parseOne and answers each
 * request at once with 200 and answerBody(), keeping the connection open
 * whatever the request's Connection field says (so leftover bytes are read as
 * the next request, as a keep-alive server would); bytes it cannot read are
 * answered 400 and the connection is closed.
 */
export async function loggingMember(): Promise<LoggingMember> {
  let conns: MemberConnLog[] = [];
  let bytes = 0;
  let seq = 0;
  const sockets = new Set<net.Socket>();
  const raw = await rawMember((sock) => {
    sockets.add(sock);
    sock.on("close", () => sockets.delete(sock));
    const log: MemberConnLog = { data: "", requests: [], state: "clean", partialHead: null, why: "", peerClosed: false };
    conns.push(log);
    sock.on("end", () => (log.peerClosed = true));
    sock.on("close", () => (log.peerClosed = true));
    let pos = 0;
    sock.on("data", (chunk: Buffer) => {
      log.data += chunk.toString("latin1");
      bytes += chunk.length;
      while (log.state !== "error") {
        const step = parseOne(log.data, pos);
        if (step.kind === "incomplete") {
          log.state = step.partial ? "incomplete" : "clean";
          log.partialHead = step.head;
          return;
        }
        if (step.kind === "error") {
          log.state = "error";
          log.why = step.why;
          sock.end("HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
          return;
        }
        const req = { ...step.req, seq: seq++ };
        log.requests.push(req);
        pos = step.end;
        const body = answerBody(req.method, req.target, req.fields);
        const sendBody = req.method !== "HEAD";
        sock.write(`HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: ${sendBody ? body.length : 0}\r\n\r\n${sendBody ? body : ""}`, "latin1");
      }
    });
  });
  return {
    raw,
    port: raw.port,
    get conns() {
      return conns;
    },
    get bytes() {
      return bytes;
    },
    async reset(deadlineMs = 1000) {
      for (const s of sockets) s.end();
      const end = Date.now() + deadlineMs;
      while (sockets.size > 0 && Date.now() < end) await sleep(5);
      for (const s of sockets) s.destroy();
      conns = [];
      bytes = 0;
    },
  };
}
