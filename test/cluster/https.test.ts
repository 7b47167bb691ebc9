/**
 * Issue 10 for real: HTTPS at the balancer of a local cluster brought up by a
 * real `pulumi up`, once per engine, with the certificate `npm run up` makes
 * from the stack's local CA. What a user would notice: the site over HTTPS
 * with the printed CA, plain HTTP redirected, old protocols and weak suites
 * refused (Debian's sslscan), the cookies' flags, the application seeing
 * https, the managers over HTTPS from the allowed networks only, and a new
 * certificate taken by `up` under steady load without one failed request.
 */
import * as assert from "node:assert/strict";
import { execFileSync, spawnSync } from "node:child_process";
import { X509Certificate } from "node:crypto";
import * as fs from "node:fs";
import * as https from "node:https";
import * as path from "node:path";
import * as tls from "node:tls";
import { REPO_ROOT } from "../../infra/config/stack-file";
import { INTERMEDIATE_CIPHERS } from "../../infra/config/tls";
import { runVerify } from "../../ops/verify";
import { localTlsDir } from "../../scripts/local-tls";
import { openStack, summaryLines, up } from "../../scripts/stack";
import { pulumiVersion } from "../../scripts/toolchain";
import { readTarget } from "../../scripts/verify";
import { recordFigure } from "../support/figures";
import { leftovers, onHost, RunningCluster, tearDown, Variant, variantOverrides } from "../support/local-cluster";

/** TLS 1.3's suites: OpenSSL's defaults, all AEAD. */
const TLS13 = ["TLS_AES_128_GCM_SHA256", "TLS_AES_256_GCM_SHA384", "TLS_CHACHA20_POLY1305_SHA256"];

let engineLog = "";
const log = (s: string): void => {
  engineLog += s;
  if (process.env.DRUPAL_CLUSTER_VERBOSE) process.stdout.write(s);
};

function httpsUrl(v: Variant): string {
  return String((v.balancer?.tls as { url: string }).url);
}

function caFile(v: Variant): string {
  return path.join(localTlsDir(REPO_ROOT, v.stack), "ca.crt");
}

/** One GET over HTTPS trusting the stack's CA; the certificate it was served with. */
function get(url: string, ca: string, agent?: https.Agent): Promise<{ status: number; headers: Record<string, unknown>; body: string; fingerprint: string }> {
  return new Promise((resolve, reject) => {
    const req = https.get(url, { ca, agent: agent ?? false, timeout: 15_000 }, (res) => {
      const fingerprint = (res.socket as tls.TLSSocket).getPeerCertificate().fingerprint256;
      let body = "";
      res.setEncoding("utf8");
      res.on("data", (d: string) => (body += d));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body, fingerprint }));
      res.on("error", reject);
    });
    req.on("timeout", () => req.destroy(new Error("no answer within 15 s")));
    req.on("error", reject);
  });
}

/** The balancer's HTTPS port as Debian's sslscan sees it. */
function sslscan(url: string): string {
  const u = new URL(url);
  const r = spawnSync("sslscan", ["--no-colour", `${u.hostname}:${u.port}`], { encoding: "utf8", timeout: 120_000 });
  if (r.error) throw new Error(`sslscan cannot run (${r.error.message}): scripts/bootstrap installs it (apt-get install sslscan)`);
  assert.equal(r.status, 0, r.stdout + r.stderr);
  return r.stdout;
}

/** The stored state of one stack, as files (exportStack would decrypt it). */
function storedState(stack: string): string {
  const out: string[] = [];
  const walk = (dir: string): void => {
    for (const e of fs.existsSync(dir) ? fs.readdirSync(dir, { withFileTypes: true }) : []) {
      const full = path.join(dir, e.name);
      if (e.isDirectory()) walk(full);
      else if (full.includes(`/${stack}`) && e.name.endsWith(".json")) out.push(fs.readFileSync(full, "utf8"));
    }
  };
  walk(path.join(REPO_ROOT, ".pulumi-state", ".pulumi"));
  return out.join("\n");
}

interface LoadReport {
  requests: number;
  failed: number;
  errors: string[];
  fingerprints: Set<string>;
}

/**
 * Steady load over HTTPS until stop(): clients that open a new connection per
 * request, and keep-alive clients that, like browsers, send a GET again when
 * the server closed a reused idle connection under it (the one thing a graceful
 * reload does to keep-alive connections; node reports it as req.reusedSocket).
 */
