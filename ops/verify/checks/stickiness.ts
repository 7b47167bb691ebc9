import { Browser } from "../browser";
import { clientPerServer } from "../discover";
import { parseSetCookie } from "../cookie-jar";
import { Reply, request } from "../http";
import { probePage } from "../probe";
import { fail, pass } from "../result";
import { Check } from "../context";
import { VerifyTarget, webServers } from "../target";

/** The sticky cookie's value in a response, as the server sent it (before any jar judges it). */
function stickyValue(r: Reply, t: VerifyTarget): string | undefined {
  for (const h of ([] as string[]).concat(r.headers["set-cookie"] ?? [])) {
    const c = parseSetCookie(h);
    if (!("dropped" in c) && c.name === t.cookieName) return c.value;
  }
  return undefined;
}

/** A new client: no cookie; the server it reached must name itself in the sticky cookie, and a request that sends it back lands there again. */
export const pinned: Check = {
  name: "pinned",
  async run({ target: t }) {
    const first = await request(`${t.balancerUrl}/`);
    const page = probePage(first);
    const value = stickyValue(first, t);
    if (value === undefined) return [fail(this.name, `a new client got no ${t.cookieName} cookie from ${page.server}`)];
    if (!value.startsWith(t.cookieValuePrefix))
      return [fail(this.name, `${page.server} set ${t.cookieName}=${value}, which does not start with ${t.cookieValuePrefix}`)];
    const route = value.slice(t.cookieValuePrefix.length);
    if (route !== page.route) return [fail(this.name, `${t.cookieName}=${value} names route ${route}, but ${page.server} (route ${page.route}) answered`)];
    const again = probePage(await request(`${t.balancerUrl}/`, { headers: { cookie: `${t.cookieName}=${value}` } }));
    if (again.server !== page.server) return [fail(this.name, `a client sending ${t.cookieName}=${value} reached ${again.server}, not ${page.server}`)];
    return [pass(this.name, `a new client got ${t.cookieName}=${value} from ${page.server}; sent back, it reached ${again.server} again`)];
  },
};

/**
 * New clients reach every web server. byrequests also counts the requests of
 * pinned clients, so on a live cluster the first new clients may all go to
 * the server that lagged; up to 50 are sent until each server has had some.
 */
export const spread: Check = {
  name: "spread",
  async run({ target: t }) {
    const names = webServers(t).map((w) => w.name);
    const counts: Record<string, number> = Object.fromEntries(names.map((n) => [n, 0]));
    const least = Math.max(4 * names.length, 4);
    let sent = 0;
    while (sent < Math.max(least, 50)) {
      const page = probePage(await request(`${t.balancerUrl}/`));
      counts[page.server] = (counts[page.server] ?? 0) + 1;
      sent++;
      if (sent >= least && names.every((n) => counts[n] > 0)) break;
    }
    const shown = Object.entries(counts)
      .map(([n, k]) => `${n} ${k}`)
      .join(", ");
    const none = names.filter((n) => counts[n] === 0);
    if (none.length) return [fail(this.name, `${sent} new clients: ${shown}; ${none.join(", ")} took none`, counts)];
    return [pass(this.name, `${sent} new clients: ${shown}`, counts)];
  },
};

/** Why the jar sends no sticky cookie, if it dropped one. */
function dropReason(b: Browser, t: VerifyTarget): string {
  const d = b.lastReceived.find((x) => "dropped" in x && x.name === t.cookieName);
  return d && "dropped" in d ? ` (the jar dropped ${t.cookieName}: ${d.dropped})` : "";
}

/**
 * A client pinned to each web server makes 50 more requests with a browser's
 * cookie jar: all answered by the same server, the session's counter one up
 * each time. One client per server, so verify's own sticky requests leave
 * byrequests' counts as even as it found them.
 */
export const sticky: Check = {
  name: "sticky",
  async run({ target: t }) {
    const followUps = 50;
    const clients = await clientPerServer(t);
    for (const [server, { browser: b }] of clients) {
      let lastVisits = 1;
      for (let i = 1; i <= followUps; i++) {
        const page = probePage(await b.get("/"));
        if (page.server !== server) return [fail(this.name, `request ${i + 1} of a client pinned to ${server} went to ${page.server}${dropReason(b, t)}`)];
        if (page.visits !== lastVisits + 1)
          return [fail(this.name, `request ${i + 1} of a client on ${server}: visit counter ${page.visits} after ${lastVisits}`)];
        lastVisits = page.visits;
      }
    }
    const missing = webServers(t)
      .filter((w) => !clients.has(w.name))
      .map((w) => w.name);
    const where = [...clients.keys()].join(", ");
    if (missing.length) return [fail(this.name, `${followUps} follow-ups stayed on ${where}, but no new client reached ${missing.join(", ")}`)];
    return [pass(this.name, `${followUps} follow-up requests of a client pinned to each of ${where} stayed there (visit counters 2..${followUps + 1})`)];
  },
};

/**
 * A browser-like jar (./cookie-jar.ts) keeps the sticky cookie and sends it
 * back: a Domain the URL's host does not match, a wrong Path or Secure over
 * http would make every real browser lose its web server.
 */
export const cookieJar: Check = {
  name: "cookie jar",
  async run({ target: t }) {
    const b = new Browser(t.balancerUrl);
    const page = probePage(await b.get("/"));
    const got = b.lastReceived.find((x) => ("kept" in x ? x.kept.name : x.name) === t.cookieName);
    if (!got) return [fail(this.name, `${page.server} set no ${t.cookieName} cookie`)];
    if ("dropped" in got) return [fail(this.name, `${t.cookieName} from ${page.server} for ${t.balancerUrl}: ${got.dropped}`)];
    const c = got.kept;
    const scope = `${c.hostOnly ? "host-only" : `Domain=${c.domain}`}, Path=${c.path}`;
    const next = probePage(await b.get("/"));
    if (next.server !== page.server)
      return [fail(this.name, `the jar kept ${t.cookieName}=${c.value} (${scope}), but the next request went to ${next.server}, not ${page.server}`)];
    return [pass(this.name, `a browser-like jar kept ${t.cookieName}=${c.value} (${scope}) for ${t.balancerUrl} and sent it back: ${next.server} again`)];
  },
};
