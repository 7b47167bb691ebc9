// Counters kept as plain numbers on the hot path; text is only built when
// /metrics is scraped.
import type { Balancer } from "./balancer";

export class Metrics {
  requests = 0;
  inFlight = 0;
  refused = 0;
  retries = 0;
  noMember = 0;
  upstreamErrors = 0;
  upstreamTimeouts = 0;
  websockets = 0;
  /** Requests answered 503 without a member connection: the member's queue was full, or the wait too long. */
  queueRefused = { full: 0, timeout: 0 };
  /** Responses by status class, index 1..5. */
  byClass = [0, 0, 0, 0, 0, 0];
  reloads = 0;
  reloadFailures = 0;
  /** Whether this host holds the virtual address now; null for a balancer without a peer (no metric). */
  holdsVirtualAddress: () => boolean | null = () => null;

  countStatus(status: number): void {
    const c = (status / 100) | 0;
    if (c >= 1 && c <= 5) this.byClass[c]++;
  }

  render(b: Balancer, now: number): string {
    const lines: string[] = [];
    const head = (name: string, type: string, help: string): void => {
      lines.push(`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`);
    };
    head("proxy_node_requests_total", "counter", "Client requests received.");
    lines.push(`proxy_node_requests_total ${this.requests}`);
    head("proxy_node_responses_total", "counter", "Responses sent, by status class.");
    for (let c = 1; c <= 5; c++) lines.push(`proxy_node_responses_total{code="${c}xx"} ${this.byClass[c]}`);
    head("proxy_node_in_flight", "gauge", "Requests being proxied now.");
    lines.push(`proxy_node_in_flight ${this.inFlight}`);
    head("proxy_node_refused_total", "counter", "Requests refused before proxying (absolute-form, CONNECT, limits).");
    lines.push(`proxy_node_refused_total ${this.refused}`);
    head("proxy_node_retries_total", "counter", "Requests retried on another member.");
    lines.push(`proxy_node_retries_total ${this.retries}`);
    head("proxy_node_no_member_total", "counter", "Requests answered 503 because no member was usable.");
    lines.push(`proxy_node_no_member_total ${this.noMember}`);
    head("proxy_node_upstream_errors_total", "counter", "Failed attempts to reach a member.");
    lines.push(`proxy_node_upstream_errors_total ${this.upstreamErrors}`);
    head("proxy_node_upstream_timeouts_total", "counter", "Attempts that timed out.");
    lines.push(`proxy_node_upstream_timeouts_total ${this.upstreamTimeouts}`);
    head(
      "proxy_node_queue_refused_total",
      "counter",
      "Requests answered 503 because no member connection came free: queue full, or waited longer than timeouts.queueMs.",
    );
    lines.push(
      `proxy_node_queue_refused_total{reason="full"} ${this.queueRefused.full}`,
      `proxy_node_queue_refused_total{reason="timeout"} ${this.queueRefused.timeout}`,
    );
    head("proxy_node_websockets_total", "counter", "WebSocket upgrades passed through.");
    lines.push(`proxy_node_websockets_total ${this.websockets}`);
    const mem = process.memoryUsage();
    head("process_resident_memory_bytes", "gauge", "Resident set size.");
    lines.push(`process_resident_memory_bytes ${mem.rss}`);
    head("proxy_node_heap_used_bytes", "gauge", "V8 heap in use (a leak shows here first).");
    lines.push(`proxy_node_heap_used_bytes ${mem.heapUsed}`);
    head("proxy_node_reloads_total", "counter", "Config reloads, by result.");
    lines.push(`proxy_node_reloads_total{result="ok"} ${this.reloads}`, `proxy_node_reloads_total{result="refused"} ${this.reloadFailures}`);
    const holds = this.holdsVirtualAddress();
    if (holds !== null) {
      head("proxy_node_holds_virtual_address", "gauge", "1 if the virtual address is on one of this host's interfaces (clients reach this balancer).");
      lines.push(`proxy_node_holds_virtual_address ${holds ? 1 : 0}`);
    }
    const per: Array<[string, string, string, (m: Balancer["members"][number]) => number]> = [
      ["proxy_node_member_requests_total", "counter", "Requests sent to the member.", (m) => m.requests],
      ["proxy_node_member_errors_total", "counter", "Failed requests to the member.", (m) => m.errors],
      [
        "proxy_node_member_unreachable_total",
        "counter",
        "Requests failed (and resent when idempotent) because the member stopped accepting connections while they waited.",
        (m) => m.pool.unreachableFailures,
      ],
      ["proxy_node_member_bytes_in_total", "counter", "Bytes received from the member.", (m) => m.bytesIn],
      ["proxy_node_member_bytes_out_total", "counter", "Bytes sent to the member.", (m) => m.bytesOut],
      ["proxy_node_member_busy", "gauge", "Requests in flight to the member.", (m) => m.busy],
      ["proxy_node_member_lbfactor", "gauge", "Configured weight.", (m) => m.lbfactor],
      ["proxy_node_member_up", "gauge", "1 if the member takes requests now.", (m) => (m.usable(now) ? 1 : 0)],
    ];
    for (const [name, type, help, get] of per) {
      head(name, type, help);
      for (const m of b.members) lines.push(`${name}{balancer="${esc(b.name)}",route="${esc(m.route)}",state="${m.state(now)}"} ${get(m)}`);
    }
    return lines.join("\n") + "\n";
  }
}

function esc(s: string): string {
  return s.replace(/\\/g, "\\\\").replace(/"/g, '\\"').replace(/\n/g, "\\n");
}