function steadyLoad(url: string, ca: string): { stop: () => Promise<LoadReport> } {
  const report: LoadReport = { requests: 0, failed: 0, errors: [], fingerprints: new Set() };
  let running = true;
  const one = (agent?: https.Agent): Promise<void> =>
    new Promise((resolve) => {
      let retried = false;
      const attempt = (): void => {
        const req = https.get(`${url}/health.php`, { ca, agent: agent ?? false, timeout: 15_000 }, (res) => {
          report.fingerprints.add((res.socket as tls.TLSSocket).getPeerCertificate().fingerprint256);
          res.resume();
          res.on("end", () => {
            report.requests++;
            if (res.statusCode !== 200) {
              report.failed++;
              report.errors.push(`status ${res.statusCode}`);
            }
            resolve();
          });
        });
        req.on("timeout", () => req.destroy(new Error("timeout")));
        req.on("error", (e: NodeJS.ErrnoException) => {
          if (req.reusedSocket && !retried && (e.code === "ECONNRESET" || e.message === "socket hang up")) {
            retried = true;
            attempt();
            return;
          }
          report.requests++;
          report.failed++;
          report.errors.push(e.code ?? e.message);
          resolve();
        });
      };
      attempt();
    });
  const loop = async (agent?: https.Agent): Promise<void> => {
    while (running) await one(agent);
  };
  const agents = [new https.Agent({ keepAlive: true, maxSockets: 1 }), new https.Agent({ keepAlive: true, maxSockets: 1 })];
  const loops = [loop(), loop(), ...agents.map((a) => loop(a))];
  return {
    stop: async () => {
      running = false;
      await Promise.all(loops);
      for (const a of agents) a.destroy();
      return report;
    },
  };
}

