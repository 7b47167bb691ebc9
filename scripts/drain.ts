/**
 * Takes one web server out of the balancer for maintenance, or puts it back.
 *
 *   npm run drain -- <web server> [--stack <stack>] [--timeout <seconds>]
 *   npm run undrain -- <web server> [--stack <stack>]
 *   (DRUPAL_CLUSTER_STACK=<stack> works too; default stack: dev)
 *
 * drain: the balancer sends it no new clients; clients pinned to it keep going
 * there until undrain. With --timeout, it is disabled once it got no request
 * for a few seconds or after that many seconds, whichever comes first, and the
 * command returns then: no request goes there any more (its pinned clients
 * move to another web server; their sessions are in the database).
 * undrain: back in rotation; the command waits (60 s at most) until the
 * balancer's own health check passes for it.
 *
 * Both engines, and a balancer pair (the first balancer carries it to the
 * second). It runs proxy-node's command line on the balancer: over SSH with the
 * stack's key and recorded host key (ssh target), or docker exec (docker target).
 * A rolling update by `up` leaves a member it did not take out as it is, and
 * so does a reload of the balancer's config; only a new balancer process (an
 * engine switch, a new listener address) starts from the config's statuses:
 * drain again after such an `up`.
 */
import { spawnSync } from "node:child_process";
import * as fs from "node:fs";
import { PROJECT } from "../infra/config/stack-file";
import { ClusterModel } from "../infra/model/types";
import { IDLE_SECONDS, PROXY_NODE_BIN, PROXY_NODE_CONFIG } from "../infra/payload/balancer";
import { shellQuote, execRemote } from "../infra/targets/ssh/remote-exec";
import { openStack, StackOptions } from "./stack";

export type DrainAction = "drain" | "undrain";

export interface DrainRequest {
  action: DrainAction;
  host: string;
  /** drain: disable after this many seconds (or once idle); absent: leave it draining. */
  timeoutS?: number;
}

/** proxy-node's command line for it, as run on the balancer. */
export function balancerCommand(model: ClusterModel, r: DrainRequest): string {
  const member = model.web.find((w) => w.host.name === r.host);
  if (!member) {
    throw new Error(`stack ${model.stack} has no web server ${r.host}; its web servers: ${model.web.map((w) => w.host.name).join(", ")}`);
  }
  const tail = `${shellQuote(member.route)} --config ${PROXY_NODE_CONFIG}`;
  if (r.action === "undrain") return `${PROXY_NODE_BIN} enable ${tail} --wait-healthy 60`;
  if (r.timeoutS === undefined) return `${PROXY_NODE_BIN} drain ${tail} --no-wait`;
  return `${PROXY_NODE_BIN} drain ${tail} --timeout ${r.timeoutS} --idle ${IDLE_SECONDS}`;
}

export async function drainMember(stackName: string, r: DrainRequest, opts: StackOptions = {}): Promise<string> {
  const { stack, model } = await openStack(stackName, { ...opts, skipPayloadCheck: true, existing: true });
  const command = balancerCommand(model, r);
  const b = model.balancer.host;
  if (model.target === "docker") {
    const container = `${model.project}-${model.stack}-${b.name}`;
    const res = spawnSync("docker", ["exec", container, "sh", "-c", command], { encoding: "utf8" });
    if (res.status !== 0)
      throw new Error(`${r.action} ${r.host} on ${container} failed (exit ${res.status}): ${(res.stderr || res.stdout || String(res.error)).trim()}`);
    return res.stdout.trim();
  }
  if (!b.ssh?.hostKey) throw new Error(`the balancer has no recorded host key (ssh.hostKey): set it in stack ${stackName}`);
  const privateKey = (await stack.getConfig(`${PROJECT}:sshPrivateKey`)).value;
  const res = await execRemote({ ...b.ssh, hostKey: b.ssh.hostKey, privateKey }, command);
  if (res.code !== 0) {
    throw new Error(
      `${r.action} ${r.host} on the balancer (${b.ssh.user}@${b.ssh.host}:${b.ssh.port}) failed (exit ${res.code}): ${(res.stderr || res.stdout).trim()}`,
    );
  }
  return res.stdout.trim();
}

const USAGE = "usage: npm run drain -- <web server> [--stack <stack>] [--timeout <seconds>]\n       npm run undrain -- <web server> [--stack <stack>]";

function parse(argv: string[]): { stack: string; request: DrainRequest } | string {
  const [action, ...rest] = argv;
  if (action !== "drain" && action !== "undrain") return USAGE;
  let host = "";
  let stack = process.env.DRUPAL_CLUSTER_STACK ?? "dev";
  let timeoutS: number | undefined;
  while (rest.length) {
    const a = rest.shift()!;
    if (a === "--stack") stack = rest.shift() ?? "";
    else if (a === "--timeout" && action === "drain") {
      const v = rest.shift();
      timeoutS = Number(v);
      if (!v || !Number.isInteger(timeoutS) || timeoutS < 0 || timeoutS > 86400) return `--timeout needs whole seconds from 0 to 86400, got ${v ?? "nothing"}`;
    } else if (!a.startsWith("-") && !host) host = a;
    else return `unknown argument ${a}\n${USAGE}`;
  }
  if (!host) return `which web server? ${USAGE}`;
  if (!stack) return `--stack needs a stack name\n${USAGE}`;
  return { stack, request: { action, host, timeoutS } };
}

if (require.main === module) {
  const argv = process.argv.slice(2);
  if (argv.includes("--help") || argv.includes("-h")) {
    const src = fs.readFileSync(__filename, "utf8");
    console.log(src.slice(src.indexOf("/**") + 4, src.indexOf(" */")).replace(/^ \* ?/gm, ""));
    process.exit(0);
  }
  const p = parse(argv);
  if (typeof p === "string") {
    console.error(p);
    process.exit(2);
  }
  drainMember(p.stack, p.request).then(
    (out) => console.log(out),
    (e: Error) => {
      console.error(`error: ${e.message}`);
      process.exit(1);
    },
  );
}
