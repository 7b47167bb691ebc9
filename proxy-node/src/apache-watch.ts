// Agent mode: operators may change a member in Apache's own balancer-manager
// page, which tells nobody, and a reload of Apache resets that page's flags to
// its config's. The watcher reads the page every interval: it reports
// administrative changes (D, N, S, H) it did not write itself, so app.ts
// carries them to a peer balancer; and it sets proxy-node's statuses again in
// an Apache that restarted (a new nonce).
//
// The rule that keeps health out of it: health checks write Apache's HcFl flag
// (ApacheAgent.setHealth), never D, and the watcher reads only D, N, S and H.
// So each balancer's own checks stay its own (never carried), a recovery never
// clears an operator's D, and a D in the page is always an operator's.
import type { ApacheAgent } from "./agent";
import { sameWorker } from "./agent";
import type { MemberStatus } from "./config";
import type { Logger } from "./log";
import type { Member } from "./members";

type AdminFlag = "D" | "N" | "S" | "H";

/** Apache's flags for one proxy-node status; every admin flag is set or cleared, so the result does not depend on what was there. */
export function flagsFor(status: MemberStatus): Record<AdminFlag, 0 | 1> {
  return {
    D: status === "disabled" ? 1 : 0,
    N: status === "draining" ? 1 : 0,
    S: status === "stopped" ? 1 : 0,
    H: status === "standby" ? 1 : 0,
  };
}

/** Apache's status words ("Init Drn Dis", "Init Stby Ok", "Init Ok HcFl") as a proxy-node status; the strongest flag wins. */
export function statusFromWords(text: string): MemberStatus {
  const words = new Set(text.split(/\s+/));
  if (words.has("Stop")) return "stopped";
  if (words.has("Dis")) return "disabled";
  if (words.has("Drn")) return "draining";
  if (words.has("Stby")) return "standby";
  return "enabled";
}

export interface WorkerRow {
  url: string;
  /** The Status cell as Apache writes it, e.g. "Init Dis". */
  status: string;
}

// Every word Apache 2.4's ap_proxy_parse_wstatus writes, plus "Ok".
const STATUS_WORDS = new Set(["Init", "Ign", "Drn", "Gen", "Shut", "Dis", "Stop", "Err", "Stby", "Spar", "Free", "HcFl", "Ok", "Unk"]);

const cellText = (html: string): string =>
  html
    .replace(/<[^>]*>/g, "")
    .replace(/&amp;/g, "&")
    .trim();

/**
 * Worker rows of `balancer` on the balancer-manager page, with the page's
 * nonce. A row is found by its worker link; its status is the cell made only
 * of Apache's status words (columns differ between 2.4 releases, the words do not).
 */
export function parseWorkerRows(html: string, balancer: string): { nonce: string; rows: WorkerRow[] } | null {
  const link = /[?&](?:amp;)?b=([^&"'\s]+)&(?:amp;)?w=([^&"'\s]+)&(?:amp;)?nonce=([^&"'\s]+)/;
  let nonce = "";
  const rows: WorkerRow[] = [];
  for (const row of html.split(/<tr[\s>]/i).slice(1)) {
    const m = link.exec(row);
    if (!m || safeDecode(m[1]) !== balancer) continue;
    nonce = safeDecode(m[3]);
    const cells = [...row.matchAll(/<td[^>]*>([\s\S]*?)<\/td>/gi)].map((c) => cellText(c[1]));
    const status = cells.find((c) => c !== "" && c.split(/\s+/).every((w) => STATUS_WORDS.has(w)));
    if (status !== undefined) rows.push({ url: safeDecode(m[2]), status });
  }
  return nonce ? { nonce, rows } : null;
}

function safeDecode(s: string): string {
  try {
    return decodeURIComponent(s);
  } catch {
    return s;
  }
}

export class ApacheWatcher {
  private timer: NodeJS.Timeout | null = null;
  private polling = false;
  /** Apache's nonce when last read: a new one means a new Apache (restarted), whose statuses came from its config. */
  private nonce: string | null = null;
  /**
   * Status per member URL as Apache has it, as far as we know: as last read,
   * or as last written by us (Apache answered the write, so the page shows it
   * from then on). A read that differs is someone else's change.
   */
  private seen = new Map<string, MemberStatus>();
  /**
   * Per member URL, bumped when one of our writes starts and when it ends. A
   * read that overlapped a write may show the page before or after it, so it
   * says nothing about that member: compared with `seen`, a read from before
   * our write would pass for an operator undoing it.
   */
  private writes = new Map<string, number>();
  private inFlight = new Map<string, number>();
  /**
   * Whether proxy-node's statuses are the ones to keep when Apache shows
   * others on a first read: true once adopted from a peer, and after the
   * first read (from then on every change passes through here). False on a
   * lone start, where Apache may have kept an operator's change while
   * proxy-node was down.
   */
  private authoritative = false;

