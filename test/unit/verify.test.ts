/**
 * The parts of `npm run verify` (ops/verify) that need no cluster: the browser
 * cookie rules, reading the stack outputs and Apache's manager page, the token
 * kept out of every printout and command line. The checks themselves run
 * against real clusters (test/cluster/user-checks.ts, broken-on-purpose.ts).
 */
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { inspect } from "node:util";
import * as http from "node:http";
import { AddressInfo } from "node:net";
import { forwardedHeaders } from "../../ops/verify/checks/forwarded";
import { balancerPair } from "../../ops/verify/checks/pair";
import { VerifyTarget } from "../../ops/verify/target";
import { CookieJar, domainMatch, pathMatch } from "../../ops/verify/cookie-jar";
import { parseBalancerManager, workerHealthy } from "../../ops/verify/apache-manager-page";
import { curlVantage, parseStickyCookie, Secret } from "../../ops/verify";
import { engineOf } from "../../ops/verify/target";
import { targetFromOutputs } from "../../scripts/verify";

describe("verify: a browser's cookie jar (RFC 6265)", () => {
  const balancer = new URL("http://127.0.0.1:8080/");
  const kept = (jar: CookieJar, url: URL, header: string): boolean => "kept" in jar.receive(url, header);

  it("keeps Apache's sticky cookie whose Domain is the URL's IP address, and sends it back", () => {
    const jar = new CookieJar();
    assert.ok(kept(jar, balancer, "BALANCEID=balancer.lb1; path=/; domain=127.0.0.1"));
    assert.equal(jar.header(new URL("http://127.0.0.1:8080/login.php")), "BALANCEID=balancer.lb1");
  });

  it("drops a cookie whose Domain the host does not domain-match, saying why", () => {
    const jar = new CookieJar();
    const r = jar.receive(balancer, "BALANCEID=balancer.lb1; path=/; domain=example.org");
    assert.ok("dropped" in r && /Domain=example\.org does not domain-match the host 127\.0\.0\.1/.test(r.dropped));
    assert.equal(jar.header(balancer), "");
  });

  it("domain-matches a host name's parent domains (a leading dot ignored), never a suffix of an IP address", () => {
    const jar = new CookieJar();
    assert.ok(kept(jar, new URL("http://www.example.org/"), "a=1; Domain=.example.org"));
    assert.equal(jar.header(new URL("http://shop.example.org/")), "a=1");
    assert.equal(jar.header(new URL("http://example.com/")), "");
    assert.equal(domainMatch("badexample.org", "example.org"), false);
    assert.equal(domainMatch("10.0.0.1", "0.0.1"), false);
  });

  it("sends a host-only cookie to its host alone", () => {
    const jar = new CookieJar();
    assert.ok(kept(jar, new URL("http://example.org/"), "PROBESESS=abc; path=/"));
    assert.equal(jar.header(new URL("http://www.example.org/")), "");
    assert.equal(jar.header(new URL("http://example.org/x")), "PROBESESS=abc");
  });

  it("drops Secure over http, and a cookie that expires at once, removing the one it replaces", () => {
    const jar = new CookieJar();
    assert.ok("dropped" in jar.receive(balancer, "s=1; Secure; Domain=127.0.0.1"));
    assert.ok(kept(jar, balancer, "g=1; Path=/"));
    assert.ok("dropped" in jar.receive(balancer, "g=2; Path=/; Max-Age=0"));
    assert.equal(jar.header(balancer), "");
    assert.ok("dropped" in jar.receive(balancer, "h=1; Expires=Thu, 01 Jan 1970 00:00:00 GMT"));
  });

  it("matches paths at a slash: /app is sent to /app/x, not to /application or /", () => {
    assert.ok(pathMatch("/app/x", "/app"));
    assert.ok(!pathMatch("/application", "/app"));
    const jar = new CookieJar();
    assert.ok(kept(jar, balancer, "p=1; Path=/app"));
    assert.equal(jar.header(new URL("http://127.0.0.1:8080/")), "");
    assert.equal(jar.header(new URL("http://127.0.0.1:8080/app/x")), "p=1");
  });

  it("replaces a cookie of the same name, domain and path, as a client moving its sticky cookie does", () => {
    const jar = new CookieJar();
    assert.ok(kept(jar, balancer, "BALANCEID=balancer.lb1; path=/; domain=127.0.0.1"));
    jar.put(balancer, "BALANCEID", "balancer.lb2");
    assert.equal(jar.header(balancer), "BALANCEID=balancer.lb2");
  });
});

