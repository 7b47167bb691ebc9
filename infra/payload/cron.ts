/**
 * Drupal's cron, once per period for the whole cluster (issue 11).
 *
 * The balancer calls the cron URL through its own listener with the stack's
 * secret cronKey, so whichever web server the balancer finds healthy runs it:
 * one run per period however many web servers there are, and no run lost while
 * one of them is gone. The balancer is the one host there is exactly one of, and
 * what picks a live member is already there (Apache's failover and proxy-node's
 * health checks). Running cron on every web server would run it N times a period,
 * and electing one of them would lose cron with it.
 *
 * One definition, two ways of running it: drupal-cluster-cron (a script on the
 * balancer) holds the period and the run; systemd hosts run it from a .timer and
 * .service pair, enabled so it comes back after a reboot; hosts without systemd
 * (the local containers, the docker target) get a loop the same script runs and
 * supervises, started like every other service (and at boot from boot.d).
 */
import { ClusterModel } from "../model/types";
import { commentText } from "./escape";
import { baseView, file, setting, sh, step, template } from "./common";
import { HostPayload, PayloadSecrets, ServiceSpec } from "./types";

export const CRON_SERVICE = "drupal-cluster-cron";
export const CRON_SCRIPT = "/usr/local/sbin/drupal-cluster-cron";
export const CRON_UNIT = "/etc/systemd/system/drupal-cluster-cron.service";
export const CRON_TIMER = "/etc/systemd/system/drupal-cluster-cron.timer";
/** On the balancer: the URL, Host and key the run sends, as curl reads them (root only). */
export const CRON_CURL_CONFIG = "/etc/drupal-cluster/cron.curl";
/** On the web servers: the key the probe checks, and Drupal's is set from (www-data reads it). */
export const CRON_KEY_FILE = "/etc/drupal-cluster/cron-key";
export const PROBE_CRON_PAGE = "/var/www/probe/cron.php";
/** The probe takes the key in this header; Drupal takes it in the URL (/cron/<key>). */
export const CRON_KEY_HEADER = "X-Drupal-Cluster-Cron-Key";
export const DRUPAL_CRON_KEY_SCRIPT = "/usr/local/sbin/drupal-cluster-cron-key";
const DRUPAL_HOME = "/var/www/drupal";

/**
 * Adds what cron needs to one host's payload: the timer or loop on the balancer,
 * the endpoint's key (and the probe's endpoint, or Drupal's key step) on the web
 * servers. Applied before the boot scripts are made, so the loop has one too.
 */
export function withCron(model: ClusterModel, secrets: PayloadSecrets, p: HostPayload): HostPayload {
  if (p.host.role === "balancer") return balancerCron(model, secrets, p);
  if (p.host.role === "web") return webCron(model, secrets, p);
  return p;
}

/** The run's URL path: the probe's endpoint, or Drupal's own cron route with the key in it. */
export function cronPath(model: ClusterModel, key: string): string {
  return model.app.kind === "probe" ? "/cron.php" : `/cron/${encodeURIComponent(key)}`;
}

/** A run waits at most this long: a connect deadline per web server, then the answer timeout. */
export function cronMaxTime(model: ClusterModel): number {
  const b = model.balancer;
  return b.connectTimeout * model.web.length + b.timeout + 5;
}

