import { rawExchange, RawAnswer, request } from "../http";
import { probePage } from "../probe";
import { CheckResult, fail, pass } from "../result";
import { Check } from "../context";

/**
 * Requests a forward proxy would serve. Their target is the balancer's own
 * loopback discard port, so if one were relayed it would reach nothing of
 * anyone's (and answer 502): a refusal is a 4xx; 501 also refuses a CONNECT.
 */
export const NOT_FORWARDED_MARKER = "verify-not-forwarded";

function refusedAs(a: RawAnswer, connect: boolean): boolean {
  return a.status !== undefined && ((a.status >= 400 && a.status < 500) || (connect && a.status === 501));
}

export const absoluteForm: Check = {
  name: "absolute-form",
  async run({ target: t }) {
    const target = `http://127.0.0.1:9/${NOT_FORWARDED_MARKER}-${Date.now()}`;
    const a = await rawExchange(t.balancerUrl, `GET ${target} HTTP/1.1\r\nHost: 127.0.0.1:9\r\nConnection: close\r\n\r\n`);
    if (refusedAs(a, false)) return [pass(this.name, `GET ${target} refused: ${a.said}`)];
    return [
      fail(this.name, `GET ${target} was not refused: ${a.said}${a.status === 502 || a.status === 503 || a.status === 504 ? " (it tried to forward it)" : ""}`),
    ];
  },
};

export const connect: Check = {
  name: "CONNECT",
  async run({ target: t }) {
    // A request behind the CONNECT: a tunnel, if one opened, would carry it.
    const a = await rawExchange(
      t.balancerUrl,
      `CONNECT 127.0.0.1:9 HTTP/1.1\r\nHost: 127.0.0.1:9\r\n\r\nGET /${NOT_FORWARDED_MARKER}-connect HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n`,
    );
    if (refusedAs(a, true)) return [pass(this.name, `CONNECT 127.0.0.1:9 refused: ${a.said}`)];
    return [fail(this.name, `CONNECT 127.0.0.1:9 was not refused: ${a.said}`)];
  },
};

/** Each case on a fresh connection must get a 4xx; then an ordinary request must still be served. */
async function hostile(name: string, balancerUrl: string, cases: Array<[string, string]>): Promise<CheckResult[]> {
  const seen: string[] = [];
  const notRefused: string[] = [];
  for (const [label, bytes] of cases) {
    const a = await rawExchange(balancerUrl, bytes);
    seen.push(`${label} ${a.status ?? a.said}`);
    if (a.status === undefined || a.status < 400 || a.status >= 500) notRefused.push(`${label}: ${a.said}`);
  }
  let after: string;
  try {
    after = `then GET / served by ${probePage(await request(`${balancerUrl}/`)).server}`;
  } catch (e) {
    return [fail(name, `${seen.join(", ")}; then the balancer no longer serves: ${e instanceof Error ? e.message : String(e)}`)];
  }
  if (notRefused.length) return [fail(name, `not refused: ${notRefused.join("; ")}; ${after}`)];
  return [pass(name, `${seen.join(", ")}; ${after}`)];
}

const head = (lines: string[]): string => `${lines.join("\r\n")}\r\n\r\n`;

/** Past the limits every HTTP server should keep (Apache's defaults: 8190 bytes a line, 100 fields). */
export const oversized: Check = {
  name: "oversized",
  run({ target: t }) {
    return hostile(this.name, t.balancerUrl, [
      ["16 KiB target", head([`GET /${"a".repeat(16384)} HTTP/1.1`, "Host: verify", "Connection: close"])],
      ["16 KiB header", head(["GET / HTTP/1.1", "Host: verify", `X-Verify: ${"a".repeat(16384)}`, "Connection: close"])],
      ["200 headers", head(["GET / HTTP/1.1", "Host: verify", ...Array.from({ length: 200 }, (_, i) => `X-Verify-${i}: v`), "Connection: close"])],
    ]);
  },
};

/** Heads RFC 9112 says to refuse with 400, the ones request smuggling is made of among them. */
export const malformed: Check = {
  name: "malformed",
  run({ target: t }) {
    return hostile(this.name, t.balancerUrl, [
      ["header without colon", head(["GET / HTTP/1.1", "Host: verify", "Not a header", "Connection: close"])],
      ["space before colon", head(["GET / HTTP/1.1", "Host : verify", "Connection: close"])],
      ["two Content-Length", `${head(["POST / HTTP/1.1", "Host: verify", "Content-Length: 3", "Content-Length: 4", "Connection: close"])}abcd`],
      ["bad chunk size", `${head(["POST / HTTP/1.1", "Host: verify", "Transfer-Encoding: chunked", "Connection: close"])}zz\r\nabc\r\n0\r\n\r\n`],
      ["control byte in target", head(["GET /a\x01b HTTP/1.1", "Host: verify", "Connection: close"])],
      ["binary request line", "\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n"],
    ]);
  },
};
