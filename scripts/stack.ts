/**
 * Drives a stack through the Pulumi Automation API: the CLI built by
 * scripts/bootstrap, a local file state backend, and this repository's program
 * run in-process (no nodejs language host needed).
 *
 *   ts-node scripts/stack.ts up [--stack dev] [--no-refresh]
 *                                                  local hosts (if the stack has them), then pulumi up;
 *                                                  first reads the hosts back and repairs what drifted
 *   ts-node scripts/stack.ts preview [--stack dev]  what up would change
 *   ts-node scripts/stack.ts down [--stack dev]     pulumi destroy, then remove the local hosts
 *   ts-node scripts/stack.ts outputs [--stack dev]  the stack's URLs
 *   ts-node scripts/stack.ts migrate [--stack dev]  move a stack made with the former dynamic resources to the
 *                                                  provider plugin, without touching the hosts' files
 *   ts-node scripts/stack.ts cleanup [--stack s]    remove the local hosts and the state of one stack, or of every
 *                                                  stack that left hosts on this machine (by label)
 *
 * Before up and preview the rendered payload goes through the real validators
 * (apache2ctl, php, sh, mariadb in the validator container); --skip-payload-check
 * (or DRUPAL_CLUSTER_SKIP_PAYLOAD_CHECK=1) skips it.
 */
import { spawn } from "node:child_process";
import * as crypto from "node:crypto";
import * as fs from "node:fs";
import * as path from "node:path";
import { EngineEvent, LocalWorkspace, OutputMap, Stack, UpResult } from "@pulumi/pulumi/automation";
import { parse, stringify } from "yaml";
import { clusterProgram } from "../infra/program";
import { modelFromStackFile, PROJECT, readStackFile, REPO_ROOT } from "../infra/config/stack-file";
import { allHosts, ClusterModel } from "../infra/model/types";
import { buildPayloads } from "../infra/payload/index";
import { hostsUp, labelledStacks, localHostKeys, removeByLabel, removeLeftHosts, stackKey, startStoppedHosts } from "./local-hosts";
import { checkPayloads } from "./validate-payload";
import { localTls, localTlsDir } from "./local-tls";
import { TOOLS_BIN } from "./toolchain";
import { RolloutProgress } from "./rollout-progress";
import { DriftReport } from "./drift-report";
import { markSteps, migrateDeployment } from "./migrate-state";
import { PROVIDER_PACKAGE, PROVIDER_VERSION } from "../infra/targets/ssh/plugin";
import { engineEnv } from "./engine-env";
import { secretAdvice } from "../infra/config/advice";

export interface StackOptions {
  /** Settings that replace the stack file's (tests use them for variants). */
  overrides?: Record<string, unknown>;
  /** Start from Pulumi.<baseStack>.yaml instead of the stack's own file. */
  baseStack?: string;
  /** Streams the engine's output (default: to stdout). */
  onOutput?: (line: string) => void;
  /** Structured engine events (tests read which resources changed). */
  onEvent?: (e: EngineEvent) => void;
  /**
   * `up` first reads every file, step and service back from the hosts (default
   * true), so a rebuilt host, an edited or deleted file or a stopped service is
   * found and repaired in the same run.
   */
  refresh?: boolean;
  /** Skips the validators' check of the rendered payload before up and preview. */
  skipPayloadCheck?: boolean;
  /**
   * proxy-node's bin to deliver instead of the built one (proxy-node/dist):
   * tests deliver a changed build with it, as a new release would be.
   */
  proxyNodeArtifact?: string;
  /**
   * Only a stack that has state already (backup, restore): a mistyped name
   * stops with an error instead of creating an empty stack of that name.
   */
  existing?: boolean;
}

/**
 * The whole rendered payload through apache2ctl, php, sh and mariadb before the
 * first resource (or local host) is created. Secrets are placeholders here: their
 * escaping is covered by the template tests, and their values stay out of any file.
 * A failure stops the run; a check that cannot run (no docker) says why and goes on.
 */