describe("verify: what it reads", () => {
  it("takes the sticky cookie's name and value prefix from the stickyCookie output", () => {
    assert.deepEqual(parseStickyCookie("BALANCEID=balancer.<route>"), { cookieName: "BALANCEID", cookieValuePrefix: "balancer." });
    assert.deepEqual(parseStickyCookie("JSESSIONID=node_<route>"), { cookieName: "JSESSIONID", cookieValuePrefix: "node_" });
    assert.throws(() => parseStickyCookie("BALANCEID"), /not name=prefix<route>/);
  });

  it("builds its target from the stack outputs alone, and tells the engines apart by their manager URLs", () => {
    const out = (v: Record<string, unknown>) => Object.fromEntries(Object.entries(v).map(([k, value]) => [k, { value, secret: false }]));
    const apache = targetFromOutputs(
      "dev",
      out({
        balancerUrl: "http://127.0.0.1:8080",
        balancerManagerUrl: "http://127.0.0.1:8080/balancer-manager",
        proxyNodeManagerUrl: "http://127.0.0.1:8081",
        webUrls: { lb1: "http://127.0.0.1:8091" },
        stickyCookie: "BALANCEID=balancer.<route>",
      }),
      new Secret("token-0123456789"),
    );
    assert.equal(engineOf(apache), "apache");
    assert.equal(apache.cookieName, "BALANCEID");
    const pn = targetFromOutputs(
      "x",
      out({
        balancerUrl: "http://h",
        balancerManagerUrl: "http://h:8081",
        proxyNodeManagerUrl: "http://h:8081",
        webUrls: { lb1: undefined },
        stickyCookie: "B=b.<route>",
      }),
      undefined,
    );
    assert.equal(engineOf(pn), "proxy-node");
    assert.throws(() => targetFromOutputs("gone", {}, undefined), /no balancerUrl or stickyCookie output/);
    const noWeb = out({ balancerUrl: "http://h", stickyCookie: "B=b.<route>", webUrls: {} });
    assert.throws(() => targetFromOutputs("bare", noWeb, undefined), /no webUrls output naming its web servers/);
  });

  it("reads each worker's route and status from Apache's balancer-manager page; only Init Ok is healthy", () => {
    const page = `<table><tr><th>MaxMembers</th><th>StickySession</th></tr><tr><td>2 [2 Used]</td><td>BALANCEID</td></tr></table>
<table><tr><th>Worker URL</th><th>Route</th><th>RouteRedir</th><th>Factor</th><th>Set</th><th>Status</th><th>Elected</th></tr>
<tr>
<td><a href="/balancer-manager?b=drupal&amp;w=http://172.30.57.11&amp;nonce=x">http://172.30.57.11</a></td><td>lb1</td><td></td><td>1.00</td><td>0</td><td>Init Ok </td><td>1</td></tr>
<tr>
<td><a href="/balancer-manager?b=drupal&amp;w=http://172.30.57.12&amp;nonce=x">http://172.30.57.12</a></td><td>lb2</td><td></td><td>1.00</td><td>0</td><td>Init Dis </td><td>0</td></tr>
</table>`;
    const workers = parseBalancerManager(page);
    assert.deepEqual(workers, [
      { url: "http://172.30.57.11", route: "lb1", status: "Init Ok" },
      { url: "http://172.30.57.12", route: "lb2", status: "Init Dis" },
    ]);
    assert.deepEqual(workers.map(workerHealthy), [true, false]);
    assert.equal(workerHealthy({ url: "", route: "", status: "Init Ok HcFl" }), false);
    assert.equal(workerHealthy({ url: "", route: "", status: "Init Err" }), false);
  });
});

