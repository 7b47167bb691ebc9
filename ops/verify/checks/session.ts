import * as crypto from "node:crypto";
import { Browser } from "../browser";
import { clientPerServer } from "../discover";
import { probePage } from "../probe";
import { fail, pass } from "../result";
import { Check } from "../context";

/**
 * A user logs in (the probe's form takes any name with a password), and the
 * login and the visit counter survive the next requests. Then the client's
 * sticky cookie is moved to every other web server, as failover would move it:
 * the session must be there too, so it lives in the shared database, not on
 * one server.
 */
export const session: Check = {
  name: "session",
  async run({ target: t }) {
    const b = new Browser(t.balancerUrl);
    const first = probePage(await b.get("/"));
    const user = `verify-${crypto.randomBytes(3).toString("hex")}`;
    const login = await b.post("/login.php", { name: user, pass: crypto.randomBytes(9).toString("base64url") });
    if (login.status !== 303) return [fail(this.name, `the login on ${first.server} answered ${login.status}: ${login.body.slice(0, 100)}`)];
    let visits = first.visits;
    for (let i = 0; i < 3; i++) {
      const page = probePage(await b.get("/"));
      if (page.user !== user)
        return [fail(this.name, `request ${i + 1} after logging in on ${first.server}: ${page.server} knows user ${page.user}, not ${user}`)];
      if (page.visits !== visits + 1) return [fail(this.name, `request ${i + 1} after logging in: visit counter ${page.visits} after ${visits}`)];
      visits = page.visits;
    }
    const moved: string[] = [];
    for (const [server, { route }] of await clientPerServer(t)) {
      if (route === first.route) continue;
      b.pin(t.cookieName, `${t.cookieValuePrefix}${route}`);
      const page = probePage(await b.get("/"));
      if (page.server !== server) return [fail(this.name, `a client whose ${t.cookieName} names route ${route} reached ${page.server}, not ${server}`)];
      if (page.user !== user || page.visits !== visits + 1) {
        return [
          fail(
            this.name,
            `the session moved to ${server} lost its login or counter: user ${page.user}, visit ${page.visits} (expected ${user}, ${visits + 1})`,
          ),
        ];
      }
      visits = page.visits;
      moved.push(server);
    }
    const elsewhere = moved.length
      ? `; its ${t.cookieName} moved to ${moved.join(", ")}: still logged in (visit ${visits})`
      : "; no other web server took a new client, so the session was not moved";
    return [
      pass(
        this.name,
        `logged in as ${user} on ${first.server}; the next 3 requests kept the login (visits ${first.visits + 1}..${first.visits + 3})${elsewhere}`,
      ),
    ];
  },
};