export function checkPayloadBeforeChange(model: ClusterModel, opts: StackOptions = {}): void {
  const say = (line: string): void => (opts.onOutput ? opts.onOutput(`${line}\n`) : console.log(line));
  if (opts.skipPayloadCheck || process.env.DRUPAL_CLUSTER_SKIP_PAYLOAD_CHECK === "1") {
    say("payload check skipped (--skip-payload-check)");
    return;
  }
  const placeholders = { dbPassword: "(secret)", hashSalt: "(secret)", managerToken: "(secret)", cronKey: "(secret)", tlsPrivateKey: "(secret)" };
  // proxy-node's bin is not among the checked files, so a stand-in does for it.
  const payloads = buildPayloads(model, placeholders, "(proxy-node's bin: checked by its own build)");
  const result = checkPayloads(model, payloads, say);
  say(result.summary);
  if (!result.ok) {
    const details = result.failures
      .map(
        (f) =>
          `--- ${f.label}\n${f.output
            .split("\n")
            .filter((l) => !/^### ok$/.test(l))
            .slice(-40)
            .join("\n")}`,
      )
      .join("\n");
    throw new Error(`${result.summary}; nothing was created\n${details}`);
  }
}

const WORK_ROOT = path.join(REPO_ROOT, ".pulumi-work");

/**
 * The stack file the engine sees lives in .pulumi-work/, so secrets generated for
 * a dev stack on this machine never end up in the committed Pulumi.<stack>.yaml.
 * Settings come from the committed file (plus overrides) on every run.
 */
function writeWorkStackFile(stack: string, fileStack: string, workDir: string, overrides: Record<string, unknown>): void {
  fs.mkdirSync(workDir, { recursive: true });
  const repoFile = path.join(REPO_ROOT, `Pulumi.${fileStack}.yaml`);
  const repoDoc = (parse(fs.readFileSync(repoFile, "utf8")) ?? {}) as { config?: Record<string, unknown>; encryptionsalt?: string };
  const workFile = path.join(workDir, `Pulumi.${stack}.yaml`);
  const workDoc = fs.existsSync(workFile) ? ((parse(fs.readFileSync(workFile, "utf8")) ?? {}) as typeof repoDoc) : {};
  const config: Record<string, unknown> = {};
  const salt = repoDoc.encryptionsalt ?? workDoc.encryptionsalt;
  // Secrets made here before stay, unless the committed file brings its own salt.
  if (!repoDoc.encryptionsalt || repoDoc.encryptionsalt === workDoc.encryptionsalt) {
    for (const [k, v] of Object.entries(workDoc.config ?? {})) if (v && typeof v === "object" && "secure" in v) config[k] = v;
  }
  Object.assign(config, repoDoc.config ?? {});
  for (const [k, v] of Object.entries(overrides)) config[`${PROJECT}:${k}`] = v;
  fs.writeFileSync(workFile, stringify({ ...(salt ? { encryptionsalt: salt } : {}), config }));
}

export async function openStack(stackName: string, opts: StackOptions = {}): Promise<{ stack: Stack; model: ClusterModel }> {
  process.env.PATH = `${TOOLS_BIN}:${process.env.PATH}`;
  // Validate before anything is created: a bad setting stops here with its key.
  const fileStack = opts.baseStack ?? stackName;
  let overrides = withLocalCertificate(stackName, fileStack, opts.overrides ?? {});
  let model = modelFromStackFile(stackName, overrides, fileStack);
  if (model.localHosts) {
    // Local hosts get host keys made here; the engine checks them like any host's.
    overrides = {
      ...overrides,
      localHostKeys: localHostKeys(
        REPO_ROOT,
        stackName,
        allHosts(model).map((h) => h.name),
      ),
    };
    model = modelFromStackFile(stackName, overrides, fileStack);
  }
  const workDir = path.join(WORK_ROOT, stackName);
  writeWorkStackFile(stackName, fileStack, workDir, overrides);
  const args = { projectName: PROJECT, stackName, program: async () => clusterProgram(opts.proxyNodeArtifact) };
  const wsOpts = { workDir, envVars: engineEnv(), projectSettings: { name: PROJECT, runtime: "nodejs" as const, description: "drupal-cluster" } };
  const stack = opts.existing
    ? await LocalWorkspace.selectStack(args, wsOpts).catch(() => {
        throw new Error(`stack ${stackName} has no state in this backend: bring it up first (DRUPAL_CLUSTER_STACK=${stackName} npm run up)`);
      })
    : await LocalWorkspace.createOrSelectStack(args, wsOpts);
  await ensureSecrets(stack, model);
  return { stack, model };
}

/**
 * Sets one secret with the pulumi CLI reading the value from its stdin (`--raw`
 * keeps it byte for byte). The Automation API's setConfig and setAllConfig put
 * the value on the CLI's command line, where every user of the machine can read
 * it in `ps` or /proc/<pid>/cmdline.
 */
