/**
 * Delivery checks on a running test cluster (issue 9): drift found and
 * repaired, a host with another key refused, and the stack changed and
 * destroyed from a second clone of the repository in another folder.
 */
import * as assert from "node:assert/strict";
import { execFileSync, spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { REPO_ROOT } from "../../infra/config/stack-file";
import { allHosts } from "../../infra/model/types";
import { containerName } from "../../scripts/local-hosts";
import { DriftReport } from "../../scripts/drift-report";
import { upWithSummary } from "../../scripts/stack";
import { onHost, RunningCluster, Variant, variantOverrides } from "../support/local-cluster";
import { pinnedClientReaches } from "./checks";

/** sshd rereads its keys on SIGHUP: it is PID 1 of a plain local host, a unit under systemd. */
const RELOAD_SSHD = "if [ -d /run/systemd/system ]; then systemctl reload ssh; else kill -HUP 1; fi";

/** Gives a host a new ed25519 key, as an impostor at its address would have. */
export function replaceHostKey(c: RunningCluster, host: string): void {
  const r = onHost(c.model, host, `rm -f /etc/ssh/ssh_host_ed25519_key*; ssh-keygen -q -t ed25519 -N '' -f /etc/ssh/ssh_host_ed25519_key && ${RELOAD_SSHD}`);
  assert.equal(r.code, 0, r.out);
}

/** Puts the host's own key (the one its stack recorded) back. */
export function restoreHostKey(c: RunningCluster, v: Variant, host: string): void {
  const key = fs.readFileSync(path.join(REPO_ROOT, ".secrets", `${v.stack}-host-keys`, host), "utf8");
  const r = spawnSync(
    "docker",
    [
      "exec",
      "-i",
      containerName(c.model, hostModel(c, host)),
      "sh",
      "-c",
      `umask 077; cat >/etc/ssh/ssh_host_ed25519_key; ssh-keygen -y -f /etc/ssh/ssh_host_ed25519_key >/etc/ssh/ssh_host_ed25519_key.pub; ${RELOAD_SSHD}`,
    ],
    { input: key, encoding: "utf8" },
  );
  assert.equal(r.status, 0, r.stderr);
}

function hostModel(c: RunningCluster, name: string) {
  const h = allHosts(c.model).find((x) => x.name === name);
  if (!h) throw new Error(`no host ${name}`);
  return h;
}

/** Breaks three things the way they break on real hosts, then runs up and returns what its refresh reported. */
export async function driftAndRepair(c: RunningCluster, v: Variant, log: (s: string) => void): Promise<string[]> {
  // A host made again from nothing (same address and identity, nothing of ours on it).
  execFileSync("docker", ["rm", "-f", containerName(c.model, hostModel(c, "lb2"))]);
  // A rendered file deleted by hand, and a service stopped.
  assert.equal(onHost(c.model, "lb1", "rm /etc/apache2/sites-available/drupal-cluster-web.conf").code, 0);
  assert.equal(onHost(c.model, "lb1", "service apache2 stop").code, 0);
  const drift = new DriftReport();
  await upWithSummary(v.stack, { baseStack: "dev", overrides: variantOverrides(v), onOutput: log, onEvent: drift.onEvent, skipPayloadCheck: true });
  return drift.found;
}

/**
 * A second clone of this repository in another folder, sharing the backend,
 * the passphrase and the stack's config (as a team shares them), runs `fn`'s
 * script there. Nothing of the first checkout is reachable from it: its own
 * node_modules, its own plugin build and install.
 */
export function inSecondClone(v: Variant, script: string, log: (s: string) => void): void {
  const clone = fs.mkdtempSync(path.join(os.tmpdir(), "drupal-cluster-clone-"));
  try {
    execFileSync("git", ["clone", "-q", REPO_ROOT, clone]);
    // What a teammate has besides the repository: the stack's config (secrets
    // encrypted), the stack's SSH key and host keys, and the shared passphrase.
    fs.cpSync(path.join(REPO_ROOT, ".pulumi-work", v.stack), path.join(clone, ".pulumi-work", v.stack), { recursive: true });
    for (const f of fs.readdirSync(path.join(REPO_ROOT, ".secrets")).filter((n) => n.startsWith(v.stack))) {
      fs.cpSync(path.join(REPO_ROOT, ".secrets", f), path.join(clone, ".secrets", f), { recursive: true });
    }
    const env = {
      ...process.env,
      PULUMI_BACKEND_URL: `file://${path.join(REPO_ROOT, ".pulumi-state")}`,
      PULUMI_CONFIG_PASSPHRASE_FILE: path.join(REPO_ROOT, ".secrets", "passphrase"),
    };
    const run = (cmd: string, args: string[]): void => {
      const r = spawnSync(cmd, args, { cwd: clone, env, encoding: "utf8", maxBuffer: 64 * 1024 * 1024 });
      log(`${r.stdout}${r.stderr}`);
      assert.equal(r.status, 0, `${cmd} ${args.join(" ")} in the second clone failed:\n${`${r.stdout}${r.stderr}`.slice(-3000)}`);
    };
    run("npm", ["ci", "--prefer-offline", "--no-audit", "--no-fund"]);
    run("scripts/bootstrap", []);
    run("npx", ["ts-node", "-e", script]);
  } finally {
    fs.rmSync(clone, { recursive: true, force: true });
  }
}

/**
 * Hosts with systemd as init (issue 13): every service the payload starts is
 * enabled; one disabled by hand is found by the next up and enabled again; and
 * after the whole cluster reboots (each container restarted: systemd boots, our
 * scripts do not run) the balancer serves every web server's pinned clients again.
 */
export async function rebootWithSystemd(c: RunningCluster, v: Variant, log: (s: string) => void): Promise<{ found: string[]; backAfterS: number }> {
  const units: Array<[string, string]> = [
    [c.model.data.host.name, "mariadb"],
    [c.model.balancer.host.name, "apache2"],
    [c.model.balancer.host.name, "proxy-node"],
    ...c.model.web.map((w): [string, string] => [w.host.name, "apache2"]),
  ];
  const enabled = (host: string, unit: string): boolean => onHost(c.model, host, `systemctl is-enabled --quiet ${unit}`).code === 0;
  for (const [host, unit] of units) assert.ok(enabled(host, unit), `${unit} is not enabled on ${host}`);
  const lb2 = c.model.web[1].host.name;
  const balancer = c.model.balancer.host.name;
  assert.equal(onHost(c.model, lb2, "systemctl disable --quiet apache2").code, 0);
  assert.equal(onHost(c.model, balancer, "systemctl disable --quiet proxy-node").code, 0);
  const drift = new DriftReport();
  await upWithSummary(v.stack, { baseStack: "dev", overrides: variantOverrides(v), onOutput: log, onEvent: drift.onEvent, skipPayloadCheck: true });
  assert.ok(enabled(lb2, "apache2"), `the up did not enable apache2 on ${lb2} again: ${drift.found.join("; ")}`);
  assert.ok(enabled(balancer, "proxy-node"), `the up did not enable proxy-node on ${balancer} again: ${drift.found.join("; ")}`);

  const hosts = allHosts(c.model);
  const t0 = Date.now();
  execFileSync("docker", ["restart", "--time", "20", ...hosts.map((h) => containerName(c.model, h))], { stdio: ["ignore", "ignore", "pipe"] });
  const pending = new Set(c.model.web.map((w) => w.route));
  while (pending.size > 0 && Date.now() - t0 < 120_000) {
    for (const w of c.model.web) if (pending.has(w.route) && (await pinnedClientReaches(c, w.route)) === w.host.name) pending.delete(w.route);
    if (pending.size > 0) await new Promise((r) => setTimeout(r, 500));
  }
  assert.deepEqual([...pending], [], `after a reboot of every host, pinned clients of these routes were not served by their web server within 120 s`);
  const backAfterS = (Date.now() - t0) / 1000;
  for (const [host, unit] of units) assert.equal(onHost(c.model, host, `systemctl is-active ${unit}`).out, "active", `${unit} on ${host} after the reboot`);
  return { found: drift.found, backAfterS };
}
