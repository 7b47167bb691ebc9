import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { LocalWorkspace, PulumiCommand, Stack } from "@pulumi/pulumi/automation";
import { modelFromStackFile, PROJECT } from "../../infra/config/stack-file";
import { ensureSecrets, setSecretConfig } from "../../scripts/stack";
import { TOOLS_BIN } from "../../scripts/toolchain";

/**
 * Secrets never reach a command line: `ps` and /proc/<pid>/cmdline show every
 * process's arguments to every user of the machine. The Automation API's setConfig
 * passes the value as an argument; scripts/stack.ts gives it to the CLI on stdin.
 */

/** A stand-in pulumi CLI that records each call's arguments and stdin, and answers what the Automation API asks. */
const FAKE_CLI = `#!/usr/bin/env node
const fs = require("fs");
const args = process.argv.slice(2);
let stdin = "";
// Reads stdin only when the key is the one positional argument (no value), as the real CLI does.
const positional = [];
for (let i = 2; i < args.length; i++) {
  if (args[i] === "--") { positional.push(...args.slice(i + 1)); break; }
  if (args[i] === "--stack") i++;
  else if (!args[i].startsWith("--")) positional.push(args[i]);
}
if (args[0] === "config" && args[1] === "set" && positional.length === 1) { try { stdin = fs.readFileSync(0, "utf8"); } catch {} }
fs.appendFileSync(require("path").join(__dirname, "..", "..", "calls.jsonl"), JSON.stringify({ args, stdin }) + "\\n");
if (args[0] === "version") console.log("v3.259.0");
else if (args[0] === "config" && args.includes("--json")) console.log("{}");
`;

interface Call {
  args: string[];
  stdin: string;
}

describe("scripts/stack.ts: secrets never on a command line", () => {
  let dir: string;
  let log: string;
  let stack: Stack;

  beforeEach(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), "drupal-cluster-secrets-"));
    fs.mkdirSync(path.join(dir, "root", "bin"), { recursive: true });
    fs.writeFileSync(path.join(dir, "root", "bin", "pulumi"), FAKE_CLI, { mode: 0o755 });
    log = path.join(dir, "calls.jsonl");
    const pulumiCommand = await PulumiCommand.get({ root: path.join(dir, "root"), skipVersionCheck: true });
    const ws = await LocalWorkspace.create({
      workDir: dir,
      pulumiCommand,
      projectSettings: { name: PROJECT, runtime: "nodejs" },
    });
    stack = await Stack.select("dev", ws);
  });

  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

  const calls = (): Call[] =>
    fs
      .readFileSync(log, "utf8")
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l) as Call);

  it("the generated secrets and the SSH private key of a local stack go to the CLI on stdin, in no process's arguments", async () => {
    await ensureSecrets(stack, modelFromStackFile("dev"), path.join(dir, "keys"));
    const sets = calls().filter((c) => c.args[0] === "config" && c.args[1] === "set");
    const keys = ["dbPassword", "hashSalt", "managerToken", "cronKey", "sshPrivateKey"].map((k) => `${PROJECT}:${k}`);
    assert.deepEqual(sets.map((c) => c.args[c.args.length - 1]).sort(), [...keys].sort(), JSON.stringify(sets.map((c) => c.args)));
    const privateKey = fs.readFileSync(path.join(dir, "keys", ".secrets", "dev-ssh-key"), "utf8");
    for (const c of sets) {
      assert.ok(c.args.includes("--secret"), c.args.join(" "));
      assert.ok(c.stdin.length >= 24, `${c.args.join(" ")}: no value on stdin`);
    }
    assert.equal(sets.find((c) => c.args.includes(`${PROJECT}:sshPrivateKey`))?.stdin, privateKey, "the key must arrive byte for byte");
    const secrets = sets.map((c) => c.stdin);
    for (const c of calls()) {
      for (const s of secrets) {
        const line = c.args.join(" ");
        assert.ok(!line.includes(s.trim().split("\n")[0]), `a secret is in the arguments of: pulumi ${line.slice(0, 120)}`);
      }
    }
  });

  it("setSecretConfig: the value is read from stdin; the arguments name only the key", async () => {
    const value = "s3cret 'with' \"quotes\" $(touch /tmp/x) `id`\nsecond line\n";
    await setSecretConfig(stack, `${PROJECT}:dbPassword`, value);
    const set = calls().find((c) => c.args[1] === "set");
    assert.ok(set);
    assert.equal(set.stdin, value);
    assert.deepEqual(set.args, ["config", "set", "--stack", "dev", "--secret", "--raw", "--non-interactive", "--", `${PROJECT}:dbPassword`]);
  });
});

describe("scripts/stack.ts: setSecretConfig with the real pulumi CLI", function () {
  const cli = path.join(TOOLS_BIN, "pulumi");
  this.timeout(120_000);

  it("a value with quotes, shell syntax and a trailing newline is stored exactly, and never seen in /proc/*/cmdline", async function () {
    // scripts/bootstrap builds the CLI; without it this case cannot run, and says so.
    if (!fs.existsSync(cli)) {
      throw new Error(`${cli} is missing: run scripts/bootstrap (it builds the Pulumi CLI)`);
    }
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "drupal-cluster-secrets-cli-"));
    try {
      const ws = await LocalWorkspace.create({
        workDir: dir,
        pulumiCommand: await PulumiCommand.get({ root: path.dirname(TOOLS_BIN), skipVersionCheck: true }),
        envVars: {
          PULUMI_SKIP_UPDATE_CHECK: "true",
          PULUMI_BACKEND_URL: `file://${dir}`,
          PULUMI_CONFIG_PASSPHRASE: "test-passphrase",
          PULUMI_HOME: path.join(dir, "home"),
        },
        projectSettings: { name: PROJECT, runtime: "nodejs" },
      });
      const stack = await Stack.create("secrets-test", ws);
      const value = `pw-${process.pid}-'q' "d" $(id) \`id\` \\ end\n`;
      // Watch every process's arguments while the CLI runs.
      const seen: string[] = [];
      let watching = true;
      const watch = (async () => {
        while (watching) {
          for (const pid of fs.readdirSync("/proc").filter((p) => /^\d+$/.test(p))) {
            try {
              const cmdline = fs.readFileSync(`/proc/${pid}/cmdline`, "utf8");
              if (cmdline.includes(`pw-${process.pid}-`)) seen.push(cmdline.replace(/\0/g, " "));
            } catch {
              // The process ended while we looked.
            }
          }
          await new Promise((r) => setTimeout(r, 5));
        }
      })();
      try {
        await setSecretConfig(stack, `${PROJECT}:dbPassword`, value);
      } finally {
        watching = false;
        await watch;
      }
      assert.deepEqual(seen, [], "the secret appeared in a process's arguments");
      const got = await stack.getConfig(`${PROJECT}:dbPassword`);
      assert.equal(got.secret, true);
      assert.equal(got.value, value);
      const file = fs.readFileSync(path.join(dir, "Pulumi.secrets-test.yaml"), "utf8");
      assert.ok(!file.includes(`pw-${process.pid}`), "stored in plaintext");
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
