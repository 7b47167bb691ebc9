import * as crypto from "node:crypto";
import { request } from "../http";
import { fail, pass, skip } from "../result";
import { Check } from "../context";
import { Secret } from "../secret";
import { engineOf, VerifyTarget } from "../target";

interface Manager {
  label: string;
  url: string;
  /** Where a GET shows something (proxy-node's API needs the token there too). */
  page: string;
  /** proxy-node's takes a token as well as the allowlist; Apache's has only the allowlist. */
  token: boolean;
}

export function managers(t: VerifyTarget): Manager[] {
  const out: Manager[] = [];
  if (engineOf(t) === "apache" && t.balancerManagerUrl)
    out.push({ label: "balancer-manager", url: t.balancerManagerUrl, page: t.balancerManagerUrl, token: false });
  if (t.proxyNodeManagerUrl) {
    const label = engineOf(t) === "apache" ? "proxy-node agent's manager" : "proxy-node manager";
    out.push({ label, url: t.proxyNodeManagerUrl, page: `${t.proxyNodeManagerUrl}/api/members`, token: true });
  }
  return out;
}

const refused = (status: number): boolean => status === 401 || status === 403;

/**
 * proxy-node's manager without the token, with a wrong one, and a change
 * without one: each refused (401; a 403 means the allowlist refused this
 * machine first, so the token itself was not reached from here). The change
 * names a route no member has, so a manager that wrongly took it changes nothing.
 * Apache's balancer-manager has no token at all: the allowlist is all it has.
 */
export const managerToken: Check = {
  name: "manager token",
  async run({ target: t }) {
    const m = managers(t).find((x) => x.token);
    if (!m) return [skip(this.name, "proxy-node's manager is not published for this stack")];
    const wrong = `verify-wrong-${crypto.randomBytes(8).toString("hex")}`;
    const none = await request(m.page);
    const bad = await request(m.page, { headers: { authorization: `Bearer ${wrong}` } });
    const change = await request(`${m.url}/api/members/verify-no-such-route`, {
      method: "POST",
      body: '{"status":"disabled"}',
      headers: { "content-type": "application/json" },
    });
    const seen = `no token ${none.status}, a wrong token ${bad.status}, a change without token ${change.status}`;
    if (![none, bad, change].every((r) => refused(r.status))) return [fail(this.name, `${m.label} ${m.url} let a request without the right token in: ${seen}`)];
    // All 403: the allowlist refused this machine before any token was asked, so the token check itself was not seen.
    if ([none, bad, change].every((r) => r.status === 403))
      return [
        skip(this.name, `${m.label} ${m.url}: ${seen}: the allowlist refused this machine first, so whether the token is asked cannot be seen from here`),
      ];
    return [pass(this.name, `${m.label} ${m.url}: ${seen}`)];
  },
};

type Answer = "refused" | "let in" | "unknown";

/** 403 is the allowlist's answer; a 401 asks for the token, so the allowlist let the client in. */
function judge(status: number | undefined, withToken: boolean): Answer {
  if (status === undefined) return "unknown";
  if (status === 403) return "refused";
  if (status === 401 && withToken) return "unknown";
  return "let in";
}

/**
 * Only a client outside the allowlist can see that the allowlist refuses it.
 * From an allowed machine (the dev stack lets in the docker gateway through
 * which its published ports arrive) every manager answers, and verify cannot
 * tell an allowlist that holds from one opened to everyone: then the line is
 * SKIP, and `--outside <command>` asks from a machine outside it. The token
 * goes along, so the allowlist alone must refuse.
 */
export const managerAllowlist: Check = {
  name: "manager allowlist",
  async run({ target: t, outside }) {
    const list = managers(t);
    if (list.length === 0) return [skip(this.name, "no manager is published for this stack")];
    const token = (m: Manager): Secret | undefined => (m.token ? t.managerToken : undefined);
    const answers: Array<{ m: Manager; said: string; answer: Answer }> = [];
    for (const m of list) {
      const tok = token(m);
      if (outside) {
        const r = await outside.get(m.page, tok);
        answers.push({ m, said: `${r.said}${tok ? " with the token" : ""}`, answer: judge(r.status, tok !== undefined) });
      } else {
        const r = await request(m.page, tok ? { headers: { authorization: `Bearer ${tok.reveal()}` } } : {});
        answers.push({ m, said: `${r.status}${tok ? " with the token" : ""}`, answer: judge(r.status, tok !== undefined) });
      }
    }
    const seen = answers.map((a) => `${a.m.label} ${a.said}`).join(", ");
    if (outside) {
      if (answers.some((a) => a.answer === "let in"))
        return [fail(this.name, `from outside (${outside.command}): ${seen}: open to a client outside the allowlist`)];
      if (answers.every((a) => a.answer === "refused")) return [pass(this.name, `from outside (${outside.command}): ${seen}`)];
      return [
        skip(
          this.name,
          `from outside (${outside.command}): ${seen}: no answer that shows the allowlist (a network that blocks the port, or a command that does not reach the URL)`,
        ),
      ];
    }
    if (answers.every((a) => a.answer === "refused")) return [pass(this.name, `this machine is outside the allowlist and refused: ${seen}`)];
    return [
      skip(
        this.name,
        `this machine is let in (${seen}), so whether others are refused cannot be seen from here; --outside <command> checks from a machine outside the allowlist`,
      ),
    ];
  },
};