export async function setSecretConfig(stack: Stack, key: string, value: string): Promise<void> {
  const ws = stack.workspace as LocalWorkspace;
  const command = ws.pulumiCommand.command;
  // The same environment the Automation API gives the CLI.
  const env: NodeJS.ProcessEnv = { ...process.env, ...ws.envVars, PULUMI_AUTOMATION_API: "true" };
  if (ws.pulumiHome) env.PULUMI_HOME = ws.pulumiHome;
  if (path.isAbsolute(command)) env.PATH = `${path.dirname(command)}:${env.PATH ?? ""}`;
  const args = ["config", "set", "--stack", stack.name, "--secret", "--raw", "--non-interactive", "--", key];
  await new Promise<void>((resolve, reject) => {
    const child = spawn(command, args, { cwd: ws.workDir, env, stdio: ["pipe", "ignore", "pipe"] });
    let stderr = "";
    child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
    child.on("error", reject);
    child.on("close", (code) =>
      code === 0 ? resolve() : reject(new Error(`pulumi config set ${key} (value on stdin) failed with exit ${code}: ${stderr.trim()}`)),
    );
    child.stdin.on("error", reject);
    child.stdin.end(value);
  });
}

/**
 * A local stack that asks for HTTPS (balancer.tls) without a certificate gets
 * one from this machine's local CA for its serverName (scripts/local-tls.ts);
 * ensureSecrets sets the matching key. Other stacks bring their own.
 */
function withLocalCertificate(stackName: string, fileStack: string, overrides: Record<string, unknown>): Record<string, unknown> {
  const raw = { ...readStackFile(fileStack), ...overrides };
  const balancer = raw.balancer as Record<string, unknown> | undefined;
  const tls = balancer?.tls as Record<string, unknown> | undefined;
  if (!raw.localHosts || !balancer || !tls || typeof tls !== "object" || tls.certificate !== undefined) return overrides;
  const serverName = typeof raw.serverName === "string" ? raw.serverName : "localhost";
  const { certificate } = localTls(REPO_ROOT, stackName, serverName);
  return { ...overrides, balancer: { ...balancer, tls: { ...tls, certificate } } };
}

/** Generates the secrets a local stack needs, once; other stacks must set theirs. */
export async function ensureSecrets(stack: Stack, model: ClusterModel, keyRoot = REPO_ROOT): Promise<void> {
  const have = await stack.getAllConfig();
  const missing = (k: string): boolean => !(`${PROJECT}:${k}` in have);
  const local = model.localHosts !== undefined;
  for (const k of ["dbPassword", "hashSalt", "managerToken", "cronKey"]) {
    if (!missing(k)) continue;
    if (!local) {
      throw new Error(
        `config ${PROJECT}:${k}: secret is missing for stack ${model.stack}; set it (the value goes on stdin: on the command line it would show in ps) with\n` +
          `  ${secretAdvice(model.stack, k)}`,
      );
    }
    await setSecretConfig(stack, `${PROJECT}:${k}`, crypto.randomBytes(k === "hashSalt" ? 48 : 24).toString("base64url"));
  }
  if (model.target === "ssh" && !local && missing("sshPrivateKey")) {
    throw new Error(
      `config ${PROJECT}:sshPrivateKey: secret is missing for stack ${model.stack}; set it (the key stays encrypted in the stack's config) with\n  ${secretAdvice(model.stack, "sshPrivateKey")}`,
    );
  }
  if (model.target === "ssh" && local && missing("sshPrivateKey")) {
    await setSecretConfig(stack, `${PROJECT}:sshPrivateKey`, stackKey(keyRoot, model.stack).privateKey);
  }
  // The key of the certificate made here (withLocalCertificate), set again whenever that certificate was made again.
  const tls = model.balancer.tls;
  if (local && tls && fs.existsSync(localTlsDir(keyRoot, model.stack))) {
    const made = localTls(keyRoot, model.stack, model.serverName);
    if (made.certificate === tls.certificate && have[`${PROJECT}:tlsPrivateKey`]?.value !== made.privateKey) {
      await setSecretConfig(stack, `${PROJECT}:tlsPrivateKey`, made.privateKey);
    }
  }
}

