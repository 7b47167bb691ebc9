// Differential check against HAProxy 2.6 (issue 14): hostile requests go to
// proxy-node and to HAProxy, each in front of its own strict member that logs
// every byte and reads requests exactly as framed on the wire (so a request
// hidden in a body shows up as one of its own), then a victim request follows
// on a new connection. What proxy-node's member reads must be the client's own
// requests, in order, with the bodies the client's framing gives them (a strict
// RFC 9112 reading of the client's bytes is the reference), nothing else; the
// victim must get its own answer. HAProxy is the comparison: where it forwards
// and proxy-node refuses, proxy-node is stricter (fine); what HAProxy's member
// reads beyond the reference is reported, not asserted.
import { strict as assert } from "node:assert";
import { spawn, spawnSync, ChildProcess } from "node:child_process";
import { mkdtempSync, writeFileSync, rmSync } from "node:fs";
import * as net from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { startProxy, baseConfig, closeAll, freePort, sleep } from "../helpers";
import { RawClient, destroyRawClients, closeRawMembers, show } from "../raw-http";
import { loggingMember, LoggingMember, MemberConnLog, parseAll, ReferenceParse, answerBody, WireRequest } from "../strict-member";
import { damage, prng } from "../fuzz";

const SEED = 0x14d1ff;
const GENERATED = 480;
const LANES = 4;
/** A proxy that sent nothing for this long after the attacker's bytes is done with them (it waits for more). */
const QUIET_MS = 120;
const SETTLE_MS = 2500;

interface Case {
  name: string;
  bytes: string;
}

// ---------------------------------------------------------------- HAProxy

const APT_FIX = "apt-get install -y haproxy   (or run scripts/bootstrap, which installs it)";

function haproxyVersion(): string {
  const r = spawnSync("haproxy", ["-v"], { encoding: "utf8" });
  if (r.error || r.status !== 0) {
    throw new Error(
      `haproxy is needed for the differential check against HAProxy and is not installed here (${r.error?.message ?? `exit ${r.status}`}): ${APT_FIX}`,
    );
  }
  return r.stdout.split("\n")[0].trim();
}

interface Haproxy {
  port: number;
  child: ChildProcess;
  stderr: () => string;
}

const children = new Set<ChildProcess>();
const killChildren = (): void => {
  for (const c of children) c.kill("SIGKILL");
};
process.once("exit", killChildren);

async function startHaproxy(dir: string, memberPort: number, lane: number): Promise<Haproxy> {
  const port = await freePort();
  const cfg = join(dir, `haproxy-${lane}.cfg`);
  writeFileSync(
    cfg,
    `global
  nbthread 1
  maxconn 200
defaults
  mode http
  timeout connect 1s
  timeout client 3s
  timeout server 3s
  timeout http-request 2s
  timeout http-keep-alive 2s
  http-reuse always
frontend fe
  bind 127.0.0.1:${port}
  default_backend be
backend be
  server m1 127.0.0.1:${memberPort}
`,
  );
  // coreutils timeout: the process ends by itself even if this one is killed first.
  const child = spawn("timeout", ["-k", "5", "600", "haproxy", "-db", "-f", cfg], { stdio: ["ignore", "ignore", "pipe"] });
  children.add(child);
  child.on("exit", () => children.delete(child));
  let err = "";
  child.stderr?.on("data", (d: Buffer) => (err = (err + d.toString()).slice(-4000)));
  const end = Date.now() + 5000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`haproxy exited (${child.exitCode}): ${err}`);
    const ok = await new Promise<boolean>((resolve) => {
      const s = net.connect(port, "127.0.0.1");
      s.once("connect", () => {
        s.destroy();
        resolve(true);
      });
      s.once("error", () => resolve(false));
    });
    if (ok) break;
    if (Date.now() > end) throw new Error(`haproxy did not listen on ${port} within 5 s: ${err}`);
    await sleep(20);
  }
  return { port, child, stderr: () => err };
}

function stopHaproxy(h: Haproxy): Promise<void> {
  return new Promise((resolve) => {
    if (h.child.exitCode !== null || h.child.signalCode !== null) return resolve();
    const t = setTimeout(() => h.child.kill("SIGKILL"), 3000);
    h.child.once("exit", () => {
      clearTimeout(t);
      resolve();
    });
    h.child.kill("SIGTERM");
  });
}

// ---------------------------------------------------------------- corpus

