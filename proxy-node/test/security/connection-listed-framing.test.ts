// Issue 14, items 1, 2 and 7: framing headers a peer lists in Connection are
// still framing. proxy-node writes Content-Length / Transfer-Encoding from what
// it parsed, in both directions, so the bytes it sends always match them.
import { strict as assert } from "node:assert";
import { startMember, startProxy, baseConfig, closeAll, until, MemberServer } from "../helpers";
import { RawClient, rawMember, closeRawMembers, destroyRawClients, header, show } from "../raw-http";

const SMUGGLED = "GET /admin-only HTTP/1.1\r\nHost: internal\r\nX-Swallow: ";

async function oneMember(): Promise<{ lb1: MemberServer; port: number }> {
  const lb1 = await startMember("lb1");
  // One member connection, so the victim's request reuses the attacker's.
  const app = await startProxy(baseConfig([{ url: lb1.url, route: "lb1", maxSockets: 1 }]));
  return { lb1, port: app.port };
}

/** Sends the attacker's request, then a victim's on a new connection; returns what the victim got. */
async function attackThenVictim(port: number, attack: string): Promise<string> {
  const attacker = new RawClient(port);
  await attacker.send(attack);
  await attacker.responses(1);
  const victim = new RawClient(port);
  await victim.send("GET /victim HTTP/1.1\r\nHost: x\r\n\r\n");
  const [answer] = await victim.responses(1);
  return answer.body;
}

function assertNoDesync(lb1: MemberServer, victimBody: string): void {
  const urls = lb1.seen.map((r) => r.url);
  assert.ok(!urls.includes("/admin-only"), `the member read a smuggled request: ${urls.join(", ")}`);
  assert.deepEqual(urls, ["/x", "/victim"], "the member saw exactly the two client requests");
  assert.equal(lb1.seen[0].body, SMUGGLED, "the POST body reached the member as its body");
  assert.equal(victimBody, "lb1");
}

describe("security: framing headers listed in Connection (CL.0 desync)", () => {
  afterEach(async () => {
    destroyRawClients();
    await closeRawMembers();
    await closeAll();
  });

  it("Connection: Content-Length does not strip the request length (no smuggled request, victim gets its own answer)", async () => {
    const { lb1, port } = await oneMember();
    const body = await attackThenVictim(
      port,
      `POST /x HTTP/1.1\r\nHost: a\r\nConnection: Content-Length\r\nContent-Length: ${SMUGGLED.length}\r\n\r\n${SMUGGLED}`,
    );
    assertNoDesync(lb1, body);
  });

  it("Connection: close, content-length keeps the length too", async () => {
    const { lb1, port } = await oneMember();
    const body = await attackThenVictim(
      port,
      `POST /x HTTP/1.1\r\nHost: a\r\nConnection: close, content-length\r\nContent-Length: ${SMUGGLED.length}\r\n\r\n${SMUGGLED}`,
    );
    assertNoDesync(lb1, body);
  });

  it("HTTP/1.0 keep-alive with Connection: keep-alive, Content-Length keeps the length", async () => {
    const { lb1, port } = await oneMember();
    const body = await attackThenVictim(
      port,
      `POST /x HTTP/1.0\r\nHost: a\r\nConnection: keep-alive, Content-Length\r\nContent-Length: ${SMUGGLED.length}\r\n\r\n${SMUGGLED}`,
    );
    assertNoDesync(lb1, body);
  });

  it("Expect: 100-continue with Connection: Content-Length keeps the length", async () => {
    const { lb1, port } = await oneMember();
    const attacker = new RawClient(port);
    await attacker.send(`POST /x HTTP/1.1\r\nHost: a\r\nConnection: Content-Length\r\nExpect: 100-continue\r\nContent-Length: ${SMUGGLED.length}\r\n\r\n`);
    await until(() => attacker.text.includes("100 Continue"), "100 Continue");
    await attacker.send(SMUGGLED);
    await attacker.responses(1);
    const victim = new RawClient(port);
    await victim.send("GET /victim HTTP/1.1\r\nHost: x\r\n\r\n");
    const [answer] = await victim.responses(1);
    assertNoDesync(lb1, answer.body);
  });

  it("Connection: Transfer-Encoding does not strip chunked framing", async () => {
    const { lb1, port } = await oneMember();
    const chunked = `${SMUGGLED.length.toString(16)}\r\n${SMUGGLED}\r\n0\r\n\r\n`;
    const body = await attackThenVictim(port, `POST /x HTTP/1.1\r\nHost: a\r\nConnection: Transfer-Encoding\r\nTransfer-Encoding: chunked\r\n\r\n${chunked}`);
    assertNoDesync(lb1, body);
  });

  it("Connection: Host does not drop the Host the member gets", async () => {
    const { lb1, port } = await oneMember();
    const c = new RawClient(port);
    await c.send("GET /h HTTP/1.1\r\nHost: a\r\nConnection: Host\r\n\r\n");
    await c.responses(1);
    assert.equal(lb1.seen[0].headers.host, `127.0.0.1:${lb1.port}`);
  });

  it("an answer with Connection: content-length keeps its length, so the next answer is not read as its body", async () => {
    const member = await rawMember((sock) => {
      let buf = "";
      sock.on("data", (d: Buffer) => {
        buf += d.toString("latin1");
        let i: number;
        while ((i = buf.indexOf("\r\n\r\n")) >= 0) {
          const path = buf.slice(0, buf.indexOf("\r\n")).split(" ")[1];
          buf = buf.slice(i + 4);
          sock.write(
            path === "/first"
              ? "HTTP/1.1 200 OK\r\nConnection: content-length\r\nContent-Length: 4\r\n\r\nabcd"
              : "HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nsecond",
          );
        }
      });
    });
    const app = await startProxy(baseConfig([{ url: member.url, route: "lb1" }]));
    const c = new RawClient(app.port);
    await c.send("GET /first HTTP/1.1\r\nHost: x\r\n\r\n");
    const [first] = await c.responses(1);
    assert.equal(header(first, "content-length"), "4", show(c.text));
    assert.equal(first.body, "abcd");
    await c.send("GET /second HTTP/1.1\r\nHost: x\r\n\r\n");
    const answers = await c.responses(2);
    assert.equal(answers[1].body, "second", show(c.text));
  });

  it("a member's repeated identical Content-Length reaches the client once", async () => {
    const member = await rawMember((sock) => {
      sock.once("data", () => sock.write("HTTP/1.1 200 OK\r\nContent-Length: 4\r\nContent-Length: 4\r\n\r\nabcd"));
    });
    const app = await startProxy(baseConfig([{ url: member.url, route: "lb1" }]));
    const c = new RawClient(app.port);
    await c.send("GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    const [r] = await c.responses(1);
    const lengths = r.head.split("\r\n").filter((l) => /^content-length:/i.test(l));
    assert.deepEqual(lengths, ["Content-Length: 4"], show(r.head));
    assert.equal(r.body, "abcd");
  });
});
