import { request } from "../http";
import { CheckResult, fail, pass, skip } from "../result";
import { Check } from "../context";
import { webServers } from "../target";

/** Each web server answers its health page on its own published URL; one line each. */
export const direct: Check = {
  name: "direct",
  async run({ target: t }) {
    const servers = webServers(t);
    if (servers.length === 0) return [skip(this.name, "the stack outputs name no web servers")];
    const out: CheckResult[] = [];
    for (const w of servers) {
      const check = `direct ${w.name}`;
      if (!w.url) {
        out.push(skip(check, "no direct URL published for it"));
        continue;
      }
      try {
        const r = await request(`${w.url}/health.php`);
        const body = r.body.trim();
        if (r.status === 200 && body === `ok ${w.name}`) out.push(pass(check, `${w.url}/health.php answered 200 "${body}"`));
        else out.push(fail(check, `${w.url}/health.php answered ${r.status} "${body.slice(0, 80)}", not 200 "ok ${w.name}"`));
      } catch (e) {
        out.push(fail(check, `${w.url}/health.php: ${e instanceof Error ? e.message : String(e)}`));
      }
    }
    return out;
  },
};
