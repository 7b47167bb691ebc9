// Apache mod_lbmethod_bytraffic: least bytes (in + out) weighted by lbfactor wins;
// the first in member order wins ties.
import type { Member } from "../members";
import type { Strategy } from "./strategy";

export class ByTraffic implements Strategy {
  readonly name = "bytraffic" as const;

  pick(candidates: readonly Member[]): Member | undefined {
    let best: Member | undefined;
    let min = 0;
    for (let i = 0; i < candidates.length; i++) {
      const m = candidates[i];
      const traffic = Math.floor(m.bytesIn / m.lbfactor) + Math.floor(m.bytesOut / m.lbfactor);
      if (best === undefined || traffic < min) {
        best = m;
        min = traffic;
      }
    }
    return best;
  }

  stickyChosen(): void {
    // traffic is counted by the proxy for every request.
  }
}
