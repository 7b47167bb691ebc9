import * as net from "node:net";
import * as tls from "node:tls";
import { Browser } from "../browser";
import { Check } from "../context";
import { request, trustedCa } from "../http";
import { probePage } from "../probe";
import { CheckResult, fail, pass, skip } from "../result";

interface Handshake {
  protocol?: string | null;
  cert?: tls.PeerCertificate;
  error?: string;
}

/** One TLS handshake to the URL's host and port, then closed. */
function handshake(url: URL, opts: tls.ConnectionOptions): Promise<Handshake> {
  const host = url.hostname.replace(/^\[|\]$/g, "");
  const port = Number(url.port || 443);
  return new Promise((resolve) => {
    const s = tls.connect({ host, port, servername: net.isIP(host) ? undefined : host, ...opts }, () => {
      const r = { protocol: s.getProtocol(), cert: s.getPeerCertificate() };
      s.destroy();
      resolve(r);
    });
    s.setTimeout(10_000, () => s.destroy(new Error("no handshake within 10 s")));
    s.on("error", (e: NodeJS.ErrnoException) => resolve({ error: e.code ?? e.message }));
  });
}

/**
 * HTTPS as a client sees it (balancer.tls). The other checks already ran over
 * the HTTPS origin; these look at what only HTTPS has. SKIP while HTTPS is off.
 */
export const https: Check = {
  name: "https",
  async run({ target: t }) {
    const base = new URL(t.balancerUrl);
    if (base.protocol === "http:") return [skip(this.name, `HTTPS is off for this stack (${t.balancerUrl}); no HTTPS checks to run`)];
    const out: CheckResult[] = [];
    const ca = trustedCa();
    const trust = ca ? { ca } : {};

    const modern = await handshake(base, trust);
    if (modern.error || !modern.cert)
      out.push(fail("https certificate", `${base.host}: ${modern.error} (trusting ${ca ? "the given CA" : "the system's CAs"})`));
    else
      out.push(
        pass(
          "https certificate",
          `${modern.protocol}, trusted for ${base.hostname} (${ca ? "the given CA" : "the system's CAs"}), valid until ${modern.cert.valid_to}`,
        ),
      );

    // A client that would take the old protocols (SECLEVEL=0 lets it offer them): the balancer must say no.
    const old = await Promise.all(
      (["TLSv1", "TLSv1.1"] as const).map(async (v) => ({
        v,
        r: await handshake(base, { minVersion: v, maxVersion: v, ciphers: "DEFAULT@SECLEVEL=0", rejectUnauthorized: false }),
      })),
    );
    const accepted = old.filter((o) => !o.r.error).map((o) => o.v);
    const v12 = await handshake(base, { ...trust, maxVersion: "TLSv1.2" });
    if (accepted.length > 0) out.push(fail("https protocols", `accepted ${accepted.join(" and ")}; only TLS 1.2 and 1.3 should be`));
    else if (v12.error) out.push(fail("https protocols", `TLS 1.0 and 1.1 refused, but TLS 1.2 too (${v12.error}): old clients cannot connect`));
    else out.push(pass("https protocols", `TLS 1.0 and 1.1 refused; TLS 1.2 accepted`));

    if (t.plainUrl) {
      const path = "/verify-redirect?probe=1";
      const r = await request(`${t.plainUrl}${path}`);
      const location = String(r.headers.location ?? "");
      if ((r.status === 301 || r.status === 308) && location === `${t.balancerUrl}${path}`)
        out.push(pass("https redirect", `${t.plainUrl}${path}: ${r.status} to ${location}`));
      else if (r.status === 200) out.push(skip("https redirect", `${t.plainUrl} serves plain HTTP (balancer.tls.redirect is off)`));
      else
        out.push(
          fail(
            "https redirect",
            `${t.plainUrl}${path}: ${r.status} ${location ? `to ${location}` : "without Location"}; expected 301 to ${t.balancerUrl}${path}`,
          ),
        );
    }

    const browser = new Browser(t.balancerUrl);
    const first = await browser.get("/");
    const line = ([] as string[]).concat(first.headers["set-cookie"] ?? []).find((c) => c.startsWith(`${t.cookieName}=`));
    if (!line) out.push(fail("https cookie", `a new client got no ${t.cookieName} cookie`));
    else {
      const attrs = line
        .split(";")
        .slice(1)
        .map((a) => a.trim().toLowerCase());
      const missing = ["secure", "httponly", "samesite=lax"].filter((a) => !attrs.includes(a));
      if (missing.length > 0) out.push(fail("https cookie", `${t.cookieName} over HTTPS lacks ${missing.join(", ")}: ${line}`));
      else out.push(pass("https cookie", `${t.cookieName} over HTTPS: Secure, HttpOnly, SameSite=Lax`));
    }

    // The client claims plain HTTP: the balancer's own word must win.
    const page = probePage(await request(`${t.balancerUrl}/`, { headers: { "X-Forwarded-Proto": "http" } }));
    if (page.scheme === "https") out.push(pass("https scheme", `the probe app on ${page.server} sees https (a client's X-Forwarded-Proto: http ignored)`));
    else out.push(fail("https scheme", `the probe app on ${page.server} sees ${page.scheme ?? "no scheme"} for an HTTPS request`));
    return out;
  },
};
