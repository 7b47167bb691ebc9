import { request } from "../http";
import { probePage } from "../probe";
import { fail, pass } from "../result";
import { Check } from "../context";

/**
 * A client cannot choose the address, host or scheme the web servers are told
 * about: its own X-Forwarded-* and Forwarded never reach them (Drupal behind a
 * trusted proxy builds links, password-reset mails included, from the first
 * X-Forwarded-Host). Addresses and names from the documentation ranges.
 */
export const forwardedHeaders: Check = {
  name: "forwarded headers",
  async run({ target: t }) {
    const page = probePage(
      await request(`${t.balancerUrl}/`, {
        headers: {
          "X-Forwarded-For": "192.0.2.66",
          "X-Forwarded-Host": "forged.invalid",
          "X-Forwarded-Proto": "https",
          Forwarded: "for=192.0.2.66;host=forged.invalid;proto=https",
        },
      }),
    );
    const leaks: string[] = [];
    if (page.clientIp.includes("192.0.2.66")) leaks.push(`X-Forwarded-For arrived as ${page.clientIp}`);
    if (String(page.forwardedHost).includes("forged.invalid")) leaks.push(`X-Forwarded-Host arrived as ${page.forwardedHost}`);
    if (page.forwarded !== null) leaks.push(`Forwarded arrived as ${page.forwarded}`);
    // The balancer may say which scheme the client used (proxy-node does), never pass on the client's own.
    const scheme = new URL(t.balancerUrl).protocol.replace(/:$/, "");
    const proto = page.forwardedProto ?? null;
    if (proto !== null && proto !== scheme) leaks.push(`X-Forwarded-Proto arrived as ${proto} for a ${scheme} request`);
    const host = new URL(t.balancerUrl).host;
    if (page.forwardedHost !== host) leaks.push(`${page.server} was told the host ${page.forwardedHost}, not ${host}`);
    if (leaks.length) return [fail(this.name, `forged headers sent to the balancer: ${leaks.join("; ")}`)];
    return [
      pass(
        this.name,
        `forged X-Forwarded-For/-Host/-Proto and Forwarded did not reach ${page.server}: it saw client ${page.clientIp}, host ${page.forwardedHost}, scheme ${page.forwardedProto ?? "(none)"}`,
      ),
    ];
  },
};
