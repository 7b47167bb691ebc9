/**
 * Builds drupal-cluster's provider plugin (infra/targets/ssh/provider) into one
 * self-contained script and installs it into this checkout's Pulumi plugin
 * cache, where the engine finds it by package name and version like any other
 * plugin. The installed copy needs nothing of the checkout: moving or deleting
 * the checkout does not break a stack, and another clone installs its own.
 *
 *   ts-node scripts/build-provider.ts          build and install (skipped when unchanged)
 */
import { execFileSync } from "node:child_process";
import { createHash } from "node:crypto";
import * as fs from "node:fs";
import * as path from "node:path";
import { buildSync } from "esbuild";
import { PROVIDER_PACKAGE, PROVIDER_VERSION } from "../infra/targets/ssh/plugin";
import { installedPluginDir, PULUMI_HOME, ROOT, TOOLS_BIN } from "./toolchain";

const OUT = path.join(ROOT, ".tools", "provider", `pulumi-resource-${PROVIDER_PACKAGE}`);

export function buildProvider(): string {
  fs.mkdirSync(OUT, { recursive: true });
  const bundle = path.join(OUT, "provider.js");
  buildSync({
    entryPoints: [path.join(ROOT, "infra", "targets", "ssh", "provider", "main.ts")],
    bundle: true,
    platform: "node",
    target: "node18",
    outfile: bundle,
    define: { PROVIDER_VERSION: JSON.stringify(PROVIDER_VERSION) },
    // ssh2's native crypto and cpu-features are optional: it falls back to JavaScript without them.
    external: ["*.node"],
    logLevel: "error",
  });
  const bin = path.join(OUT, `pulumi-resource-${PROVIDER_PACKAGE}`);
  fs.writeFileSync(bin, '#!/bin/sh\nexec node "$(dirname "$0")/provider.js" "$@"\n', { mode: 0o755 });
  const hash = createHash("sha256").update(fs.readFileSync(bundle)).digest("hex").slice(0, 16);
  const installed = installedPluginDir();
  const stamp = path.join(installed, ".build-hash");
  if (fs.existsSync(stamp) && fs.readFileSync(stamp, "utf8") === hash) return `${PROVIDER_PACKAGE} v${PROVIDER_VERSION} unchanged`;
  execFileSync(path.join(TOOLS_BIN, "pulumi"), ["plugin", "install", "resource", PROVIDER_PACKAGE, PROVIDER_VERSION, "--file", OUT, "--reinstall"], {
    env: { ...process.env, PULUMI_HOME, PULUMI_SKIP_UPDATE_CHECK: "true" },
    stdio: ["ignore", "ignore", "inherit"],
  });
  fs.writeFileSync(stamp, hash);
  return `${PROVIDER_PACKAGE} v${PROVIDER_VERSION} built and installed (${Math.round(fs.statSync(bundle).size / 1024)} KB)`;
}

if (require.main === module) console.log(buildProvider());