/** What `up` and `outputs` print: where everything is. */
export function summaryLines(outputs: OutputMap, stackName: string): string[] {
  const v = (k: string): unknown => outputs[k]?.value;
  const lines = ["", "The cluster:", `  through the balancer   ${v("balancerUrl") ?? "(no published URL)"}`];
  const https = v("balancerHttpsUrl");
  if (typeof https === "string") {
    lines.push(`  over HTTPS             ${https}`);
    const ca = path.relative(process.cwd(), path.join(localTlsDir(REPO_ROOT, stackName), "ca.crt"));
    // Relative to where npm run starts (the checkout): the command works as printed.
    if (fs.existsSync(ca)) lines.push(`  local CA               ${ca}  (curl --cacert ${ca} ${https}/)`);
  }
  lines.push(`  balancer-manager       ${v("balancerManagerUrl") ?? "-"}`);
  lines.push(`  proxy-node manager     ${v("proxyNodeManagerUrl") ?? "-"}`);
  const pair = v("balancers") as Record<string, { address: string; balancerManagerUrl?: string; proxyNodeManagerUrl?: string }> | undefined;
  if (pair) {
    lines.push(`  virtual address        ${v("virtualAddress")} (keepalived moves it between the balancers)`);
    for (const [name, b] of Object.entries(pair)) {
      lines.push(`  ${name.padEnd(22)} ${b.address}: manager ${b.balancerManagerUrl ?? "-"}, proxy-node manager ${b.proxyNodeManagerUrl ?? "-"}`);
    }
  }
  for (const [name, url] of Object.entries((v("webUrls") as Record<string, string>) ?? {})) lines.push(`  ${name.padEnd(22)} ${url ?? "(not published)"}`);
  lines.push(`  data server            ${v("dataAddress")}`);
  lines.push(`  sticky cookie          ${v("stickyCookie")}`);
  return lines;
}

function print(outputs: OutputMap, stackName: string): void {
  console.log(summaryLines(outputs, stackName).join("\n"));
}

export async function upWithSummary(stackName: string, opts: StackOptions = {}): Promise<UpResult> {
  const { stack, model } = await openStack(stackName, opts);
  checkPayloadBeforeChange(model, opts);
  if (model.localHosts) hostsUp(model, stackKey(REPO_ROOT, stackName).publicKey, REPO_ROOT);
  const say = opts.onOutput ?? ((s: string) => void process.stdout.write(s));
  const result = await stack.up({ refresh: opts.refresh ?? true, onOutput: say, onEvent: opts.onEvent });
  // A web server removed from the stack: gone from the balancers and cleaned by this up, now its host goes.
  if (model.localHosts) for (const name of removeLeftHosts(model)) say(`local host ${name} removed: no longer in the stack\n`);
  return result;
}

export async function up(stackName: string, opts: StackOptions = {}): Promise<OutputMap> {
  return (await upWithSummary(stackName, opts)).outputs;
}

export async function preview(stackName: string, opts: StackOptions = {}): Promise<Record<string, number>> {
  const { stack, model } = await openStack(stackName, opts);
  checkPayloadBeforeChange(model, opts);
  // Reads the hosts back first, as up does, so the preview shows the repairs up would make.
  const r = await stack.preview({ refresh: opts.refresh ?? true, onOutput: opts.onOutput ?? ((s) => process.stdout.write(s)) });
  return r.changeSummary as Record<string, number>;
}

/**
 * pulumi destroy, then the local hosts. When destroy fails the hosts stay: the
 * state still lists what is on them, and removing them would leave a state that
 * no later run can finish. Running down again carries on where it stopped.
 */
export async function down(stackName: string, opts: StackOptions = {}): Promise<string[]> {
  const { stack, model } = await openStack(stackName, opts);
  if (model.localHosts) startStoppedHosts(model);
  try {
    await stack.destroy({ onOutput: opts.onOutput ?? ((s) => process.stdout.write(s)) });
  } catch (e) {
    const why =
      e instanceof Error
        ? e.message
            .split("\n")
            .filter((l) => /error|failed/i.test(l))
            .slice(-3)
            .join("\n") || e.message
        : String(e);
    throw new Error(
      `destroy of stack ${stackName} failed, so its hosts are kept (the stack's state still lists what is on them):\n${why}\n` +
        `Fix the cause and run the same command again (DRUPAL_CLUSTER_STACK=${stackName} npm run down): it carries on where this one stopped.\n` +
        `To throw the stack away instead, hosts and state both: npx ts-node scripts/stack.ts cleanup --stack ${stackName}`,
      { cause: e },
    );
  }
  return removeByLabel(stackName);
}

