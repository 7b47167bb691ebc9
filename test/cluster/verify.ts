import * as assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { REPO_ROOT } from "../../infra/config/stack-file";
import { CHECKS, CheckResult, curlVantage, formatResult, OutsideVantage, runVerify, Secret, Verdict, VerifyReport, VerifyTarget } from "../../ops/verify";
import { containerName } from "../../scripts/local-hosts";
import { readTarget } from "../../scripts/verify";
import { RunningCluster } from "../support/local-cluster";

/**
 * What `npm run verify` reads for a test cluster: the stack's outputs and its
 * manager token, read the same way. A replayed cluster has no stack, so its
 * token is given and the rest comes from what it published.
 */
export async function targetOf(c: RunningCluster, managerToken?: string): Promise<VerifyTarget> {
  if (managerToken === undefined) return readTarget(c.model.stack);
  return {
    stack: c.model.stack,
    balancerUrl: c.balancerUrl,
    balancerManagerUrl: c.managerUrl,
    proxyNodeManagerUrl: c.model.balancer.managerUrl,
    webUrls: c.webUrls,
    cookieName: c.model.sticky.cookieName,
    cookieValuePrefix: c.model.sticky.valuePrefix,
    managerToken: new Secret(managerToken),
  };
}

/**
 * A client outside the managers' allowlist: curl on web server lb1's host (the
 * allowlist has the docker gateway, not lb1), which reaches the balancer at its
 * cluster address. The published URLs stay as they are; curl's --connect-to
 * sends them there.
 */
export function outsideVantage(c: RunningCluster): OutsideVantage {
  const b = c.model.balancer;
  const to = (published: string | undefined, port: number): string[] => {
    if (!published) return [];
    const u = new URL(published);
    return [`--connect-to ${u.hostname}:${u.port || 80}:${b.host.clusterAddress}:${port}`];
  };
  const lb1 = containerName(c.model, c.model.web[0].host);
  // A pair's Apache manager is on the first balancer's own URL (directUrl), not the public one.
  const direct = b.host.url && b.host.url !== c.balancerUrl ? to(b.host.url, b.httpPort) : [];
  return curlVantage(`docker exec -i ${lb1} curl ${[...to(c.balancerUrl, b.httpPort), ...direct, ...to(b.managerUrl, b.managerPort)].join(" ")}`);
}

export function verifyFrom(c: RunningCluster, target: VerifyTarget): Promise<VerifyReport> {
  return runVerify({ target, outside: outsideVantage(c) });
}

/**
 * Every line PASS, but those named in `expected` (and https, SKIP: HTTPS is off,
 * issue 10; balancer pair, SKIP: one balancer, unless the case says PASS).
 */
export function assertVerdicts(report: VerifyReport, expected: Record<string, Verdict> = {}): void {
  const want = (r: CheckResult): Verdict => expected[r.check] ?? (r.check === "https" || r.check === "balancer pair" ? "SKIP" : "PASS");
  const all = report.results.map(formatResult).join("\n");
  assert.deepEqual(report.results.filter((r) => r.verdict !== want(r)).map(formatResult), [], `verify said:\n${all}`);
  for (const check of Object.keys(expected))
    assert.ok(
      report.results.some((r) => r.check === check),
      `verify printed no line for ${check}:\n${all}`,
    );
}

/** Runs one of verify's checks until its first line has `verdict` (a balancer takes a moment to see a change). */
export async function untilVerdict(c: RunningCluster, target: VerifyTarget, check: string, verdict: Verdict, limitMs: number): Promise<CheckResult> {
  const found = CHECKS.find((x) => x.name === check);
  if (!found) throw new Error(`verify has no check ${check}`);
  const t0 = Date.now();
  for (;;) {
    const [r]: CheckResult[] = await found
      .run({ target, outside: outsideVantage(c) })
      .catch((e: unknown) => [{ check, verdict: "FAIL" as Verdict, saw: String(e) }]);
    if (r.verdict === verdict) return r;
    if (Date.now() - t0 > limitMs) assert.fail(`${check} was still not ${verdict} after ${limitMs / 1000} s: ${formatResult(r)}`);
    await new Promise((res) => setTimeout(res, 500));
  }
}

/** `npm run verify` itself, as an operator runs it. */
export function runVerifyCommand(args: string[]): Promise<{ code: number; out: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn("npm", ["run", "--silent", "verify", "--", ...args], { cwd: REPO_ROOT, stdio: ["ignore", "pipe", "pipe"] });
    let out = "";
    child.stdout.on("data", (d: Buffer) => (out += d.toString()));
    child.stderr.on("data", (d: Buffer) => (out += d.toString()));
    child.on("error", reject);
    child.on("close", (code) => resolve({ code: code ?? -1, out }));
  });
}
