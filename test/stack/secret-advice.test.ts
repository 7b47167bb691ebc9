/**
 * The advice printed for a missing secret works when run exactly as printed:
 * a staging-like stack's four secrets are set by running each printed command
 * in a shell, until the stack opens (issue 9: "every printed advice works").
 */
import * as assert from "node:assert/strict";
import { execFileSync, spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { REPO_ROOT } from "../../infra/config/stack-file";
import { cleanup, openStack } from "../../scripts/stack";
import { pulumiVersion } from "../../scripts/toolchain";

const STACK = "ci-advice";
const STACK_FILE = path.join(REPO_ROOT, `Pulumi.${STACK}.yaml`);
const KEY_FILE = path.join(os.homedir(), ".ssh", `drupal-cluster-${STACK}`);

describe("advice for a missing secret, run as printed", function () {
  this.timeout(120_000);

  before(async () => {
    if (!pulumiVersion()) throw new Error("the Pulumi CLI is missing (.tools/bin/pulumi): run scripts/bootstrap");
    await cleanup(STACK);
    fs.copyFileSync(path.join(REPO_ROOT, "Pulumi.staging.yaml"), STACK_FILE);
  });

  after(async () => {
    fs.rmSync(STACK_FILE, { force: true });
    fs.rmSync(KEY_FILE, { force: true });
    fs.rmSync(`${KEY_FILE}.pub`, { force: true });
    await cleanup(STACK);
  });

  it("each missing secret's message names its key and a command that sets it; after running them the stack opens", async () => {
    const asked: string[] = [];
    for (let round = 0; round < 6; round++) {
      let message: string | undefined;
      try {
        await openStack(STACK, { skipPayloadCheck: true });
      } catch (e) {
        message = e instanceof Error ? e.message : String(e);
      }
      if (message === undefined) break;
      const key = /^config drupal-cluster:(\w+): secret is missing for stack ci-advice/.exec(message)?.[1];
      assert.ok(key, `not a missing-secret message: ${message}`);
      assert.ok(!asked.includes(key), `${key} was asked for again after its command ran: ${message}`);
      asked.push(key);
      const command =
        message
          .split("\n")
          .find((l) => l.startsWith("  "))
          ?.trim() ?? "";
      assert.ok(command.includes("npm run pulumi -- config set"), `no command in: ${message}`);
      if (command.includes(KEY_FILE.replace(os.homedir(), "~"))) {
        fs.mkdirSync(path.dirname(KEY_FILE), { recursive: true, mode: 0o700 });
        execFileSync("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-f", KEY_FILE]);
      }
      const r = spawnSync("bash", ["-c", command], { cwd: REPO_ROOT, encoding: "utf8" });
      assert.equal(r.status, 0, `\`${command}\` failed: ${r.stderr}`);
    }
    assert.deepEqual(asked.sort(), ["cronKey", "dbPassword", "hashSalt", "managerToken", "sshPrivateKey"]);
    const { stack } = await openStack(STACK, { skipPayloadCheck: true });
    const key = (await stack.getConfig("drupal-cluster:sshPrivateKey")).value;
    assert.equal(key.trim(), fs.readFileSync(KEY_FILE, "utf8").trim(), "the private key arrived changed");
    // Stored encrypted in the stack file, never in plaintext.
    assert.ok(!fs.readFileSync(STACK_FILE, "utf8").includes(key.split("\n")[1]));
  });

  it("cleanup --stack removes the stack's state from the backend, as the down advice says", async () => {
    const listed = (): string[] =>
      (
        JSON.parse(execFileSync("npm", ["run", "-s", "pulumi", "--", "stack", "ls", "--json"], { cwd: REPO_ROOT, encoding: "utf8" })) as Array<{ name: string }>
      ).map((s) => s.name);
    assert.ok(listed().includes(STACK), "the stack is not in the backend to begin with");
    const r = spawnSync("npx", ["ts-node", "scripts/stack.ts", "cleanup", "--stack", STACK], { cwd: REPO_ROOT, encoding: "utf8" });
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, new RegExp(`cleanup: stack ${STACK}: removed its state`));
    assert.ok(!listed().includes(STACK), "the stack's state is still in the backend");
  });
});