  constructor(
    private agent: ApacheAgent,
    private members: () => readonly Member[],
    /**
     * m.status was set from Apache's page. `carry`: an operator changed it
     * there (send it to the peers); false when proxy-node took Apache's state on start.
     */
    private onPageChange: (m: Member, carry: boolean) => void,
    private logger: Logger,
    readonly intervalMs = 1500,
  ) {}

  markAuthoritative(): void {
    this.authoritative = true;
  }

  isAuthoritative(): boolean {
    return this.authoritative;
  }

  start(): void {
    if (this.timer) return;
    this.timer = setInterval(() => void this.poll(), this.intervalMs);
    this.timer.unref();
    void this.poll();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }

  /** Writes an administrative change to Apache, remembered so a later read does not take it for an operator's. */
  async apply(m: Member, change: { status?: MemberStatus; lbfactor?: number; route?: string }): Promise<{ ok: boolean; error?: string }> {
    const fields: Record<string, string> = {};
    if (change.lbfactor !== undefined) fields.w_lf = String(change.lbfactor);
    if (change.route !== undefined) fields.w_wr = change.route;
    const flags = change.status !== undefined ? flagsFor(change.status) : {};
    const bump = (n: number): void => {
      this.writes.set(m.url, (this.writes.get(m.url) ?? 0) + 1);
      this.inFlight.set(m.url, (this.inFlight.get(m.url) ?? 0) + n);
    };
    bump(1);
    const ok = await this.agent.setFlags(m.url, flags, fields);
    bump(-1);
    if (ok && change.status !== undefined) this.seen.set(m.url, change.status);
    return ok ? { ok } : { ok, error: "Apache's balancer-manager did not take it (see proxy-node's log)" };
  }

  async poll(): Promise<void> {
    if (this.polling) return;
    this.polling = true;
    try {
      await this.read();
    } catch (e) {
      // Apache down or restarting: the next read will tell.
      this.logger.event("warn", "cannot read Apache's balancer-manager", { error: (e as Error).message });
    } finally {
      this.polling = false;
    }
  }

  private async read(): Promise<void> {
    const writesBefore = new Map(this.writes);
    const parsed = parseWorkerRows(await this.agent.readPage(), this.agent.balancer);
    if (!parsed) throw new Error(`no balancer ${this.agent.balancer} on the page`);
    const rowFor = (m: Member): WorkerRow | undefined => {
      const quiet = (this.inFlight.get(m.url) ?? 0) === 0 && this.writes.get(m.url) === writesBefore.get(m.url);
      return quiet ? parsed.rows.find((r) => sameWorker(r.url, m.url)) : undefined;
    };
    if (parsed.nonce !== this.nonce) {
      // A first read, or an Apache that restarted under us: its statuses are
      // its config's, not an operator's, so they are never carried.
      const restarted = this.nonce !== null;
      this.nonce = parsed.nonce;
      for (const m of this.members()) {
        const row = rowFor(m);
        if (!row) continue;
        const st = statusFromWords(row.status);
        this.seen.set(m.url, st);
        if (st === m.status) continue;
        if (this.authoritative || restarted) {
          this.logger.event("info", "Apache's status differs from proxy-node's; setting proxy-node's", { route: m.route, apache: st, status: m.status });
          void this.apply(m, { status: m.status });
        } else {
          this.logger.event("info", "taking Apache's status", { route: m.route, status: st });
          m.status = st;
          this.onPageChange(m, false);
        }
      }
      this.authoritative = true;
      return;
    }
    for (const m of this.members()) {
      const row = rowFor(m);
      if (!row) continue;
      const st = statusFromWords(row.status);
      const before = this.seen.get(m.url);
      this.seen.set(m.url, st);
      if (st === before || st === m.status) continue;
      this.logger.event("info", "member changed in Apache's balancer-manager", { route: m.route, from: m.status, status: st });
      m.status = st;
      this.onPageChange(m, true);
    }
  }
}
