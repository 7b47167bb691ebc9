/**
 * The environment every pulumi CLI run of this project gets, from the scripts
 * and from `npm run pulumi`: the project's state backend (PULUMI_BACKEND_URL,
 * default the local file backend), its secrets passphrase and its plugin cache.
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { REPO_ROOT } from "../infra/config/stack-file";
import { PULUMI_HOME } from "./toolchain";

export function engineEnv(): Record<string, string> {
  const env: Record<string, string> = {
    PULUMI_SKIP_UPDATE_CHECK: "true",
    PULUMI_HOME,
    PULUMI_BACKEND_URL: process.env.PULUMI_BACKEND_URL ?? `file://${path.join(REPO_ROOT, ".pulumi-state")}`,
  };
  const passFile = path.join(REPO_ROOT, ".secrets", "passphrase");
  if (!process.env.PULUMI_CONFIG_PASSPHRASE && !process.env.PULUMI_CONFIG_PASSPHRASE_FILE) {
    if (!fs.existsSync(passFile)) throw new Error(`no secrets passphrase: set PULUMI_CONFIG_PASSPHRASE or run scripts/bootstrap (it creates ${passFile})`);
    env.PULUMI_CONFIG_PASSPHRASE_FILE = passFile;
  }
  return env;
}