const SMUGGLED = "GET /smuggled-admin HTTP/1.1\r\nHost: internal\r\n\r\n";
/** A smuggled prefix that takes the next request on the member connection as a header value. */
const SWALLOW = "GET /smuggled-swallow HTTP/1.1\r\nHost: internal\r\nX-Swallow: ";
const chunk = (s: string): string => `${s.length.toString(16)}\r\n${s}\r\n`;
const withCL = (head: string, body: string): string => `${head}\r\nContent-Length: ${body.length}\r\n\r\n${body}`;

/** Every item of issue 14 on the request side, and the classic smuggling shapes. */
function handWritten(): Case[] {
  const c: Case[] = [];
  const add = (name: string, bytes: string): void => {
    c.push({ name, bytes });
  };
  add("baseline GET", "GET /plain HTTP/1.1\r\nHost: a\r\n\r\n");
  add("baseline POST with Content-Length", "POST /form HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello");
  add("baseline POST chunked", `POST /form HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n${chunk("hello")}${chunk(" world")}0\r\n\r\n`);
  // Issue 14 item 1 and its variants.
  add("Connection: Content-Length (issue 14 CL.0)", withCL("POST /x HTTP/1.1\r\nHost: a\r\nConnection: Content-Length", SWALLOW));
  add("Connection: Content-Length, complete smuggled request", withCL("POST /x HTTP/1.1\r\nHost: a\r\nConnection: Content-Length", SMUGGLED));
  add("Connection: close, content-length", withCL("POST /x HTTP/1.1\r\nHost: a\r\nConnection: close, content-length", SWALLOW));
  add("Connection: keep-alive, Content-Length over HTTP/1.0", withCL("POST /x HTTP/1.0\r\nConnection: keep-alive, Content-Length", SWALLOW));
  add(
    "Connection: Content-Length with Expect: 100-continue",
    withCL("POST /x HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nConnection: Content-Length", SWALLOW),
  );
  add(
    "Connection: Content-Length in a second Connection field",
    withCL("POST /x HTTP/1.1\r\nHost: a\r\nConnection: keep-alive\r\nConnection: CONTENT-LENGTH", SMUGGLED),
  );
  add(
    "Connection: Transfer-Encoding with chunked",
    `POST /x HTTP/1.1\r\nHost: a\r\nConnection: Transfer-Encoding\r\nTransfer-Encoding: chunked\r\n\r\n${chunk(SMUGGLED)}0\r\n\r\n`,
  );
  add(
    "Connection: keep-alive, transfer-encoding with chunked",
    `POST /x HTTP/1.1\r\nHost: a\r\nConnection: keep-alive, transfer-encoding\r\nTransfer-Encoding: chunked\r\n\r\n${chunk(SWALLOW)}0\r\n\r\n`,
  );
  add("Connection: Host", "GET /x HTTP/1.1\r\nHost: a\r\nConnection: Host\r\n\r\n");
  add(
    "Connection: Content-Length, Upgrade with Upgrade: websocket",
    withCL("POST /x HTTP/1.1\r\nHost: a\r\nConnection: Content-Length, Upgrade\r\nUpgrade: websocket", SMUGGLED),
  );
  // Issue 14 item 5: an upgrade with a body.
  add("upgrade with a body", withCL("GET /ws HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket", "hello"));
  add("upgrade with a smuggled request as body", withCL("GET /ws HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket", SMUGGLED));
  // Issue 14 item 8: bare LF.
  add("bare LF before the final CRLF (issue 14 item 8)", "GET /a HTTP/1.1\r\nHost: x\n\r\n");
  add("bare LF line endings throughout", `GET /a HTTP/1.1\nHost: x\n\n${SMUGGLED}`);
  add("bare LF hiding a Content-Length", `POST /a HTTP/1.1\r\nHost: x\r\nX: y\nContent-Length: ${SMUGGLED.length}\r\nContent-Length: 0\r\n\r\n${SMUGGLED}`);
  add("bare CR in a field", `POST /a HTTP/1.1\r\nHost: x\r\nX: y\rContent-Length: ${SMUGGLED.length}\r\n\r\n${SMUGGLED}`);
  // Classic smuggling.
  add("CL.TE", `POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: ${5 + SMUGGLED.length}\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n${SMUGGLED}`);
  add("CL.TE, zero length", `POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\nTransfer-Encoding: chunked\r\n\r\n${chunk(SMUGGLED)}0\r\n\r\n`);
  add("TE.CL", `POST /x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 4\r\n\r\n${chunk(SMUGGLED)}0\r\n\r\n`);
  add("TE.CL with the TE field last", `POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n${chunk(SMUGGLED)}0\r\n\r\n`);
  for (const [label, te] of [
    ["xchunked", "Transfer-Encoding: xchunked"],
    ["space before colon", "Transfer-Encoding : chunked"],
    ["tab value", "Transfer-Encoding:\tchunked"],
    ["chunked, identity", "Transfer-Encoding: chunked, identity"],
    ["identity, chunked", "Transfer-Encoding: identity, chunked"],
    ["gzip, chunked", "Transfer-Encoding: gzip, chunked"],
    ["two TE fields", "Transfer-Encoding: chunked\r\nTransfer-Encoding: x"],
    ["two chunked TE fields", "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked"],
    ["obs-fold TE", "X-A: b\r\n Transfer-Encoding: chunked"],
    ["folded TE value", "Transfer-Encoding:\r\n chunked"],
    ["underscore name", "Transfer_Encoding: chunked"],
    ["vertical tab", "Transfer-Encoding:\x0bchunked"],
    ["NUL in value", "Transfer-Encoding: chunked\0"],
    ["quoted", 'Transfer-Encoding: "chunked"'],
  ]) {
    add(`obfuscated TE (${label}) with CL`, `POST /x HTTP/1.1\r\nHost: a\r\n${te}\r\nContent-Length: 5\r\n\r\n0\r\n\r\n${SMUGGLED}`);
  }
  add("obfuscated TE (xchunked) without CL", `POST /x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: xchunked\r\n\r\n${chunk(SMUGGLED)}0\r\n\r\n`);
  add("TE in HTTP/1.0", `POST /x HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n${chunk(SMUGGLED)}0\r\n\r\n`);
  add("duplicate CL, different", `POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\nContent-Length: ${SMUGGLED.length}\r\n\r\n${SMUGGLED}`);
  add("duplicate CL, identical", `POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: ${SMUGGLED.length}\r\nContent-Length: ${SMUGGLED.length}\r\n\r\n${SMUGGLED}`);
  add('CL list "n, n"', `POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: ${SMUGGLED.length}, ${SMUGGLED.length}\r\n\r\n${SMUGGLED}`);
  add('CL "+n"', `POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: +${SMUGGLED.length}\r\n\r\n${SMUGGLED}`);
  add("CL with leading zeros", `POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 00${SMUGGLED.length}\r\n\r\n${SMUGGLED}`);
  add("CL space before colon", `POST /x HTTP/1.1\r\nHost: a\r\nContent-Length : ${SMUGGLED.length}\r\n\r\n${SMUGGLED}`);
  add("obs-fold CL value", `POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n ${SMUGGLED.length}\r\n\r\n${SMUGGLED}`);
  add("obs-fold after Host", `GET /x HTTP/1.1\r\nHost: a\r\n folded\r\n\r\n`);
  add("CL larger than the body (the rest never comes)", "POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 100\r\n\r\nshort");
  add("HTTP/1.0 keep-alive pipelined pair", "GET /k1 HTTP/1.0\r\nConnection: keep-alive\r\n\r\nGET /k2 HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
  add("HTTP/1.0 keep-alive POST then GET", `${withCL("POST /k1 HTTP/1.0\r\nConnection: keep-alive", "hello")}GET /k2 HTTP/1.0\r\n\r\n`);
  add("Expect: 100-continue with its body at once", withCL("POST /e HTTP/1.1\r\nHost: a\r\nExpect: 100-continue", SMUGGLED));
  add("Expect: 100-continue chunked", `POST /e HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nTransfer-Encoding: chunked\r\n\r\n${chunk(SMUGGLED)}0\r\n\r\n`);
  add("pipelined GET pair", "GET /p1 HTTP/1.1\r\nHost: a\r\n\r\nGET /p2 HTTP/1.1\r\nHost: a\r\n\r\n");
  add("pipelined POST (CL) then GET", `${withCL("POST /p1 HTTP/1.1\r\nHost: a", SMUGGLED)}GET /p2 HTTP/1.1\r\nHost: a\r\n\r\n`);
  add(
    "pipelined chunked POST then GET",
    `POST /p1 HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n${chunk(SMUGGLED)}0\r\nX-Trailer: t\r\n\r\nGET /p2 HTTP/1.1\r\nHost: a\r\n\r\n`,
  );
  add("pipelined: Connection: close then GET", "GET /p1 HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\nGET /p2 HTTP/1.1\r\nHost: a\r\n\r\n");
  add(
    "pipelined: Connection: Content-Length then GET",
    `${withCL("POST /p1 HTTP/1.1\r\nHost: a\r\nConnection: Content-Length", SWALLOW)}GET /p2 HTTP/1.1\r\nHost: a\r\n\r\n`,
  );
  add("chunk size with 0x", `POST /x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0x5\r\nhello\r\n0\r\n\r\n${SMUGGLED}`);
  add("chunk size overflow", `POST /x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n10000000000000005\r\nhello\r\n0\r\n\r\n${SMUGGLED}`);
  add("chunk size line with bare LF", `POST /x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\nhello\r\n0\r\n\r\n${SMUGGLED}`);
  add("chunk data longer than its size", `POST /x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nhello\r\n0\r\n\r\n${SMUGGLED}`);
  add("chunk extension hiding a CRLF", `POST /x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5;a="\r\n0\r\n\r\n"\r\nhello\r\n0\r\n\r\n`);
  add("NUL in a field value", `POST /x HTTP/1.1\r\nHost: a\r\nX: a\0b\r\nContent-Length: ${SMUGGLED.length}\r\n\r\n${SMUGGLED}`);
  add("CONNECT with a tunnelled request", `CONNECT internal:80 HTTP/1.1\r\nHost: internal:80\r\n\r\n${SMUGGLED}`);
  add("absolute-form target", "GET http://internal/smuggled-absolute HTTP/1.1\r\nHost: a\r\n\r\n");
  add("two Host fields", "GET /x HTTP/1.1\r\nHost: a\r\nHost: internal\r\n\r\n");
  add("HEAD with a body", withCL("HEAD /h HTTP/1.1\r\nHost: a", SMUGGLED));
  add("GET with a body", withCL("GET /g HTTP/1.1\r\nHost: a", SMUGGLED));
  return c;
}

const ALPHABET = [" ", "\t", "\r", "\n", ":", ",", "\0", "\x0b", "\x7f", "\xff", "a", "0", ";", '"'];
const METHODS = ["POST", "POST", "POST", "GET", "PUT", "HEAD", "OPTIONS", "DELETE", "PATCH", "PURGE", "CONNECT"];
const VERSIONS = ["HTTP/1.1", "HTTP/1.1", "HTTP/1.1", "HTTP/1.1", "HTTP/1.0", "HTTP/1.0", "HTTP/1.2", "HTTP/2.0", "http/1.1"];
const CL_NAMES = ["Content-Length", "Content-Length", "content-length", "CONTENT-LENGTH", "Content-Length ", "Content_Length", " Content-Length"];
const TE_NAMES = ["Transfer-Encoding", "Transfer-Encoding", "transfer-encoding", "Transfer-Encoding ", "Transfer_Encoding", " Transfer-Encoding"];
/** EXACT: the body's length; PREFIX: the length up to the request hidden in it. */
const LENGTHS = [
  "EXACT",
  "EXACT",
  "EXACT",
  "PREFIX",
  "PREFIX",
  "0",
  "5",
  "+EXACT",
  "0EXACT",
  "EXACT, EXACT",
  "EXACT,0",
  "-1",
  "1e2",
  "",
  "EXACT EXACT",
  "99999",
];
const CODINGS = [
  "chunked",
  "chunked",
  "chunked",
  "Chunked",
  " chunked",
  "chunked\t",
  "xchunked",
  "chunked, identity",
  "identity, chunked",
  "gzip, chunked",
  "chunked, chunked",
  "chunk",
  "",
  '"chunked"',
];
const CONNECTIONS = [
  "Content-Length",
  "close, content-length",
  "keep-alive, Content-Length",
  "Transfer-Encoding",
  "transfer-encoding, keep-alive",
  "Host",
  "keep-alive",
  "close",
  "Upgrade",
  "upgrade, content-length",
  "TE",
  "Content-Length, Transfer-Encoding",
  "x-foo",
  "Expect",
];

function generateCase(rnd: (n: number) => number, n: number): Case {
  const pick = <T>(a: readonly T[]): T => a[rnd(a.length)];
  const smuggled = `GET /smuggled-${n} HTTP/1.1\r\nHost: internal\r\n\r\n`;
  const swallow = `GET /smuggled-${n}s HTTP/1.1\r\nHost: internal\r\nX-Swallow: `;
  const bodies = [
    "",
    "hello",
    smuggled,
    swallow,
    `0\r\n\r\n${smuggled}`,
    `0\r\n\r\n${swallow}`,
    `${chunk(smuggled)}0\r\n\r\n`,
    `${chunk("hello")}0\r\n\r\n${swallow}`,
    `${chunk(swallow)}0\r\n\r\n`,
  ];
  const body = pick(bodies);
  const hidden = body.indexOf("GET /smuggled-");
  const prefix = hidden < 0 ? body.length : hidden;
  const length = (v: string): string => v.replace(/EXACT/g, String(body.length)).replace(/PREFIX/g, String(prefix));
  // Mostly well-formed starts, so that the hostile parts are what decides.
  let method = rnd(8) === 0 ? pick(METHODS) : pick(["POST", "POST", "PUT", "GET"]);
  let version = rnd(6) === 0 ? "HTTP/1.0" : "HTTP/1.1";
  const target = method === "CONNECT" ? `internal-${n}:80` : `/g${n}${pick(["", "?q=1", "/a;b=c", "?x=%20"])}`;
  const fields: string[] = ["Host: example.com", "User-Agent: gen/1"];
  const chunkShaped = /^[0-9a-f]+\r\n/.test(body);
  if (body !== "" && rnd(5) !== 0) fields.push(chunkShaped && rnd(2) === 0 ? "Transfer-Encoding: chunked" : `Content-Length: ${body.length}`);
  const steps = 1 + rnd(3);
  for (let s = 0; s < steps; s++) {
    const at = (): number => rnd(fields.length + 1);
    switch (rnd(10)) {
      case 0:
        fields.splice(at(), 0, `${pick(CL_NAMES)}: ${length(pick(LENGTHS))}`);
        break;
      case 1:
        fields.splice(at(), 0, `${pick(TE_NAMES)}: ${pick(CODINGS)}`);
        break;
      case 2:
        fields.splice(at(), 0, `Connection: ${pick(CONNECTIONS)}`);
        break;
      case 3:
        fields.splice(at(), 0, "Expect: 100-continue");
        break;
      case 4:
        fields.splice(at(), 0, pick(fields));
        break;
      case 5: {
        const i = rnd(fields.length);
        const j = rnd(fields.length);
        [fields[i], fields[j]] = [fields[j], fields[i]];
        break;
      }
      case 6:
        fields.splice(rnd(fields.length), 1);
        break;
      case 7:
        fields.splice(at(), 0, pick([" folded", "\tfolded", ` ${body.length}`, " chunked"]));
        break;
      case 8:
        if (rnd(2) === 0) method = pick(METHODS.filter((m) => m !== "CONNECT"));
        else version = pick(VERSIONS);
        break;
      default:
        fields.splice(at(), 0, "Connection: Upgrade", "Upgrade: websocket");
    }
  }
  let head = [`${method} ${target} ${version}`, ...fields].join("\r\n");
  // Byte-level damage in a fifth of the cases.
  if (rnd(5) === 0) head = damage(head, 1 + rnd(2), rnd, ALPHABET);
  let bytes = `${head}\r\n\r\n${body}`;
  if (rnd(4) === 0) bytes += `GET /g${n}-next HTTP/1.1\r\nHost: example.com\r\n\r\n`;
  return { name: `generated #${n}`, bytes };
}

function corpus(): { cases: Case[]; handWrittenCount: number } {
  const cases = handWritten();
  const handWrittenCount = cases.length;
  const seen = new Set(cases.map((c) => c.bytes));
  const rnd = prng(SEED);
  for (let n = 0, tries = 0; n < GENERATED && tries < GENERATED * 10; tries++) {
    const c = generateCase(rnd, n);
    if (seen.has(c.bytes)) continue;
    seen.add(c.bytes);
    cases.push(c);
    n++;
  }
  return { cases, handWrittenCount };
}

// ---------------------------------------------------------------- one case on one proxy

interface Side {
  label: "HAProxy" | "proxy-node";
  port: number;
  member: LoggingMember;
}

interface Observation {
  conns: MemberConnLog[];
  attackerText: string;
  attackerStatuses: number[];
  attackerBodies: string[];
  attackerClosed: boolean;
  victimStatus: number;
  victimBody: string;
  victimClosed: boolean;
}

const victimTarget = (id: number): string => `/victim-${id}`;
const victimBytes = (id: number): string => `GET ${victimTarget(id)} HTTP/1.1\r\nHost: example.com\r\nCookie: SESS=victim-${id}\r\n\r\n`;
const victimAnswer = (id: number): string => answerBody("GET", victimTarget(id), [["Cookie", `SESS=victim-${id}`]]);

/** Waits until `done`, or until neither the client nor the member has received a byte for `quietMs`. */
async function settle(client: RawClient, member: LoggingMember, done: () => boolean, quietMs = QUIET_MS): Promise<void> {
  const end = Date.now() + SETTLE_MS;
  let mark = -1;
  let since = Date.now();
  while (!done() && !client.closed && Date.now() < end) {
    const now = client.received + member.bytes;
    if (now !== mark) {
      mark = now;
      since = Date.now();
    } else if (Date.now() - since >= quietMs) return;
    await sleep(5);
  }
}

async function runSide(side: Side, c: Case, ref: ReferenceParse, id: number): Promise<Observation> {
  const attacker = new RawClient(side.port);
  await attacker.connected();
  await attacker.send(c.bytes);
  const expected = ref.requests.length + (ref.tail === "clean" ? 0 : 1);
  await settle(attacker, side.member, () => attacker.finals().length >= Math.max(1, expected));
  const victim = new RawClient(side.port);
  await victim.connected().catch(() => undefined);
  await victim.send(victimBytes(id));
  // The victim is always owed an answer: no quiet period, only the deadline.
  await settle(victim, side.member, () => victim.finals().length >= 1, Infinity);
  const a = attacker.finals();
  const v = victim.finals();
  const obs: Observation = {
    conns: side.member.conns.map((l) => ({ ...l, requests: [...l.requests] })),
    attackerText: attacker.text,
    attackerStatuses: a.map((r) => r.status),
    attackerBodies: a.map((r) => r.body),
    attackerClosed: attacker.closed,
    victimStatus: v.length > 0 ? v[0].status : 0,
    victimBody: v.length > 0 ? v[0].body : "",
    victimClosed: victim.closed,
  };
  attacker.destroy();
  victim.destroy();
  await side.member.reset();
  return obs;
}

// ---------------------------------------------------------------- judging

interface Verdict {
  /** Attacker requests the member read. */
  forwarded: number;
  /** The attacker got at least one 2xx. */
  answered2xx: boolean;
  problems: string[];
  /**
   * The problems all come from passing on bytes that a strict RFC 9112 reading of
   * the client's refuses, and the victim was not touched: the proxy was lenient
   * (for HAProxy reported apart from desyncs; for proxy-node it fails like them).
   */
  lenient: boolean;
}

const describeReq = (r: { method: string; target: string }): string => `${r.method} ${r.target}`;

function judge(obs: Observation, ref: ReferenceParse, id: number): Verdict {
  const problems: string[] = [];
  /** Problems of the victim's: never put down to leniency. */
  const victimProblems: string[] = [];
  const all: WireRequest[] = obs.conns.flatMap((c) => c.requests).sort((x, y) => x.seq - y.seq);
  for (const c of obs.conns) {
    if (c.state === "error") problems.push(`the member could not read what it was sent (${c.why}); the connection's bytes: ${show(c.data)}`);
    // A request left unfinished on a connection the proxy closed is abandoned (a body
    // refused half-way); on an open connection the next bytes would continue it.
    if (c.state === "incomplete" && !c.peerClosed) {
      if (c.partialHead === null) problems.push(`the member holds part of a request head: ${show(c.data)}`);
      else if (c.partialHead.target === victimTarget(id)) victimProblems.push(`the victim's request reached the member incomplete: ${show(c.data)}`);
      else if (ref.tail !== "incomplete" || ref.partialHead === null || describeReq(ref.partialHead) !== describeReq(c.partialHead)) {
        problems.push(
          `the member waits for the rest of ${describeReq(c.partialHead)}, but the client sent all of it (framing sent does not match the bytes): ${show(c.data)}`,
        );
      }
    }
  }
  const victims = all.filter((r) => r.target === victimTarget(id));
  const attackers = all.filter((r) => r.target !== victimTarget(id));
  // The attacker requests the member read: the client's own requests, in order, with their own bodies.
  let k = 0;
  for (const r of attackers) {
    let j = k;
    while (j < ref.requests.length && describeReq(ref.requests[j]) !== describeReq(r)) j++;
    if (j === ref.requests.length) {
      problems.push(
        `the member read ${show(describeReq(r))}, which is not one of the client's requests as its bytes frame them (${show(ref.requests.map(describeReq).join(" | "))}${ref.tail !== "clean" ? `, then ${ref.tail}${ref.why ? `: ${ref.why}` : ""}` : ""})`,
      );
      continue;
    }
    if (ref.requests[j].body !== r.body)
      problems.push(`the member read ${describeReq(r)} with body ${show(r.body)}, the client sent ${show(ref.requests[j].body)}`);
    k = j + 1;
  }
  if (victims.length !== 1) victimProblems.push(`the member read the victim's request ${victims.length} times`);
  for (const v of victims) {
    if (answerBody(v.method, v.target, v.fields) !== victimAnswer(id) || v.body !== "")
      victimProblems.push(`the victim's request reached the member altered: ${show(JSON.stringify(v))}`);
  }
  if (obs.victimStatus === 0) victimProblems.push(`the victim got no answer${obs.victimClosed ? " (connection closed)" : ""}`);
  else if (obs.victimStatus < 200 || obs.victimStatus > 299) victimProblems.push(`the victim got ${obs.victimStatus}`);
  else if (obs.victimBody !== victimAnswer(id)) victimProblems.push(`the victim got another request's answer: ${show(obs.victimBody)}`);
  for (const b of obs.attackerBodies) {
    const m = /^served (\S+) (\S+) /.exec(b);
    if (m && m[2] === victimTarget(id)) victimProblems.push("the attacker got the victim's answer");
    else if (m && !ref.requests.some((r) => r.method === m[1] && r.target === m[2])) problems.push(`the attacker got the answer to ${m[1]} ${m[2]}`);
  }
  const lenient = problems.length > 0 && victimProblems.length === 0 && (ref.tail === "error" || ref.tail === "tunnel");
  problems.push(...victimProblems);
  return { forwarded: attackers.length, answered2xx: obs.attackerStatuses.some((s) => s >= 200 && s <= 299), problems, lenient };
}

// ---------------------------------------------------------------- the test

interface Lane {
  haproxy: Haproxy;
  h: Side;
  p: Side;
}

interface Outcome {
  c: Case;
  hand: boolean;
  h: Verdict;
  p: Verdict;
  ho: Observation;
  po: Observation;
  hConns: number;
  pConns: number;
}

describe("security: differential check against HAProxy (issue 14)", () => {
  let dir = "";
  const lanes: Lane[] = [];

  after(async () => {
    await Promise.all(lanes.map((l) => stopHaproxy(l.haproxy)));
    destroyRawClients();
    await closeAll();
    await closeRawMembers();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it("what the member reads through proxy-node is the client's own requests with matching framing, over a hostile corpus, where HAProxy also forwards", async function () {
    this.timeout(120_000);
    const version = haproxyVersion();
    const started = Date.now();
    dir = mkdtempSync(join(tmpdir(), "proxy-node-haproxy-diff-"));
    for (let i = 0; i < LANES; i++) {
      const hm = await loggingMember();
      const pm = await loggingMember();
      const haproxy = await startHaproxy(dir, hm.port, i);
      // retry 0: the member's reset between cases closes requests still waiting for a body,
      // which proxy-node rightly counts as a member failure; the next case must not get 503.
      const app = await startProxy(baseConfig([{ url: pm.raw.url, route: "lb1", retry: 0 }], { timeouts: { clientHeadersMs: 2000 } }));
      lanes.push({ haproxy, h: { label: "HAProxy", port: haproxy.port, member: hm }, p: { label: "proxy-node", port: app.port, member: pm } });
    }
    const { cases, handWrittenCount } = corpus();
    const outcomes: Outcome[] = new Array<Outcome>(cases.length);
    let next = 0;
    await Promise.all(
      lanes.map(async (lane) => {
        while (next < cases.length) {
          const i = next++;
          const c = cases[i];
          const ref = parseAll(c.bytes);
          const [ho, po] = await Promise.all([runSide(lane.h, c, ref, i), runSide(lane.p, c, ref, i)]);
          outcomes[i] = { c, hand: i < handWrittenCount, h: judge(ho, ref, i), p: judge(po, ref, i), ho, po, hConns: ho.conns.length, pConns: po.conns.length };
        }
      }),
    );
    const seconds = ((Date.now() - started) / 1000).toFixed(1);

    const fwd = (v: Verdict): boolean => v.forwarded > 0 && v.answered2xx;
    const both = outcomes.filter((o) => fwd(o.h) && fwd(o.p));
    const onlyH = outcomes.filter((o) => fwd(o.h) && !fwd(o.p));
    const onlyP = outcomes.filter((o) => !fwd(o.h) && fwd(o.p));
    const neither = outcomes.filter((o) => !fwd(o.h) && !fwd(o.p));
    const desyncs = outcomes.filter((o) => o.p.problems.length > 0);
    const hLenient = outcomes.filter((o) => o.h.problems.length > 0 && o.h.lenient);
    const hDesyncs = outcomes.filter((o) => o.h.problems.length > 0 && !o.h.lenient);
    const statuses = (o: Observation): string => (o.attackerStatuses.length ? o.attackerStatuses.join(",") : o.attackerClosed ? "closed" : "none");
    const lines = [
      `  differential check against ${version}: ${outcomes.length} cases (${handWrittenCount} hand-written, ${outcomes.length - handWrittenCount} generated, seed 0x${SEED.toString(16)}), ${LANES} lanes, ${seconds} s`,
      `    cases                                         ${outcomes.length}`,
      `    both forwarded                                ${both.length}`,
      `    only HAProxy forwarded                        ${onlyH.length}   (proxy-node refused: stricter)`,
      `    only proxy-node forwarded                     ${onlyP.length}`,
      `    neither forwarded                             ${neither.length}`,
      `    proxy-node desyncs                            ${desyncs.length}`,
      `    HAProxy forwarded what strict RFC 9112 refuses ${hLenient.length}   (not asserted)`,
      `    HAProxy desyncs                               ${hDesyncs.length}   (not asserted)`,
      "  hand-written cases (attacker statuses, requests the member read):",
      ...outcomes
        .filter((o) => o.hand)
        .map((o) => {
          const hNote = o.h.problems.length === 0 ? "" : o.h.lenient ? "   (HAProxy lenient)" : "   (HAProxy desync)";
          return `    ${o.c.name.padEnd(60)} HAProxy ${statuses(o.ho).padEnd(8)} ${o.h.forwarded}   proxy-node ${statuses(o.po).padEnd(8)} ${o.p.forwarded}${o.p.problems.length ? "   DESYNC" : ""}${hNote}`;
        }),
    ];
    const eg = (title: string, list: Outcome[], line: (o: Outcome) => string): void => {
      if (list.length)
        lines.push(
          `  ${title}, e.g.:\n${list
            .slice(0, 4)
            .map((o) => `    ${o.c.name}: ${line(o)}`)
            .join("\n")}`,
        );
    };
    eg(
      "only HAProxy forwarded (generated)",
      onlyH.filter((o) => !o.hand),
      (o) => `${show(o.c.bytes.slice(0, 200))} (proxy-node ${statuses(o.po)})`,
    );
    eg("only proxy-node forwarded", onlyP, (o) => `${show(o.c.bytes.slice(0, 200))} (HAProxy ${statuses(o.ho)})`);
    eg("HAProxy desyncs", hDesyncs, (o) => `${show(o.c.bytes.slice(0, 200))}: ${o.h.problems.join("; ")}`);
    console.log(lines.join("\n"));

    // The harness itself: the plain requests go through both, and the victim really
    // reuses the attacker's member connection (otherwise the victim check proves nothing).
    for (const o of outcomes.filter((x) => x.c.name.startsWith("baseline"))) {
      assert.ok(fwd(o.h) && o.h.problems.length === 0, `HAProxy did not forward ${o.c.name} cleanly: ${o.h.problems.join("; ")} ${show(o.ho.attackerText)}`);
      assert.ok(fwd(o.p) && o.p.problems.length === 0, `proxy-node did not forward ${o.c.name} cleanly: ${o.p.problems.join("; ")} ${show(o.po.attackerText)}`);
      assert.equal(o.pConns, 1, `${o.c.name}: the victim did not reuse the attacker's member connection through proxy-node (${o.pConns} connections)`);
    }
    assert.ok(both.length >= outcomes.length * 0.15, `only ${both.length} of ${outcomes.length} cases were forwarded by both: the corpus is off`);

    if (desyncs.length > 0) {
      const report = desyncs
        .slice(0, 12)
        .map((o) =>
          [
            `  ${o.c.name}: client sent ${show(o.c.bytes)}`,
            ...o.p.problems.map((p) => `      - ${p}`),
            `      proxy-node answered the attacker: ${show(o.po.attackerText)}`,
            ...o.po.conns.map((cn, i) => `      member connection ${i + 1} read: ${show(cn.data)}`),
            `      HAProxy: attacker ${statuses(o.ho)}, member read ${o.h.forwarded} request(s)${o.h.problems.length ? `; ${o.h.problems.join("; ")}` : ""}`,
          ].join("\n"),
        );
      assert.fail(`${desyncs.length} of ${outcomes.length} cases desynchronise proxy-node's member (first ${report.length}):\n${report.join("\n")}`);
    }
  });
});
