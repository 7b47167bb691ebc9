/**
 * The three shell steps that bracket a web server's change in a rolling update
 * (infra/components/rollout.ts delivers them): drain it in the balancer, then,
 * once its own files, steps and services are applied, its health gate (on the
 * web server) and its return to rotation (on the balancer).
 *
 * The balancer's side goes through proxy-node's command line, which works for
 * both engines (engine apache: the agent's manager writes Apache's flags) and
 * carries the change to a pair's second balancer. A marker file on the balancer
 * says "a rollout took this member out": only such a member is put back, so a
 * member an operator drained (npm run drain) stays drained through an `up`, and
 * a member a failed rollout left out is put back by the next good `up` even when
 * its payload is the same again (the marker's absence is the enable step's check).
 */
import { ClusterModel, WebMember } from "../model/types";
import { IDLE_SECONDS, PROXY_NODE_BIN, PROXY_NODE_CONFIG } from "./balancer";
import { setting, sh } from "./common";

export const ROLLOUT_MARKER_DIR = "/var/lib/drupal-cluster/rollout";

export interface RolloutScripts {
  /** On the balancer: draining, then disabled once idle or after drainSeconds. */
  drain: string;
  /** On the web server: its health check answers 200 within gateSeconds, or the rollout stops here. */
  gate: string;
  /** On the balancer: enabled again, and healthy in the balancer's own view, within gateSeconds. */
  enable: string;
  /** Exits 0 while no rollout holds the member out of rotation. */
  enableCheck: string;
  /**
   * The step's own removal (rollout parallel, or the web server removed): a
   * member a rollout left out is put back (nothing else would), then the marker goes.
   */
  forget: string;
}

export function healthPath(model: ClusterModel): string {
  return model.app.kind === "probe" ? "/health.php" : "/user/login";
}

export function rolloutScripts(model: ClusterModel, member: WebMember): RolloutScripts {
  const i = model.web.indexOf(member);
  const route = setting(model, `web[${i}].route`, member.route);
  const name = member.host.name;
  const r = model.rollout;
  const marker = `${ROLLOUT_MARKER_DIR}/${member.route}`;
  const pn = sh`${PROXY_NODE_BIN}`;
  const cfg = sh`--config ${PROXY_NODE_CONFIG}`;
  const say = (line: string): string => sh`echo ${`rollout ${name}: ${line}`}`;
  const noBalancer = `if [ ! -x ${pn} ] || [ ! -f ${sh`${PROXY_NODE_CONFIG}`} ]; then ${say("no balancer serving yet: nothing to drain")}; exit 0; fi`;

  const drain = [
    "set -o pipefail",
    noBalancer,
    // Exit 3: the running balancer has no such member yet (added by this up, after the web servers).
    `st=$(${pn} status ${sh`${route}`} ${cfg}) || { rc=$?; if [ $rc = 3 ]; then ${say("not a member of the balancer yet: nothing to drain")}; exit 0; fi; exit $rc; }`,
    `if [ -e ${sh`${marker}`} ]; then`,
    // An earlier rollout took it out; if its drain did not get to the end, this one drains again.
    `  case "$st" in ${sh`${`${member.route} disabled `}`}*) ${say("already out of rotation (an earlier rollout took it out)")}; exit 0;; esac`,
    "else",
    `  case "$st" in ${sh`${`${member.route} enabled `}`}*) ;; *) ${sh`echo ${`rollout ${name}: the balancer has it as`}`} "\${st#* }", ${sh`${"an operator's choice: not drained, and left so"}`}; exit 0;; esac`,
    "fi",
    sh`mkdir -p ${ROLLOUT_MARKER_DIR} && : > ${marker}`,
    // --keep-one: exit 4 when no other web server takes new clients (one web server, or the others out):
    // draining it would leave clients nothing, so it is changed while it serves.
    "rc=0",
    `${pn} drain ${sh`${route}`} ${cfg} --timeout ${r.drainSeconds} --idle ${IDLE_SECONDS} --keep-one | sed ${sh`${`s/^/rollout ${name}: /`}`} || rc=$?`,
    `if [ $rc = 4 ]; then ${say("changed while it serves: no other web server takes new clients")}; exit 0; fi`,
    "exit $rc",
  ].join("\n");

  const url = `http://127.0.0.1${healthPath(model)}`;
  const gate = [
    `deadline=$(( $(date +%s) + ${r.gateSeconds} ))`,
    "while :; do",
    // The connect deadline is the balancer's own: what its health checks allow.
    `  code=$(curl -s -o /dev/null -w '%{http_code}' --max-time ${model.balancer.connectTimeout} -H ${sh`${`Host: ${model.serverName}`}`} ${sh`${url}`}) || true`,
    `  if [ "$code" = 200 ]; then ${say(`health gate passed (GET ${healthPath(model)} answered 200)`)}; exit 0; fi`,
    `  if [ "$(date +%s)" -ge "$deadline" ]; then`,
    `    echo ${sh`${`${name}: health gate failed: GET ${url} on ${name} answered`}`} "$( [ "\${code:-000}" = 000 ] && echo "nothing (no connection or no answer within ${model.balancer.connectTimeout} s)" || echo "$code")" ${sh`${`instead of 200 for ${r.gateSeconds} s (rollout.gateSeconds). ${name} stays out of rotation and the rollout stops here; the web servers after it were not changed. Fix the cause and run up again.`}`} >&2`,
    "    exit 1",
    "  fi",
    "  sleep 1",
    "done",
  ].join("\n");

  const enable = [
    "set -o pipefail",
    `if [ ! -e ${sh`${marker}`} ]; then ${say("in rotation as the balancer has it (no rollout took it out)")}; exit 0; fi`,
    `${pn} enable ${sh`${route}`} ${cfg} --wait-healthy ${r.gateSeconds} | sed ${sh`${`s/^/rollout ${name}: /`}`}`,
    sh`rm -f ${marker}`,
    say("back in rotation"),
  ].join("\n");

  const forget = [
    `if [ -e ${sh`${marker}`} ] && [ -x ${pn} ] && [ -f ${sh`${PROXY_NODE_CONFIG}`} ]; then`,
    // Exit 3: the balancer no longer has it (the web server was removed): nothing to put back.
    `  rc=0; ${pn} enable ${sh`${route}`} ${cfg} >/dev/null 2>&1 || rc=$?`,
    `  if [ $rc != 0 ] && [ $rc != 3 ]; then ${sh`echo ${`rollout ${name}: could not put it back in rotation (proxy-node enable exited`}`} "$rc); run: npm run undrain -- ${name} --stack ${model.stack}" >&2; fi`,
    "fi",
    sh`rm -f ${marker}`,
  ].join("\n");

  return { drain, gate, enable, enableCheck: `[ ! -e ${sh`${marker}`} ]`, forget };
}