/**
 * Moves a stack made with the former dynamic resources to the provider plugin
 * (scripts/migrate-state.ts): markers on the hosts first, then the state, so a
 * failure halfway leaves a state that still works as it was.
 */
export async function migrate(stackName: string, opts: StackOptions = {}): Promise<string> {
  const { stack, model } = await openStack(stackName, { ...opts, skipPayloadCheck: true });
  const hostKeys = new Map(allHosts(model).flatMap((h) => (h.ssh?.hostKey ? [[`${h.ssh.host}:${h.ssh.port}`, h.ssh.hostKey] as const] : [])));
  const m = migrateDeployment(await stack.exportStack(), stackName, PROJECT, hostKeys);
  if (m === null) return `stack ${stackName} holds no dynamic resources: nothing to migrate`;
  if (m.steps.length > 0) await markSteps(model, (await stack.getConfig(`${PROJECT}:sshPrivateKey`)).value, m.steps);
  await stack.importStack(m.deployment);
  return `stack ${stackName}: ${m.migrated} resources moved to the ${PROVIDER_PACKAGE} provider v${PROVIDER_VERSION}, ${m.steps.length} applied steps marked on their hosts; next: npm run up`;
}

/**
 * Removes a stack's local hosts and its state, for a stack that cannot be
 * destroyed normally (its hosts are gone, or the run that made it crashed).
 */
export async function cleanup(stackName: string): Promise<string[]> {
  process.env.PATH = `${TOOLS_BIN}:${process.env.PATH}`;
  const removed = removeByLabel(stackName);
  const workDir = path.join(WORK_ROOT, stackName);
  fs.mkdirSync(workDir, { recursive: true });
  const ws = await LocalWorkspace.create({ workDir, envVars: engineEnv(), projectSettings: { name: PROJECT, runtime: "nodejs" } });
  if ((await ws.listStacks()).some((s) => s.name === stackName)) {
    await ws.removeStack(stackName, { force: true });
    removed.push("its state");
  }
  return removed;
}

function stackArg(argv: string[]): string {
  const i = argv.indexOf("--stack");
  return i >= 0 && argv[i + 1] ? argv[i + 1] : (process.env.DRUPAL_CLUSTER_STACK ?? "dev");
}

async function main(argv: string[]): Promise<void> {
  const [cmd] = argv;
  const skipPayloadCheck = argv.includes("--skip-payload-check");
  const stackName = stackArg(argv);
  switch (cmd) {
    case "up": {
      const t0 = Date.now();
      const refresh = !argv.includes("--no-refresh");
      const drift = new DriftReport();
      const progress = new RolloutProgress();
      const onEvent = (e: EngineEvent): void => {
        drift.onEvent(e);
        progress.onEvent(e);
      };
      const r = await upWithSummary(stackName, { skipPayloadCheck, refresh, onEvent });
      print(r.outputs, stackName);
      if (refresh) console.log(`\n${drift.lines().join("\n")}`);
      console.log(`\nup: ${((Date.now() - t0) / 1000).toFixed(1)} s`);
      return;
    }
    case "preview":
      console.log(await preview(stackName, { skipPayloadCheck }));
      return;
    case "down": {
      const removed = await down(stackName);
      console.log(`down: stack ${stackName} destroyed; removed ${removed.join(", ") || "no local hosts"}`);
      return;
    }
    case "outputs": {
      const { stack } = await openStack(stackName);
      print(await stack.outputs(), stackName);
      return;
    }
    case "migrate":
      console.log(`migrate: ${await migrate(stackName)}`);
      return;
    case "cleanup": {
      // One stack, or every stack that left anything on this machine.
      const stacks = argv.includes("--stack") ? [stackName] : labelledStacks();
      for (const s of stacks) console.log(`cleanup: stack ${s}: removed ${(await cleanup(s)).join(", ") || "nothing"}`);
      return;
    }
    default: {
      const header = fs.readFileSync(__filename, "utf8").split("\n");
      console.log(
        header
          .slice(1, header.indexOf(" */"))
          .map((l) => l.replace(/^ \*\s?/, ""))
          .join("\n"),
      );
      process.exit(cmd === "--help" || cmd === "-h" ? 0 : 2);
    }
  }
}

if (require.main === module) {
  main(process.argv.slice(2)).catch((e) => {
    console.error(`error: ${e instanceof Error ? e.message : String(e)}`);
    process.exit(1);
  });
}
