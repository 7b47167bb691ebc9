/**
 * Checks a live cluster from the outside, as its users and an attacker would,
 * and prints one line per check: PASS, FAIL or SKIP, and what it saw.
 *
 *   npm run verify [-- --stack <stack>] [--outside "<command>"] [--cacert <file>]
 *   DRUPAL_CLUSTER_STACK=<stack> npm run verify        (default stack: dev)
 *
 * It reads the stack's outputs (balancerUrl, balancerManagerUrl,
 * proxyNodeManagerUrl, webUrls, stickyCookie) and the managerToken secret
 * (never printed), nothing else, and sends ordinary client requests from this
 * machine: a new client is pinned; new clients reach every web server; 50
 * requests of a pinned client stay; a browser-like cookie jar keeps the sticky
 * cookie (a Domain that does not fit the URL is dropped, as a browser drops it);
 * a login survives the next requests and a move to the other web servers; forged
 * X-Forwarded-* do not reach the web servers; each web server answers on its
 * published URL; proxy-node's manager refuses a request without the token; an
 * absolute-form request and CONNECT are refused; oversized and malformed
 * requests are refused and the balancer serves afterwards; with HTTPS (the
 * stack's balancerHttpsUrl, where every other check then goes too): a trusted
 * certificate for the host, TLS 1.0 and 1.1 refused, plain HTTP redirected, the
 * sticky cookie Secure, HttpOnly and SameSite=Lax, the probe seeing https (SKIP
 * while HTTPS is off); every member healthy in the managers' view.
 * --cacert names the CA to trust for HTTPS; a local stack's own CA
 * (.secrets/<stack>-tls/ca.crt) is trusted without it.
 * The checks that see which web server answered need the probe app (app: probe).
 *
 * The managers' allowlist can only be seen refusing from a machine outside it.
 * Where this machine is let in (the dev stack allows the docker gateway its
 * published ports arrive through), that line is SKIP. --outside names a command
 * that runs curl on a machine outside the allowlist; verify appends curl's
 * arguments and the URL, and sends the token on curl's stdin, e.g.
 *   --outside "ssh ops@203.0.113.9 curl"
 *   --outside "docker exec -i drupal-cluster-dev-lb1 curl --connect-to 127.0.0.1:8080:172.30.57.5:80 --connect-to 127.0.0.1:8081:172.30.57.5:8081"
 * (the second asks from the dev stack's web server lb1, which reaches the
 * balancer at its cluster address).
 *
 * Verify makes a few hundred requests, logs in once as verify-<random>, and
 * changes nothing on the cluster. Exit 0 when no check failed, 1 when one did,
 * 2 when the stack could not be read.
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { LocalWorkspace, OutputMap, Stack } from "@pulumi/pulumi/automation";
import { PROJECT, REPO_ROOT } from "../infra/config/stack-file";
import { curlVantage, formatResult, parseStickyCookie, runVerify, Secret, VerifyTarget } from "../ops/verify";
import { engineEnv } from "./engine-env";
import { TOOLS_BIN } from "./toolchain";
import { localTlsDir } from "./local-tls";

/**
 * The stack as the other scripts left it, read only: its work folder
 * (.pulumi-work/<stack>, where `up` keeps the config with the secrets generated
 * for local stacks) if there is one, else the committed Pulumi.<stack>.yaml.
 */
async function selectStack(stackName: string): Promise<Stack> {
  process.env.PATH = `${TOOLS_BIN}:${process.env.PATH ?? ""}`;
  const work = path.join(REPO_ROOT, ".pulumi-work", stackName);
  const workDir = fs.existsSync(path.join(work, `Pulumi.${stackName}.yaml`)) ? work : REPO_ROOT;
  const ws = await LocalWorkspace.create({ workDir, envVars: engineEnv() });
  try {
    return await Stack.select(stackName, ws);
  } catch {
    throw new Error(`stack ${stackName} has no state in this backend: bring it up first (DRUPAL_CLUSTER_STACK=${stackName} npm run up)`);
  }
}

