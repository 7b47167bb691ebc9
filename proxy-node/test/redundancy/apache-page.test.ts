import { strict as assert } from "node:assert";
import { flagsFor, parseWorkerRows, statusFromWords } from "../../src/apache-watch";

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
