// The manager listener, in the spirit of Apache's balancer-manager: a JSON API,
// a small HTML page and Prometheus /metrics. Access needs BOTH a source address
// in the allowlist AND the token. Changes (POST) accept the token only as an
// `Authorization: Bearer` header with a JSON body: a cross-site form or a
// link cannot add that header, and a cross-origin fetch that does is stopped
// by CORS preflight, which this server never grants.
import * as http from "node:http";
import { createHash, timingSafeEqual } from "node:crypto";
import type { Balancer } from "./balancer";
import type { Metrics } from "./metrics";
import type { Logger } from "./log";
import type { Cidr } from "./cidr";
import { ipAllowed } from "./cidr";
import type { MemberStatus } from "./config";
import type { Member } from "./members";
import { PEER_HEADER, type RedundancyView } from "./peers";

export interface ManagerDeps {
  balancer: () => Balancer;
  metrics: Metrics;
  logger: Logger;
  allow: () => readonly Cidr[];
  token: () => string;
  /** Called after a live change, so derived tables (routes, cookies) are rebuilt. */
  changed: (m: Member) => void;
  /** Called before reading counters (cluster mode sums the workers' counters here). */
  beforeRead: () => Promise<void>;
  separator: () => string;
  /**
   * After a change is applied here: carries it on (Apache in agent mode, the
   * peer balancers) and returns what to add to the answer. `route` is the
   * member's route before the change; `fromPeer` the sending peer's name, if
   * a peer sent it.
   */
  afterChange?: (m: Member, route: string, change: Readonly<Record<string, unknown>>, fromPeer: string | null) => Promise<Record<string, unknown>>;
  /** Null or absent: a balancer without a peer. */
  redundancy?: () => RedundancyView | null;
}

const STATUSES: readonly MemberStatus[] = ["enabled", "disabled", "draining", "standby", "stopped"];
const ROUTE = /^[A-Za-z0-9_~-][A-Za-z0-9._~-]*$/;
const MAX_BODY = 4096;

function digest(s: string): Buffer {
  return createHash("sha256").update(s).digest();
}

function tokenMatches(given: string, token: string): boolean {
  return timingSafeEqual(digest(given), digest(token));
}

/** Bearer for everything; Basic (any user, password = token) only for reading, so a browser can open the page. */
function authorized(req: http.IncomingMessage, token: string, forChange: boolean): boolean {
  const h = req.headers.authorization;
  if (!h) return false;
  if (h.startsWith("Bearer ")) return tokenMatches(h.slice(7).trim(), token);
  if (!forChange && h.startsWith("Basic ")) {
    const decoded = Buffer.from(h.slice(6).trim(), "base64").toString("utf8");
    const colon = decoded.indexOf(":");
    return colon >= 0 && tokenMatches(decoded.slice(colon + 1), token);
  }
  return false;
}

export function memberView(m: Member, now: number): Record<string, string | number | boolean> {
  return {
    route: m.route,
    url: m.url,
    status: m.status,
    state: m.state(now),
    usable: m.usable(now),
    lbfactor: m.lbfactor,
    requests: m.requests,
    errors: m.errors,
    bytesIn: m.bytesIn,
    bytesOut: m.bytesOut,
    busy: m.busy,
  };
}

function send(res: http.ServerResponse, status: number, type: string, body: string, extra: string[] = []): void {
  res.writeHead(status, [
    "Content-Type",
    type,
    "Content-Length",
    String(Buffer.byteLength(body)),
    "Cache-Control",
    "no-store",
    "X-Content-Type-Options",
    "nosniff",
    "X-Frame-Options",
    "DENY",
    ...extra,
  ]);
  res.end(body);
}

function json(res: http.ServerResponse, status: number, value: unknown): void {
  send(res, status, "application/json", JSON.stringify(value) + "\n");
}