describe("verify: the manager token", () => {
  it("never turns into text by accident", () => {
    const s = new Secret("token-0123456789");
    assert.equal(`${s}`, "(secret)");
    assert.equal(JSON.stringify({ s }), '{"s":"(secret)"}');
    assert.equal(inspect({ s }).includes("token-0123456789"), false);
    assert.equal(s.reveal(), "token-0123456789");
  });

  it("reaches the outside machine's curl on stdin, not on a command line; verify's arguments pass the shell unchanged", async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "verify-outside-"));
    try {
      // Stands in for `ssh host curl`: keeps its stdin and arguments, answers 403 as curl's -w would print it.
      const fake = path.join(dir, "curl");
      fs.writeFileSync(fake, `#!/bin/sh\ncat > "${dir}/stdin"\nprintf '%s\\n' "$@" > "${dir}/args"\nprintf 403\n`, { mode: 0o755 });
      const v = curlVantage(`${fake} --connect-to 'a:1:b:2'`);
      const r = await v.get("http://127.0.0.1:8081/api/members?a=1&b=$(id)", new Secret("token-0123456789"));
      assert.deepEqual(r, { status: 403, said: "403" });
      const args = fs.readFileSync(path.join(dir, "args"), "utf8").split("\n");
      assert.deepEqual(args.slice(0, 2), ["--connect-to", "a:1:b:2"]);
      assert.equal(args.includes("http://127.0.0.1:8081/api/members?a=1&b=$(id)"), true);
      assert.equal(args.join(" ").includes("token-0123456789"), false);
      assert.equal(fs.readFileSync(path.join(dir, "stdin"), "utf8"), "Authorization: Bearer token-0123456789\n");
      const none = await curlVantage("false").get("http://127.0.0.1:1/");
      assert.equal(none.status, undefined);
      assert.match(none.said, /no answer from there \(exit 1/);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe("verify: forwarding headers a client forged", () => {
  // A stand-in balancer on 127.0.0.1 whose web server reports what it was told, as the probe page
  // does: the balancer's own host unless the case forges one, and the scheme the case gives.
  async function balancerTelling(told: { forwardedHost?: string; forwardedProto: string | null }): Promise<{ url: string; close: () => void }> {
    const server = http.createServer((req, res) => {
      res.setHeader("content-type", "application/json");
      const page = { server: "lb1", route: "lb1", visits: 1, user: null, session: "s", clientIp: "172.30.57.1", forwarded: null };
      res.end(JSON.stringify({ ...page, forwardedHost: told.forwardedHost ?? req.headers.host, forwardedProto: told.forwardedProto }));
    });
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, close: () => server.close() };
  }

  for (const [what, told, verdict] of [
    ["the balancer's own scheme", { forwardedProto: "http" }, "PASS"],
    ["no scheme at all", { forwardedProto: null }, "PASS"],
    ["the client's forged https", { forwardedProto: "https" }, "FAIL"],
    ["the client's forged host", { forwardedHost: "forged.invalid", forwardedProto: "http" }, "FAIL"],
  ] as const) {
    it(`${verdict} when the web server is told ${what}`, async () => {
      const b = await balancerTelling(told);
      try {
        const target: VerifyTarget = { stack: "t", balancerUrl: b.url, webUrls: { lb1: undefined }, cookieName: "BALANCEID", cookieValuePrefix: "balancer." };
        const [r] = await forwardedHeaders.run({ target });
        assert.equal(r.verdict, verdict, r.saw);
      } finally {
        b.close();
      }
    });
  }
});

describe("verify: a balancer pair", () => {
  // Two stand-in managers on 127.0.0.1, each answering /api/members as proxy-node's does.
  async function managerSaying(holds: boolean, statuses: Record<string, string>): Promise<{ url: string; close: () => void }> {
    const server = http.createServer((req, res) => {
      if (req.headers.authorization !== "Bearer t0ken-for-tests") {
        res.writeHead(401).end();
        return;
      }
      res.setHeader("content-type", "application/json");
      const members = Object.entries(statuses).map(([route, status]) => ({ route, status }));
      res.end(JSON.stringify({ members, redundancy: { self: "x", virtualAddress: "172.30.9.4", holdsAddress: holds, peers: [] } }));
    });
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, close: () => server.close() };
  }
  const enabled = { lb1: "enabled", lb2: "enabled" };

  for (const [what, a, b, verdict, saw] of [
    ["one holds the address and both agree", [true, enabled], [false, enabled], "PASS", /balancer holds 172\.30\.9\.4; both balancers agree on 2 members/],
    ["neither holds it", [false, enabled], [false, enabled], "FAIL", /no balancer holds the virtual address/],
    ["both hold it", [true, enabled], [true, enabled], "FAIL", /balancer and balancer2 both hold .*split brain/],
    [
      "they disagree on a member",
      [true, enabled],
      [false, { lb1: "enabled", lb2: "disabled" }],
      "FAIL",
      /disagree on lb2 \(balancer: enabled, balancer2: disabled\)/,
    ],
  ] as const) {
    it(`${verdict} when ${what}`, async () => {
      const m1 = await managerSaying(a[0], a[1]);
      const m2 = await managerSaying(b[0], b[1]);
      try {
        const target: VerifyTarget = {
          stack: "t",
          balancerUrl: "http://127.0.0.1:9",
          webUrls: { lb1: undefined },
          cookieName: "BALANCEID",
          cookieValuePrefix: "balancer.",
          managerToken: new Secret("t0ken-for-tests"),
          virtualAddress: "172.30.9.4",
          balancers: { balancer: { proxyNodeManagerUrl: m1.url }, balancer2: { proxyNodeManagerUrl: m2.url } },
        };
        const [r] = await balancerPair.run({ target });
        assert.equal(r.verdict, verdict, r.saw);
        assert.match(r.saw, saw);
      } finally {
        m1.close();
        m2.close();
      }
    });
  }

  it("SKIPs with one balancer", async () => {
    const [r] = await balancerPair.run({ target: { stack: "t", balancerUrl: "http://127.0.0.1:9", webUrls: {}, cookieName: "B", cookieValuePrefix: "b." } });
    assert.equal(r.verdict, "SKIP");
  });
});
