// proxy-node's bin as the package ships it (package.json "bin"): src bundled by
// scripts/build.js into one script, built once per test run.
import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { join } from "node:path";

export const PACKAGE = join(__dirname, "..");

let built = "";

export function builtBin(): string {
  if (!built) {
    execFileSync(process.execPath, [join(PACKAGE, "scripts", "build.js")], { stdio: ["ignore", "ignore", "inherit"] });
    const pkg = JSON.parse(readFileSync(join(PACKAGE, "package.json"), "utf8")) as { bin: Record<string, string> };
    built = join(PACKAGE, pkg.bin["proxy-node"]);
  }
  return built;
}
