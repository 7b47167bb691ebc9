import * as fs from "node:fs";
import * as path from "node:path";
import { ProxyNodeArtifact } from "./balancer";

/** proxy-node's package folder: the npm workspace this project depends on (package.json). */
export function proxyNodePackage(): string {
  try {
    return path.dirname(require.resolve("proxy-node/package.json"));
  } catch {
    throw new Error("proxy-node is not installed: node_modules/proxy-node is missing (run `npm ci`, or scripts/bootstrap)");
  }
}

/** The built bin: proxy-node's one artifact, a self-contained script (proxy-node/scripts/build.js). */
export function proxyNodeBinPath(pkgDir = proxyNodePackage()): string {
  const pkg = JSON.parse(fs.readFileSync(path.join(pkgDir, "package.json"), "utf8")) as { bin: Record<string, string> };
  return path.join(pkgDir, pkg.bin["proxy-node"]);
}

/** proxy-node as shipped to the balancer: its built bin, one file. */
export function readProxyNodeArtifact(pkgDir = proxyNodePackage()): ProxyNodeArtifact {
  const bin = proxyNodeBinPath(pkgDir);
  if (!fs.existsSync(bin)) {
    throw new Error(`proxy-node is not built: ${bin} is missing (run \`npm run build\`)`);
  }
  return fs.readFileSync(bin, "utf8");
}