export function applyChange(b: Balancer, m: Member, body: unknown, separator: string): string | null {
  if (typeof body !== "object" || body === null || Array.isArray(body)) return "expected a JSON object";
  const o = body as Record<string, unknown>;
  for (const k of Object.keys(o)) if (!["lbfactor", "route", "status"].includes(k)) return `unknown key ${k}`;
  const { lbfactor, route, status } = o;
  if (lbfactor !== undefined && (typeof lbfactor !== "number" || !Number.isInteger(lbfactor) || lbfactor < 1 || lbfactor > 100)) {
    return "lbfactor: expected an integer from 1 to 100";
  }
  if (status !== undefined && (typeof status !== "string" || !(STATUSES as readonly string[]).includes(status))) {
    return `status: expected one of ${STATUSES.join(", ")}`;
  }
  if (route !== undefined) {
    if (typeof route !== "string" || !ROUTE.test(route) || (separator !== "" && route.includes(separator))) return "route: invalid route";
    const other = b.member(route);
    if (other !== undefined && other !== m) return `route: ${route} is already used`;
  }
  if (lbfactor !== undefined) m.lbfactor = lbfactor as number;
  if (status !== undefined) m.status = status as MemberStatus;
  if (route !== undefined) m.route = route as string;
  return null;
}

export function createManagerServer(d: ManagerDeps): http.Server {
  const server = http.createServer({ maxHeaderSize: 8192 }, (req, res) => {
    if (!ipAllowed(req.socket.remoteAddress, d.allow())) {
      // Say as little as possible to strangers.
      res.writeHead(403, ["Content-Length", "0", "Connection", "close"]);
      res.end();
      return;
    }
    const url = req.url ?? "/";
    const q = url.indexOf("?");
    const path = q < 0 ? url : url.slice(0, q);
    const method = req.method ?? "GET";
    const forChange = method !== "GET" && method !== "HEAD";
    if (!authorized(req, d.token(), forChange)) {
      send(res, 401, "text/plain", "token required\n", forChange ? [] : ["WWW-Authenticate", 'Basic realm="proxy-node manager"']);
      return;
    }
    if (!forChange) {
      void d.beforeRead().then(
        () => read(d, req, res, path),
        () => read(d, req, res, path),
      );
      return;
    }
    const b = d.balancer();
    if (method !== "POST" || !path.startsWith("/api/members/")) return send(res, 405, "text/plain", "method not allowed\n");
    const ctype = req.headers["content-type"] ?? "";
    if (!ctype.startsWith("application/json")) return send(res, 415, "text/plain", "expected application/json\n");
    let route: string;
    try {
      route = decodeURIComponent(path.slice("/api/members/".length));
    } catch {
      return send(res, 400, "text/plain", "bad route encoding\n");
    }
    const m = b.member(route);
    if (!m) return json(res, 404, { error: `no member with route ${route}` });
    const chunks: Buffer[] = [];
    let size = 0;
    req.on("data", (c: Buffer) => {
      size += c.length;
      if (size > MAX_BODY) {
        json(res, 413, { error: "body too large" });
        req.destroy();
      } else chunks.push(c);
    });
    req.on("end", () => {
      if (res.headersSent) return;
      let body: unknown;
      try {
        body = JSON.parse(Buffer.concat(chunks).toString("utf8"));
      } catch {
        return json(res, 400, { error: "invalid JSON" });
      }
      const err = applyChange(b, m, body, d.separator());
      if (err) return json(res, 400, { error: err });
      d.changed(m);
      const peerHeader = req.headers[PEER_HEADER];
      const fromPeer = typeof peerHeader === "string" && peerHeader !== "" ? peerHeader : null;
      d.logger.event("info", fromPeer ? "member changed by peer" : "member changed by manager", {
        route: m.route,
        status: m.status,
        lbfactor: m.lbfactor,
        client: req.socket.remoteAddress,
        ...(fromPeer ? { peer: fromPeer } : {}),
      });
      if (!d.afterChange) return json(res, 200, memberView(m, Date.now()));
      // applyChange accepted it: a JSON object of known keys.
      const change = body as Record<string, unknown>;
      void d.afterChange(m, route, change, fromPeer).then(
        (extra) => json(res, 200, { ...memberView(m, Date.now()), ...extra }),
        (e: Error) => json(res, 200, { ...memberView(m, Date.now()), warning: e.message }),
      );
    });
  });
  return server;
}

function read(d: ManagerDeps, _req: http.IncomingMessage, res: http.ServerResponse, path: string): void {
  const b = d.balancer();
  const now = Date.now();
  const redundancy = d.redundancy?.() ?? null;
  if (path === "/api/members") {
    return json(res, 200, { balancer: b.name, lbmethod: b.strategy.name, members: b.members.map((m) => memberView(m, now)), redundancy });
  }
  if (path === "/metrics") return send(res, 200, "text/plain; version=0.0.4", d.metrics.render(b, now));
  if (path === "/manager.js") return send(res, 200, "text/javascript", PAGE_JS);
  if (path === "/")
    return send(res, 200, "text/html; charset=utf-8", page(b, now, redundancy), [
      "Content-Security-Policy",
      "default-src 'none'; script-src 'self'; style-src 'unsafe-inline'; connect-src 'self'",
    ]);
  return send(res, 404, "text/plain", "not found\n");
}