function httpsSuite(title: string, v: Variant, hstsMaxAge: number): void {
  describe(title, function () {
    this.timeout(20 * 60 * 1000);
    let cluster: RunningCluster | undefined;
    let tornDown = false;
    const getCluster = (): RunningCluster => {
      if (!cluster) throw new Error("the cluster did not come up");
      return cluster;
    };
    const url = httpsUrl(v);
    const ca = (): string => fs.readFileSync(caFile(v), "utf8");

    before(async function () {
      // Fails loudly: without the CLI or the scanner this suite cannot run, and skipping would hide it.
      if (!pulumiVersion()) throw new Error("the Pulumi CLI is missing (.tools/bin/pulumi): run scripts/bootstrap");
      if (spawnSync("sslscan", ["--version"]).error) throw new Error("sslscan is missing: run scripts/bootstrap (apt-get install sslscan)");
      await tearDown(v).catch(() => undefined);
      fs.rmSync(localTlsDir(REPO_ROOT, v.stack), { recursive: true, force: true });
      // bringUp's model comes from the stack file, which has no certificate: the one `up` made is in openStack's.
      const t0 = Date.now();
      const out = await up(v.stack, { baseStack: "dev", overrides: variantOverrides(v), onOutput: log });
      const upSeconds = (Date.now() - t0) / 1000;
      const { model } = await openStack(v.stack, { baseStack: "dev", overrides: variantOverrides(v), skipPayloadCheck: true });
      cluster = {
        model,
        balancerUrl: String(out.balancerUrl.value),
        managerUrl: String(out.balancerManagerUrl.value),
        webUrls: out.webUrls.value as Record<string, string>,
        upSeconds,
      };
      recordFigure(`${v.stack}: pulumi up from nothing with HTTPS (hosts + provisioning), s`, upSeconds);
    });

    after(async function () {
      if (process.env.DRUPAL_CLUSTER_KEEP) return;
      if (!tornDown) await tearDown(v, log).catch((e) => console.error(`teardown of ${v.stack}: ${e}`));
      fs.rmSync(localTlsDir(REPO_ROOT, v.stack), { recursive: true, force: true });
      assert.deepEqual(leftovers(v.stack), [], `stack ${v.stack} left things behind`);
    });

    it("verify over HTTPS with the stack's CA: every check PASSes, the https ones included (SKIP: manager allowlist, this machine is allowed; balancer pair, one balancer)", async () => {
      const target = await readTarget(v.stack);
      assert.equal(target.balancerUrl, url);
      assert.ok(target.ca?.includes("BEGIN CERTIFICATE"), "verify did not pick up the stack's CA");
      const report = await runVerify({ target });
      const lines = report.results.map((r) => `${r.verdict} ${r.check}: ${r.saw}`).join("\n");
      assert.equal(report.failed, 0, lines);
      const verdict = (check: string): string | undefined => report.results.find((r) => r.check === check)?.verdict;
      for (const check of [
        "spread",
        "pinned",
        "sticky",
        "cookie jar",
        "session",
        "absolute-form",
        "CONNECT",
        "malformed",
        "https certificate",
        "https protocols",
        "https redirect",
        "https cookie",
        "https scheme",
      ]) {
        assert.equal(verdict(check), "PASS", `${check}\n${lines}`);
      }
      assert.deepEqual(
        report.results.filter((r) => r.verdict === "SKIP").map((r) => r.check),
        // This machine is inside the allowlist; these stacks have one balancer.
        ["manager allowlist", "balancer pair"],
        lines,
      );
    });

    it("the CA `npm run up` prints works as printed: curl --cacert <path> <https url>/", async () => {
      const { stack } = await openStack(v.stack, { baseStack: "dev", overrides: variantOverrides(v), skipPayloadCheck: true });
      const printed = summaryLines(await stack.outputs(), v.stack);
      const line = printed.find((l) => l.includes("curl --cacert"));
      assert.ok(line, `no CA line in:\n${printed.join("\n")}`);
      const command = /\((curl --cacert [^)]+)\)/.exec(line)![1];
      const out = execFileSync("sh", ["-c", `${command} -s -o /dev/null -w '%{http_code} %{ssl_verify_result}'`], { cwd: REPO_ROOT, encoding: "utf8" });
      assert.equal(out, "200 0", command);
    });

    it(`plain HTTP answers 301 to the same path on HTTPS; HSTS ${hstsMaxAge > 0 ? `max-age=${hstsMaxAge}` : "off"} as configured`, async () => {
      const c = getCluster();
      const r = spawnSync("curl", ["-s", "-o", "/dev/null", "-w", "%{http_code} %{redirect_url}", `${c.balancerUrl}/some/page?x=1`], { encoding: "utf8" });
      assert.equal(r.stdout, `301 ${url}/some/page?x=1`);
      const page = await get(`${url}/`, ca());
      assert.equal(page.headers["strict-transport-security"], hstsMaxAge > 0 ? `max-age=${hstsMaxAge}` : undefined);
    });

    it("sslscan: SSLv2, SSLv3, TLS 1.0 and 1.1 disabled; TLS 1.2 and 1.3 enabled; only Mozilla intermediate suites accepted; not vulnerable to heartbleed", () => {
      const out = sslscan(url);
      for (const p of ["SSLv2", "SSLv3", "TLSv1.0", "TLSv1.1"]) assert.match(out, new RegExp(`^${p.replace(".", "\\.")}\\s+disabled`, "m"), out);
      for (const p of ["TLSv1.2", "TLSv1.3"]) assert.match(out, new RegExp(`^${p.replace(".", "\\.")}\\s+enabled`, "m"), out);
      const accepted = [...out.matchAll(/^(?:Preferred|Accepted)\s+(TLSv1\.[23])\s+\d+ bits\s+(\S+)/gm)].map((m) => `${m[1]} ${m[2]}`);
      assert.ok(accepted.length >= 3, out);
      const weak = accepted.filter((a) => {
        const [proto, suite] = a.split(" ");
        return proto === "TLSv1.3" ? !TLS13.includes(suite) : !INTERMEDIATE_CIPHERS.includes(suite);
      });
      assert.deepEqual(weak, [], out);
      const heartbleed = out.split("\n").filter((l) => /^TLSv1\.[23] .*heartbleed/i.test(l));
      assert.ok(heartbleed.length > 0 && heartbleed.every((l) => /not vulnerable/i.test(l)), out);
      recordFigure(`${v.stack}: sslscan, suites accepted`, accepted.length);
    });

    it("the managers answer over HTTPS to the allowed network, and refuse a host outside it over HTTPS too", async () => {
      const c = getCluster();
      const { stack } = await openStack(v.stack, { baseStack: "dev", overrides: variantOverrides(v), skipPayloadCheck: true });
      const token = (await stack.getConfig("drupal-cluster:managerToken")).value;
      const mgr = new URL(String(c.model.balancer.managerUrl));
      // proxy-node's manager: HTTP and HTTPS on its one port.
      const viaHttps = spawnSync("curl", ["-s", "-o", "/dev/null", "-w", "%{http_code}", "--cacert", caFile(v), "-K", "-", `https://${mgr.host}/api/members`], {
        input: `header = "Authorization: Bearer ${token}"\n`,
        encoding: "utf8",
      });
      assert.equal(viaHttps.stdout, "200");
      const b = c.model.balancer;
      const fromLb1 = (target: string): string => onHost(c.model, "lb1", `curl -sk -o /dev/null -w '%{http_code}' ${target}`).out;
      assert.equal(fromLb1(`https://${b.host.clusterAddress}:${b.managerPort}/api/members`), "403");
      if (b.engine === "apache") {
        const page = await get(`${url}/balancer-manager`, ca());
        assert.equal(page.status, 200);
        assert.match(page.body, /balancer:\/\/drupal/);
        assert.equal(fromLb1(`https://${b.host.clusterAddress}:${b.tls!.httpsPort}/balancer-manager`), "403");
      }
    });

    it("tlsPrivateKey stays a secret: not in the stored state, the outputs or the engine's log; 0600 on the balancer", async () => {
      const { stack } = await openStack(v.stack, { baseStack: "dev", overrides: variantOverrides(v), skipPayloadCheck: true });
      const key = (await stack.getConfig("drupal-cluster:tlsPrivateKey")).value;
      const body = key.split("\n")[1];
      assert.ok(body.length >= 40, "the key is too short to look for");
      const state = storedState(v.stack);
      assert.ok(state.includes('"drupal-cluster:tlsPrivateKey"'), "the stored state of the stack was not found");
      assert.ok(!state.includes(body), "the key is in the state in plaintext");
      assert.ok(!JSON.stringify(await stack.outputs()).includes(body), "the key is in the outputs");
      assert.ok(!engineLog.includes(body), "the key is in the engine's log");
      assert.equal(onHost(getCluster().model, "balancer", "stat -c '%a %U' /etc/drupal-cluster/tls/balancer.key").out, "600 root");
    });

    it("a new certificate by `up` under steady HTTPS load: served to new connections, not one request failed, proxy-node not restarted", async () => {
      const c = getCluster();
      const before = await get(`${url}/`, ca());
      const pidBefore = onHost(c.model, "balancer", "cat /run/proxy-node.pid").out;
      // The local certificate made again, as when it nears its end: up sets it and its key.
      fs.rmSync(path.join(localTlsDir(REPO_ROOT, v.stack), "balancer.crt"));
      const load = steadyLoad(url, ca());
      const t0 = Date.now();
      await up(v.stack, { baseStack: "dev", overrides: variantOverrides(v), onOutput: log, refresh: false, skipPayloadCheck: true });
      const upSeconds = (Date.now() - t0) / 1000;
      await new Promise((r) => setTimeout(r, 2000));
      const report = await load.stop();
      const after = await get(`${url}/`, ca());
      const served = new X509Certificate(fs.readFileSync(path.join(localTlsDir(REPO_ROOT, v.stack), "balancer.crt")));
      recordFigure(`${v.stack}: certificate rotation by up under load, requests`, report.requests);
      recordFigure(`${v.stack}: certificate rotation by up under load, failed requests`, report.failed);
      recordFigure(`${v.stack}: certificate rotation, up (no refresh), s`, upSeconds);
      assert.notEqual(after.fingerprint, before.fingerprint, "the balancer still serves the old certificate");
      assert.equal(after.fingerprint, served.fingerprint256);
      assert.ok(report.fingerprints.has(before.fingerprint) && report.fingerprints.has(after.fingerprint), "the load did not span the rotation");
      assert.ok(report.requests > 50, `only ${report.requests} requests in the load`);
      assert.equal(report.failed, 0, `${report.failed} of ${report.requests} failed: ${[...new Set(report.errors)].join(", ")}`);
      const pidAfter = onHost(c.model, "balancer", "cat /run/proxy-node.pid").out;
      assert.equal(
        pidAfter,
        pidBefore,
        `proxy-node was restarted for a certificate: ${onHost(c.model, "balancer", "ps -eo pid,lstart,args; tail -n 20 /var/log/proxy-node.log").out}`,
      );
    });

    it("pulumi destroy and the hosts' teardown leave no container, network or volume", async function () {
      // DRUPAL_CLUSTER_KEEP=1 keeps the cluster for a post-mortem.
      if (process.env.DRUPAL_CLUSTER_KEEP) this.skip();
      await tearDown(v, log);
      tornDown = true;
      assert.deepEqual(leftovers(v.stack), []);
    });
  });
}

describe("HTTPS at the balancer on real clusters (issue 10)", function () {
  const APACHE: Variant = {
    stack: "ci-https-apache",
    portOffset: 1900,
    subnet: 72,
    balancer: { timeout: 5, tls: { url: `https://127.0.0.1:${8443 + 1900}`, hstsMaxAge: 600 } },
  };
  httpsSuite("apache engine (mod_ssl), HSTS on", APACHE, 600);
  // Another HTTPS port inside the host than the default, and HSTS left off.
  const PROXYNODE: Variant = {
    stack: "ci-https-proxynode",
    portOffset: 1950,
    subnet: 73,
    engine: "proxy-node",
    balancer: { timeout: 5, proxyNodeWorkers: 2, tls: { url: `https://127.0.0.1:${8443 + 1950}`, httpsPort: 8443 } },
  };
  httpsSuite("proxy-node engine (workers: 2), HSTS off", PROXYNODE, 0);
});
