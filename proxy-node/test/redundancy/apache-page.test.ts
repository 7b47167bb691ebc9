import { strict as assert } from "node:assert";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { ApacheWatcher, flagsFor, parseWorkerRows, statusFromWords } from "../../src/apache-watch";
import { ApacheAgent } from "../../src/agent";
import { Member } from "../../src/members";
import { silentLogger } from "../../src/log";

// Worker rows as Apache 2.4 writes them (copied from a 2.4 balancer-manager page).
const PAGE = `<h3>LoadBalancer Status for <a href="/balancer-manager?b=drupal&amp;nonce=db774c7f-9258">balancer://drupal</a> [pdb_drupal]</h3>
<table><tr><th>Worker URL</th><th>Route</th><th>RouteRedir</th><th>Factor</th><th>Set</th><th>Status</th><th>Elected</th><th>Busy</th><th>Load</th><th>To</th><th>From</th></tr>
<tr>
<td><a href="/balancer-manager?b=drupal&amp;w=http://127.0.0.1:18801&amp;nonce=db774c7f-9258">http://127.0.0.1:18801</a></td><td>lb1</td><td></td><td>1.00</td><td>0</td><td>Init Ok </td><td>0</td><td>0</td><td>0</td><td>  0 </td><td>  0 </td></tr>
<tr>
<td><a href="/balancer-manager?b=drupal&amp;w=http://127.0.0.1:18802&amp;nonce=db774c7f-9258">http://127.0.0.1:18802</a></td><td>lb2</td><td></td><td>1.00</td><td>0</td><td>Init Drn Dis HcFl </td><td>0</td><td>0</td><td>0</td><td>  0 </td><td>  0 </td></tr>
</table>
<h3>LoadBalancer Status for <a href="/balancer-manager?b=other&amp;nonce=zz">balancer://other</a></h3>
<table><tr><td><a href="/balancer-manager?b=other&amp;w=http://x:1&amp;nonce=zz">x</a></td><td>Init Stop </td></tr></table>`;

describe("redundancy: reading Apache's balancer-manager page", () => {
  it("each worker's status words and the nonce, for the named balancer only", () => {
    assert.deepEqual(parseWorkerRows(PAGE, "drupal"), {
      nonce: "db774c7f-9258",
      rows: [
        { url: "http://127.0.0.1:18801", status: "Init Ok" },
        { url: "http://127.0.0.1:18802", status: "Init Drn Dis HcFl" },
      ],
    });
    assert.equal(parseWorkerRows("<html></html>", "drupal"), null);
  });

  it("status words to a proxy-node status and back to flags; HcFl (health) is not an administrative status", () => {
    assert.equal(statusFromWords("Init Ok"), "enabled");
    assert.equal(statusFromWords("Init Ok HcFl"), "enabled");
    assert.equal(statusFromWords("Init Err"), "enabled");
    assert.equal(statusFromWords("Init Dis"), "disabled");
    assert.equal(statusFromWords("Init Drn Dis"), "disabled");
    assert.equal(statusFromWords("Init Drn"), "draining");
    assert.equal(statusFromWords("Init Stop"), "stopped");
    assert.equal(statusFromWords("Init Stby Ok"), "standby");
    assert.deepEqual(flagsFor("draining"), { D: 0, N: 1, S: 0, H: 0 });
    assert.deepEqual(flagsFor("enabled"), { D: 0, N: 0, S: 0, H: 0 });
    assert.deepEqual(flagsFor("standby"), { D: 0, N: 0, S: 0, H: 1 });
  });
});

/** A balancer-manager with two workers whose status words change as the agent posts; a POST takes `postDelayMs`. */
async function fakeManager(postDelayMs: number) {
  const status: Record<string, string> = { "http://127.0.0.1:9001": "Init Ok", "http://127.0.0.1:9002": "Init Ok" };
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      const page = (): void => {
        res.writeHead(200, { "Content-Type": "text/html" });
        res.end(
          Object.entries(status)
            .map(([w, st]) => `<tr><td><a href="/balancer-manager?b=drupal&amp;w=${w}&amp;nonce=n1">${w}</a></td><td>${st}</td></tr>`)
            .join("\n"),
        );
      };
      if (req.method !== "POST") return page();
      const form = new URLSearchParams(Buffer.concat(chunks).toString());
      setTimeout(() => {
        const words = ["Init"];
        if (form.get("w_status_D") === "1") words.push("Dis");
        if (form.get("w_status_N") === "1") words.push("Drn");
        status[form.get("w") ?? ""] = words.length === 1 ? "Init Ok" : words.join(" ");
        page();
      }, postDelayMs);
    });
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const port = (server.address() as AddressInfo).port;
  return { url: `http://127.0.0.1:${port}/balancer-manager`, status, close: () => new Promise<void>((r) => server.close(() => r())) };
}

describe("redundancy: the agent's reads of its own writes", () => {
  it("two quick writes (disabled, then enabled) read back in between are not taken for an operator's change", async () => {
    const fake = await fakeManager(150);
    try {
      const members = ["9001", "9002"].map(
        (p, i) =>
          new Member({
            url: `http://127.0.0.1:${p}`,
            host: "127.0.0.1",
            port: Number(p),
            route: `lb${i + 1}`,
            lbfactor: 1,
            retry: 60,
            status: "enabled",
            maxSockets: 1,
            maxQueue: 0,
          }),
      );
      const carried: string[] = [];
      const w = new ApacheWatcher(
        new ApacheAgent({ managerUrl: fake.url, balancer: "drupal" }, silentLogger),
        () => members,
        (m, carry) => carry && carried.push(`${m.route} ${m.status}`),
        silentLogger,
      );
      await w.poll(); // first read: Apache and proxy-node agree
      const lb2 = members[1];
      lb2.status = "disabled";
      await w.apply(lb2, { status: "disabled" });
      lb2.status = "enabled";
      const second = w.apply(lb2, { status: "enabled" });
      await w.poll(); // reads "Init Dis": the first write, while the second is on its way
      assert.equal(fake.status["http://127.0.0.1:9002"], "Init Dis", "the read did not fall between the two writes");
      await second;
      await w.poll();
      assert.deepEqual(carried, []);
      // And an operator's change after that is still seen.
      fake.status["http://127.0.0.1:9002"] = "Init Drn";
      await w.poll();
      assert.deepEqual(carried, ["lb2 draining"]);
    } finally {
      await fake.close();
    }
  });

  it("an operator's change right after our write, before any read, is still an operator's change", async () => {
    const fake = await fakeManager(0);
    try {
      const lb2 = new Member({
        url: "http://127.0.0.1:9002",
        host: "127.0.0.1",
        port: 9002,
        route: "lb2",
        lbfactor: 1,
        retry: 60,
        status: "enabled",
        maxSockets: 1,
        maxQueue: 0,
      });
      const carried: string[] = [];
      const w = new ApacheWatcher(
        new ApacheAgent({ managerUrl: fake.url, balancer: "drupal" }, silentLogger),
        () => [lb2],
        (m, carry) => carry && carried.push(`${m.route} ${m.status}`),
        silentLogger,
      );
      await w.poll();
      // A peer's disable, written here; then an operator enables lb2 in this Apache's page before the watcher reads it.
      lb2.status = "disabled";
      await w.apply(lb2, { status: "disabled" });
      fake.status["http://127.0.0.1:9002"] = "Init Ok";
      await w.poll();
      assert.deepEqual(carried, ["lb2 enabled"]);
      assert.equal(lb2.status, "enabled");
    } finally {
      await fake.close();
    }
  });
});