export function targetFromOutputs(stackName: string, outputs: OutputMap, managerToken: Secret | undefined): VerifyTarget {
  const str = (k: string): string | undefined => {
    const v = outputs[k]?.value;
    return typeof v === "string" && v ? v : undefined;
  };
  const plainUrl = str("balancerUrl");
  const httpsUrl = str("balancerHttpsUrl");
  const balancerUrl = httpsUrl ?? plainUrl;
  const sticky = str("stickyCookie");
  if (!balancerUrl || !sticky)
    throw new Error(`stack ${stackName} has no balancerUrl or stickyCookie output: is it up? (DRUPAL_CLUSTER_STACK=${stackName} npm run up)`);
  const webUrls = outputs.webUrls?.value as Record<string, string | undefined> | undefined;
  // Without them the checks that go through every web server would pass having checked none.
  if (!webUrls || typeof webUrls !== "object" || Object.keys(webUrls).length === 0)
    throw new Error(`stack ${stackName} has no webUrls output naming its web servers: is it up? (DRUPAL_CLUSTER_STACK=${stackName} npm run up)`);
  return {
    stack: stackName,
    balancerUrl,
    ...(httpsUrl ? { plainUrl } : {}),
    balancerManagerUrl: str("balancerManagerUrl"),
    proxyNodeManagerUrl: str("proxyNodeManagerUrl"),
    webUrls,
    ...parseStickyCookie(sticky),
    managerToken,
    virtualAddress: str("virtualAddress"),
    balancers: outputs.balancers?.value as VerifyTarget["balancers"],
  };
}

export async function readTarget(stackName: string, caFile?: string): Promise<VerifyTarget> {
  const stack = await selectStack(stackName);
  const outputs = await stack.outputs();
  // Not set: the checks that need it say so. Set but unreadable (a wrong passphrase): verify cannot do its job.
  const set = (await stack.getAllConfig())[`${PROJECT}:managerToken`];
  const token = set ? new Secret(set.value) : undefined;
  const target = targetFromOutputs(stackName, outputs, token);
  // A local stack's own CA (npm run up made it) is what its users trust, as curl --cacert would.
  const ca = caFile ?? path.join(localTlsDir(REPO_ROOT, stackName), "ca.crt");
  if (caFile !== undefined || fs.existsSync(ca)) target.ca = fs.readFileSync(ca, "utf8");
  return target;
}

function argValue(argv: string[], name: string): string | undefined {
  const i = argv.indexOf(name);
  if (i < 0) return undefined;
  if (!argv[i + 1]) throw new Error(`${name} needs a value`);
  return argv[i + 1];
}

function help(): string {
  const header = fs.readFileSync(__filename, "utf8").split("\n");
  return header
    .slice(1, header.indexOf(" */"))
    .map((l) => l.replace(/^ \*\s?/, ""))
    .join("\n");
}

async function main(argv: string[]): Promise<number> {
  if (argv.includes("--help") || argv.includes("-h")) {
    console.log(help());
    return 0;
  }
  const known = new Set(["--stack", "--outside", "--cacert"]);
  for (let i = 0; i < argv.length; i += 2) {
    if (!known.has(argv[i])) {
      console.error(`verify: unknown argument ${argv[i]}\n\n${help()}`);
      return 2;
    }
  }
  const stackName = argValue(argv, "--stack") ?? process.env.DRUPAL_CLUSTER_STACK ?? "dev";
  const outsideCommand = argValue(argv, "--outside");
  let target: VerifyTarget;
  try {
    target = await readTarget(stackName, argValue(argv, "--cacert"));
  } catch (e) {
    console.error(`verify: ${e instanceof Error ? e.message : String(e)}`);
    return 2;
  }
  console.log(`verify: stack ${stackName}, ${target.balancerUrl}${outsideCommand ? `, outside: ${outsideCommand}` : ""}`);
  const report = await runVerify({ target, outside: outsideCommand ? curlVantage(outsideCommand) : undefined }, (r) => console.log(formatResult(r)));
  const count = (v: string): number => report.results.filter((r) => r.verdict === v).length;
  console.log(`verify: ${count("PASS")} passed, ${count("FAIL")} failed, ${count("SKIP")} skipped in ${report.seconds.toFixed(1)} s`);
  return report.failed > 0 ? 1 : 0;
}

if (require.main === module) {
  main(process.argv.slice(2)).then(
    (code) => process.exit(code),
    (e) => {
      console.error(`verify: ${e instanceof Error ? e.message : String(e)}`);
      process.exit(2);
    },
  );
}
