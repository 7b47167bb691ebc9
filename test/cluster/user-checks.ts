import { RunningCluster } from "../support/local-cluster";
import { checkDirect, checkForwardedHeadersNotForged, checkManager, checkNotOpenProxy, checkSessionsInDatabase, checkSpread, checkSticky, ManagerOps } from "./checks";

/** Checks 1 to 6 of the cluster issue, the same for every engine. Spread runs first: byrequests counts sticky requests. */
export function registerUserChecks(get: () => RunningCluster, manager: () => Promise<ManagerOps>): void {
  it("spreads new clients evenly over the web servers (byrequests, within one)", async () => {
    await checkSpread(get(), 10);
  });
  it("pins a client to its web server for 50 follow-up requests", async () => {
    await checkSticky(get(), 50);
  });
  it("keeps the login and the visit counter in MariaDB, readable from every web server", async () => {
    await checkSessionsInDatabase(get());
  });
  it("answers on each web server's direct URL", async () => {
    await checkDirect(get());
  });
  it("balancer-manager: allowed network only, and disabling a member moves new clients", async () => {
    await checkManager(get(), await manager());
  });
  it("is not an open proxy: absolute-URI and CONNECT refused, the named host sees nothing", async () => {
    await checkNotOpenProxy(get());
  });
  it("a client's own X-Forwarded-For, -Host, -Proto and Forwarded never reach the web servers", async () => {
    await checkForwardedHeadersNotForged(get());
  });
}

