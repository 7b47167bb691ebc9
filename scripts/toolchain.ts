/**
 * Which parts of the Pulumi toolchain this machine has. UNOBTAINABLE is the one
 * list of components known to be impossible to get here, with the exact error;
 * the test run prints it as "not covered" rather than skipping anything silently.
 */
import { execFileSync } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import { PROVIDER_PACKAGE, PROVIDER_VERSION } from "../infra/targets/ssh/plugin";

export const ROOT = path.resolve(__dirname, "..");
export const TOOLS_BIN = path.join(ROOT, ".tools", "bin");
/** This checkout's Pulumi home: its plugin cache holds our provider plugin. */
export const PULUMI_HOME = path.join(ROOT, ".tools", "pulumi-home");

/** Where the engine finds the installed drupal-cluster plugin (scripts/build-provider.ts puts it there). */
export function installedPluginDir(): string {
  return path.join(PULUMI_HOME, "plugins", `resource-${PROVIDER_PACKAGE}-v${PROVIDER_VERSION}`);
}

export interface Unobtainable {
  component: string;
  what: string;
  error: string;
  consequence: string;
}

export const UNOBTAINABLE: Unobtainable[] = [
  {
    component: "pulumi-resource-command",
    what: "@pulumi/command's provider plugin (module github.com/pulumi/pulumi-command)",
    error:
      "go get github.com/pulumi/pulumi-command@2d1778da0ec3: 403 Forbidden (This module version is not available); the served v1.2.1 holds no provider code",
    consequence: "the ssh target delivers through our own provider plugin (infra/targets/ssh/provider, SSH via ssh2) instead",
  },
  {
    component: "pulumi-resource-docker",
    what: "@pulumi/docker's provider plugin (module github.com/pulumi/pulumi-docker/provider/v4)",
    error: "go list -m github.com/pulumi/pulumi-docker/provider/v4@v4.6.0: 403 Forbidden; it also replaces its Terraform provider with a git submodule",
    consequence:
      "the docker target (sandbox stack) is covered under mocks, and by replaying its recorded docker resources with the docker CLI (test/docker-target), not by a real `pulumi up`",
  },
  {
    component: "pulumi-language-nodejs",
    what: "the nodejs language host (module github.com/pulumi/pulumi/sdk/nodejs/cmd/pulumi-language-nodejs/v3)",
    error: "go get ...pulumi-language-nodejs/v3@v3.259.0: 403 Forbidden (This module version is not available)",
    consequence: "`pulumi up` from the CLI alone cannot run the program; scripts/stack.ts runs it through the Automation API",
  },
];

export function pulumiVersion(): string | undefined {
  try {
    return execFileSync(path.join(TOOLS_BIN, "pulumi"), ["version"], { encoding: "utf8" }).trim();
  } catch {
    return undefined;
  }
}

export function dockerVersion(): string | undefined {
  try {
    return execFileSync("docker", ["info", "--format", "{{.ServerVersion}}"], { encoding: "utf8", stdio: ["ignore", "pipe", "ignore"] }).trim();
  } catch {
    return undefined;
  }
}

export function statusLines(): string[] {
  const cli = pulumiVersion();
  const engine = dockerVersion();
  return [
    `  docker engine            ${engine ? `available (${engine})` : "MISSING: run scripts/bootstrap"}`,
    `  pulumi CLI               ${cli ? `available (${cli}, built from Go modules)` : "MISSING: run scripts/bootstrap"}`,
    `  drupal-cluster plugin    ${fs.existsSync(path.join(installedPluginDir(), `pulumi-resource-${PROVIDER_PACKAGE}`)) ? `installed (v${PROVIDER_VERSION}, built from infra/targets/ssh/provider)` : "MISSING: run scripts/bootstrap"}`,
    ...UNOBTAINABLE.map((u) => `  ${u.component.padEnd(24)} NOT AVAILABLE HERE: ${u.error}\n  ${"".padEnd(24)} so ${u.consequence}`),
  ];
}

if (require.main === module) {
  console.log("toolchain:");
  for (const l of statusLines()) console.log(l);
}
