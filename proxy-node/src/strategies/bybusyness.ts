// Apache mod_lbmethod_bybusyness: fewest requests in flight wins; among equally
// busy members the byrequests accumulator decides, so weights still matter.
import type { Member } from "../members";
import type { Strategy } from "./strategy";

export class ByBusyness implements Strategy {
  readonly name = "bybusyness" as const;

  pick(candidates: readonly Member[]): Member | undefined {
    let best: Member | undefined;
    let total = 0;
    for (let i = 0; i < candidates.length; i++) {
      const m = candidates[i];
      m.lbstatus += m.lbfactor;
      total += m.lbfactor;
      if (best === undefined || m.busy < best.busy || (m.busy === best.busy && m.lbstatus > best.lbstatus)) best = m;
    }
    if (best) best.lbstatus -= total;
    return best;
  }

  stickyChosen(): void {
    // busy is counted by the proxy for every request, sticky or not.
  }
}
