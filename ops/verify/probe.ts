import { Reply } from "./http";

/**
 * The probe app's answer on `/` (templates/web/probe/index.php): which web
 * server answered, and what it was told about the client. Verify needs it to
 * see where a request went; a Drupal site has no such page.
 */
export interface ProbePage {
  server: string;
  route: string;
  visits: number;
  user: string | null;
  session: string;
  /** X-Forwarded-For as the web server received it (else the peer's address). */
  clientIp: string;
  forwardedHost: string | null;
  /** X-Forwarded-Proto as the web server received it: the balancer's, or none. */
  forwardedProto: string | null;
  forwarded: string | null;
  /** The scheme the probe believes the client used (the balancer's X-Forwarded-Proto, from the balancer only). */
  scheme?: string;
}

export function probePage(r: Reply): ProbePage {
  if (r.status !== 200) throw new Error(`expected 200 from the probe app, got ${r.status}: ${r.body.slice(0, 200)}`);
  let page: Partial<ProbePage>;
  try {
    page = JSON.parse(r.body) as Partial<ProbePage>;
  } catch {
    throw new Error(`not the probe app's page (verify needs app: probe): ${r.body.slice(0, 120)}`);
  }
  if (typeof page.server !== "string" || typeof page.route !== "string" || typeof page.visits !== "number") {
    throw new Error(`not the probe app's page (verify needs app: probe): ${r.body.slice(0, 120)}`);
  }
  return page as ProbePage;
}
