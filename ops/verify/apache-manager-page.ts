/** One worker row of Apache's balancer-manager page. */
export interface ApacheWorker {
  url: string;
  route: string;
  /** As Apache shows it: "Init Ok", "Init Dis", "Init Err", ... */
  status: string;
}

const text = (html: string): string =>
  html
    .replace(/<[^>]*>/g, "")
    .replace(/&amp;/g, "&")
    .replace(/&lt;/g, "<")
    .replace(/&gt;/g, ">")
    .trim();

function cells(row: string, tag: "th" | "td"): string[] {
  return [...row.matchAll(new RegExp(`<${tag}[^>]*>([\\s\\S]*?)</${tag}>`, "gi"))].map((m) => text(m[1]));
}

/**
 * The workers of every balancer on the page, read from the table whose header
 * has "Worker URL": columns found by their header, so the other columns may
 * come and go between Apache versions. Apache 2.4 has no machine-readable
 * form of this page.
 */
export function parseBalancerManager(html: string): ApacheWorker[] {
  const out: ApacheWorker[] = [];
  for (const table of html.split(/<table/i).slice(1)) {
    const rows = table.split(/<tr/i).slice(1);
    const header = rows.length ? cells(rows[0], "th") : [];
    const [u, r, s] = ["Worker URL", "Route", "Status"].map((h) => header.indexOf(h));
    if (u < 0 || s < 0) continue;
    for (const row of rows.slice(1)) {
      const c = cells(row, "td");
      if (c.length > s) out.push({ url: c[u], route: r >= 0 ? c[r] : "", status: c[s] });
    }
  }
  return out;
}

/** Taking requests, as nothing but "Init" and "Ok" says: not Dis(abled), Err(or), Stop(ped), Dr(ai)n, Stby, HcFl. */
export function workerHealthy(w: ApacheWorker): boolean {
  const words = w.status.split(/\s+/).filter(Boolean);
  return words.includes("Ok") && words.every((x) => x === "Init" || x === "Ok");
}
