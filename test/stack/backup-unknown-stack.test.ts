/**
 * `npm run backup` on a stack that was never brought up (a mistyped name, or
 * one whose hosts are elsewhere): an error that says so, and no empty stack
 * of that name left in the backend. staging has a stack file but no state
 * here; nothing reaches its hosts, because the stack does not open.
 */
import * as assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import { REPO_ROOT } from "../../infra/config/stack-file";
import { pulumiVersion } from "../../scripts/toolchain";

const STATE = path.join(REPO_ROOT, ".pulumi-state", ".pulumi", "stacks", "drupal-cluster");

describe("npm run backup on a stack with no state", function () {
  this.timeout(120_000);

  it("stops with `no state in this backend` and the command that brings it up, and creates no stack", () => {
    if (!pulumiVersion()) throw new Error("the Pulumi CLI is missing (.tools/bin/pulumi): run scripts/bootstrap");
    const stateOf = (): boolean => fs.existsSync(path.join(STATE, "staging.json"));
    assert.equal(stateOf(), false, "staging has state on this machine: this test needs a stack that was never brought up");
    const r = spawnSync("npm", ["run", "--silent", "backup"], { cwd: REPO_ROOT, env: { ...process.env, DRUPAL_CLUSTER_STACK: "staging" }, encoding: "utf8" });
    assert.notEqual(r.status, 0, r.stdout + r.stderr);
    assert.match(r.stderr + r.stdout, /stack staging has no state in this backend: bring it up first \(DRUPAL_CLUSTER_STACK=staging npm run up\)/);
    assert.equal(stateOf(), false, "backup created an empty staging stack");
  });
});