function balancerCron(model: ClusterModel, secrets: PayloadSecrets, p: HostPayload): HostPayload {
  const base = baseView(model, p.host);
  const period = model.cron.periodSeconds;
  const curlConfig = file(CRON_CURL_CONFIG, curlConfigText(model, secrets.cronKey), { mode: "0600", secret: true });
  const script = template(
    CRON_SCRIPT,
    "balancer/cron/drupal-cluster-cron.sh.hbs",
    {
      ...base,
      periodSeconds: period,
      curlConfig: CRON_CURL_CONFIG,
      maxTimeSeconds: cronMaxTime(model),
      virtualAddress: model.balancer.redundancy ? setting(model, "balancer.redundancy.virtualAddress", model.balancer.redundancy.virtualAddress) : "",
    },
    { mode: "0755" },
  );
  const unit = template(CRON_UNIT, "balancer/cron/drupal-cluster-cron.service.hbs", { ...base, runCommand: sh`${CRON_SCRIPT} run` });
  const timer = template(CRON_TIMER, "balancer/cron/drupal-cluster-cron.timer.hbs", { ...base, periodSeconds: period });
  const service: ServiceSpec = {
    name: CRON_SERVICE,
    start: sh`${CRON_SCRIPT} start`,
    // A new period restarts the timer or the loop; a new key or URL does not need
    // to: each run reads the curl config afresh.
    reload: sh`${CRON_SCRIPT} restart`,
    stop: sh`${CRON_SCRIPT} stop` + " || true",
    status: sh`${CRON_SCRIPT} status`,
    watch: [script.path, unit.path, timer.path],
  };
  return {
    ...p,
    packages: [...p.packages, ...["curl", "iproute2"].filter((x) => !p.packages.includes(x))],
    files: [...p.files, curlConfig, script, unit, timer],
    // Last: it calls through the balancer's listener, which the services before it serve.
    services: [...p.services, service],
  };
}

/**
 * curl's config file (`--config`): one option a line, values in double quotes,
 * where `\` and `"` are escaped. The run POSTs to the balancer's own listener on
 * loopback, with the public name as Host, so Drupal's trusted host patterns accept it.
 */
function curlConfigText(model: ClusterModel, key: string): string {
  const url = `http://127.0.0.1:${model.balancer.httpPort}${cronPath(model, key)}`;
  const lines = [
    `# Managed by drupal-cluster (${commentText(`${model.project}/${model.stack}`)}): what ${CRON_SCRIPT} sends; it holds the cron key, so root only.`,
    `url = ${curlQuoted(url)}`,
    `header = ${curlQuoted(`Host: ${setting(model, "serverName", model.serverName)}`)}`,
  ];
  if (model.app.kind === "probe") lines.push(`header = ${curlQuoted(`${CRON_KEY_HEADER}: ${key}`)}`);
  return `${lines.join("\n")}\n`;
}

function curlQuoted(value: string): string {
  // A line break would end the option; the settings and the key's rule allow none.
  if (/[\u0000-\u001f\u007f]/.test(value)) throw new Error("a control character cannot be written into curl's config");
  return `"${value.replace(/\\/g, "\\\\").replace(/"/g, '\\"')}"`;
}

function webCron(model: ClusterModel, secrets: PayloadSecrets, p: HostPayload): HostPayload {
  const base = baseView(model, p.host);
  const keyFile = file(CRON_KEY_FILE, `${secrets.cronKey}\n`, { mode: "0640", owner: "root:www-data", secret: true });
  if (model.app.kind === "probe") {
    const page = template(PROBE_CRON_PAGE, "web/probe/cron.php.hbs", {
      ...base,
      keyFile: CRON_KEY_FILE,
      // How PHP names the header in $_SERVER.
      keyHeaderVar: `HTTP_${CRON_KEY_HEADER.toUpperCase().replace(/-/g, "_")}`,
    });
    return { ...p, files: [...p.files, keyFile, page] };
  }
  // Drupal checks /cron/<key> against its state system.cron_key, which lives in the
  // database: set from the key file with drush once the site is installed.
  const script = template(DRUPAL_CRON_KEY_SCRIPT, "web/drupal/cron-key.sh.hbs", { ...base, keyFile: CRON_KEY_FILE, drupalHome: DRUPAL_HOME }, { mode: "0755" });
  // A configure step: drush needs the database, not Apache, so the web server's
  // last step stays its Apache service, which the balancer waits for.
  return { ...p, files: [...p.files, keyFile, script], configure: [...p.configure, step("drupal-cron-key", DRUPAL_CRON_KEY_SCRIPT, [keyFile, script])] };
}
