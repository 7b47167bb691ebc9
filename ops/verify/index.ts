/**
 * verify: a live cluster checked from the outside, as its users and an
 * attacker would, through what the stack publishes (./target.ts). One line per
 * check; scripts/verify.ts is the command, the real-cluster tests call
 * runVerify too.
 */
import { Check, VerifyContext } from "./context";
import { CheckResult, fail } from "./result";
import { cookieJar, pinned, spread, sticky } from "./checks/stickiness";
import { session } from "./checks/session";
import { forwardedHeaders } from "./checks/forwarded";
import { direct } from "./checks/direct";
import { managerAllowlist, managerToken } from "./checks/managers";
import { absoluteForm, connect, malformed, oversized } from "./checks/requests";
import { https } from "./checks/https";
import { membersHealthy } from "./checks/members";
import { balancerPair } from "./checks/pair";
import { trustCa } from "./http";

export { VerifyTarget, parseStickyCookie } from "./target";
export { CheckResult, formatResult, Verdict } from "./result";
export { curlVantage, OutsideVantage } from "./outside";
export { Secret } from "./secret";
export { NOT_FORWARDED_MARKER } from "./checks/requests";

/**
 * The order matters in one place: spread goes first, before verify's own pinned
 * requests move byrequests' counts. The hostile requests come late, and the
 * members' health last, so it also shows whether they harmed anything.
 */
export const CHECKS: readonly Check[] = [
  spread,
  pinned,
  sticky,
  cookieJar,
  session,
  forwardedHeaders,
  direct,
  managerToken,
  managerAllowlist,
  absoluteForm,
  connect,
  oversized,
  malformed,
  https,
  membersHealthy,
  balancerPair,
];

export interface VerifyReport {
  results: CheckResult[];
  failed: number;
  seconds: number;
}

/** Runs every check in turn; a check that throws is a FAIL with what it threw, and the next one still runs. */
export async function runVerify(ctx: VerifyContext, onResult: (r: CheckResult) => void = () => undefined): Promise<VerifyReport> {
  const t0 = Date.now();
  const results: CheckResult[] = [];
  trustCa(ctx.target.ca);
  for (const check of CHECKS) {
    let out: CheckResult[];
    try {
      out = await check.run(ctx);
    } catch (e) {
      out = [fail(check.name, e instanceof Error ? e.message : String(e))];
    }
    for (const r of out) {
      results.push(r);
      onResult(r);
    }
  }
  return { results, failed: results.filter((r) => r.verdict === "FAIL").length, seconds: (Date.now() - t0) / 1000 };
}
