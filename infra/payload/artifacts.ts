import * as fs from "node:fs";
import * as path from "node:path";
import { ProxyNodeArtifacts } from "./balancer";

export const PROXY_NODE_DIST = path.resolve(__dirname, "..", "..", "proxy-node", "dist");

/** proxy-node's compiled JavaScript, as shipped to the balancer. */
export function readProxyNodeArtifacts(dist = PROXY_NODE_DIST): ProxyNodeArtifacts {
  if (!fs.existsSync(path.join(dist, "cli.js"))) {
    throw new Error(`proxy-node is not built: ${dist}/cli.js is missing (run \`npm run build\`)`);
  }
  const out = new Map<string, string>();
  const walk = (dir: string): void => {
    for (const e of fs.readdirSync(dir, { withFileTypes: true }).sort((a, b) => a.name.localeCompare(b.name))) {
      const full = path.join(dir, e.name);
      if (e.isDirectory()) walk(full);
      else if (e.name.endsWith(".js")) out.set(path.relative(dist, full), fs.readFileSync(full, "utf8"));
    }
  };
  walk(dist);
  return out;
}
