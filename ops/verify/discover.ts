import { Browser } from "./browser";
import { probePage } from "./probe";
import { VerifyTarget, webServers } from "./target";

/**
 * New clients through the balancer until one has reached each web server (at
 * most 10 per server): each keeps its jar, so it stays pinned there. The
 * probe's page names the server and its route, which the stack outputs do not.
 */
export async function clientPerServer(t: VerifyTarget): Promise<Map<string, { browser: Browser; route: string }>> {
  const names = webServers(t).map((w) => w.name);
  const clients = new Map<string, { browser: Browser; route: string }>();
  for (let i = 0; i < 10 * Math.max(names.length, 1) && clients.size < names.length; i++) {
    const browser = new Browser(t.balancerUrl);
    const page = probePage(await browser.get("/"));
    if (!clients.has(page.server)) clients.set(page.server, { browser, route: page.route });
  }
  return clients;
}
