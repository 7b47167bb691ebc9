import * as assert from "node:assert/strict";
import { NOT_FORWARDED_MARKER, VerifyTarget } from "../../ops/verify";
import { recordFigure } from "../support/figures";
import { onHost, RunningCluster } from "../support/local-cluster";
import { registerBrokenOnPurpose } from "./broken-on-purpose";
import { checkManager, checkSessionsInDatabase, ManagerOps } from "./checks";
import { assertVerdicts, outsideVantage, runVerifyCommand, targetOf, verifyFrom } from "./verify";

export interface UserCheckOptions {
  /** The manager token. Default: read from the stack with its outputs, as `npm run verify` reads them. */
  managerToken?: () => Promise<string>;
  /** Also break the cluster on purpose and see verify fail (./broken-on-purpose.ts). Default: yes. */
  breakOnPurpose?: boolean;
}

/**
 * The checks of the cluster issue, the same for every engine: `npm run verify`
 * (ops/verify) with its allowlist check asked from web server lb1, then what
 * only a test can check (the session's row in MariaDB, a change in the manager).
 */
export function registerUserChecks(get: () => RunningCluster, manager: () => Promise<ManagerOps>, opts: UserCheckOptions = {}): void {
  const target = async (): Promise<VerifyTarget> => targetOf(get(), opts.managerToken ? await opts.managerToken() : undefined);

  it("verify: every check PASSes (https SKIP: off), the managers' allowlist asked from lb1 outside it; the fresh cluster spreads new clients evenly; the refused requests reached no web server", async () => {
    const c = get();
    const report = await verifyFrom(c, await target());
    recordFigure(`${c.model.stack}: verify, every check (outputs already read), s`, report.seconds);
    assertVerdicts(report);
    // Spread runs first, on a cluster that has had no pinned traffic yet: byrequests, within one.
    const counts = Object.values(report.results.find((r) => r.check === "spread")?.counts ?? {});
    assert.ok(counts.length === c.model.web.length && Math.max(...counts) - Math.min(...counts) <= 1, `uneven spread over new clients: ${counts.join(", ")}`);
    for (const w of c.model.web) {
      const log = onHost(c.model, w.host.name, `cat /var/log/apache2/*access.log | grep -c ${NOT_FORWARDED_MARKER} || true`);
      assert.equal(log.out, "0", `${w.host.name} received a request verify's absolute-form or CONNECT named (${log.out} log lines)`);
    }
  });
  if (!opts.managerToken) {
    // A replayed cluster has no stack for the command to read.
    it("npm run verify -- --stack <stack> --outside <lb1>: exit 0, a PASS line per check (https SKIP), the manager token nowhere in what it prints", async () => {
      const c = get();
      const t0 = Date.now();
      const r = await runVerifyCommand(["--stack", c.model.stack, "--outside", outsideVantage(c).command]);
      recordFigure(`${c.model.stack}: npm run verify (start, read the stack, every check), s`, (Date.now() - t0) / 1000);
      assert.equal(r.code, 0, r.out);
      const lines = r.out.split("\n").filter((l) => /^(PASS|FAIL|SKIP) /.test(l));
      assert.ok(lines.length >= 15, r.out);
      assert.deepEqual(
        lines.filter((l) => !l.startsWith("PASS ") && !/^SKIP\s+(https|balancer pair)\s/.test(l)),
        [],
        r.out,
      );
      const token = (await target()).managerToken;
      assert.ok(token && !r.out.includes(token.reveal()), "the manager token is in what verify printed");
    });
  }
  it("keeps the login and the visit counter in MariaDB, readable from every web server", async () => {
    await checkSessionsInDatabase(get());
  });
  it("balancer-manager: allowed network only, and disabling a member moves new clients", async () => {
    await checkManager(get(), await manager());
  });
  if (opts.breakOnPurpose !== false) registerBrokenOnPurpose(get, target);
}