function esc(s: string | number | boolean): string {
  return String(s).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

/** The first thing an operator needs on a balancer pair: is this the one clients reach right now? */
function addressLine(r: RedundancyView | null): string {
  if (!r) return "";
  const peers = r.peers.map((p) => esc(p.name)).join(", ");
  return r.holdsAddress
    ? `<p id="address" style="padding:6px 10px;background:#d9f2d9;border-left:6px solid #2e7d32"><b>${esc(r.self)}</b> holds the virtual address <b>${esc(r.virtualAddress)}</b>: clients reach this balancer. Changes here are carried to ${peers}.</p>`
    : `<p id="address" style="padding:6px 10px;background:#eee;border-left:6px solid #777"><b>${esc(r.self)}</b> is the backup for <b>${esc(r.virtualAddress)}</b>; the address is held by its peer (${peers}). Changes here are carried to ${peers}.</p>`;
}

function page(b: Balancer, now: number, redundancy: RedundancyView | null): string {
  const rows = b.members
    .map((m) => {
      const v = memberView(m, now);
      const options = STATUSES.map((s) => `<option${s === m.status ? " selected" : ""}>${s}</option>`).join("");
      return (
        `<tr data-route="${esc(m.route)}"><td>${esc(v.route)}</td><td>${esc(v.url)}</td><td>${esc(v.state)}</td>` +
        `<td>${esc(v.lbfactor)}</td><td>${esc(v.requests)}</td><td>${esc(v.errors)}</td><td>${esc(v.bytesIn)}</td><td>${esc(v.bytesOut)}</td><td>${esc(v.busy)}</td>` +
        `<td><input name="lbfactor" size="3" value="${esc(v.lbfactor)}"> <input name="route" size="8" value="${esc(v.route)}"> ` +
        `<select name="status">${options}</select> <button>apply</button></td></tr>`
      );
    })
    .join("\n");
  return `<!doctype html><html><head><meta charset="utf-8"><title>proxy-node manager: ${esc(b.name)}</title>
<style>body{font-family:sans-serif}td,th{padding:2px 8px;border-bottom:1px solid #ccc}</style></head><body>
<h1>Balancer ${esc(b.name)} (${esc(b.strategy.name)})</h1>
${addressLine(redundancy)}
<table><thead><tr><th>route</th><th>url</th><th>state</th><th>lbfactor</th><th>requests</th><th>errors</th><th>bytes in</th><th>bytes out</th><th>busy</th><th>change</th></tr></thead>
<tbody>${rows}</tbody></table><p id="msg"></p><script src="/manager.js"></script></body></html>\n`;
}

// Changes are sent with fetch and a Bearer header the user types once per tab;
// the browser's Basic credentials are never enough to change anything.
const PAGE_JS = `document.querySelectorAll('tr[data-route] button').forEach(function (btn) {
  btn.addEventListener('click', function () {
    var tr = btn.closest('tr');
    var token = sessionStorage.getItem('pn-token') || prompt('Manager token');
    if (!token) return;
    sessionStorage.setItem('pn-token', token);
    var body = { lbfactor: Number(tr.querySelector('[name=lbfactor]').value), route: tr.querySelector('[name=route]').value, status: tr.querySelector('[name=status]').value };
    fetch('/api/members/' + encodeURIComponent(tr.dataset.route), { method: 'POST', headers: { 'Content-Type': 'application/json', Authorization: 'Bearer ' + token }, body: JSON.stringify(body) })
      .then(function (r) { return r.json().then(function (j) {
        var msg = document.getElementById('msg');
        if (!r.ok) { msg.textContent = j.error || r.status; return; }
        // A peer that did not take the change must be seen, not lost in a reload.
        var missed = (j.peers || []).filter(function (p) { return !p.ok; });
        if (j.apache && !j.apache.ok) missed.unshift({ name: 'Apache here', error: j.apache.error });
        if (missed.length === 0) { location.reload(); return; }
        msg.textContent = 'Applied here, but not carried to: ' + missed.map(function (p) { return p.name + ' (' + p.error + ')'; }).join('; ');
        msg.style.color = '#b00020';
      }); });
  });
});
`;
