// Apache mod_lbmethod_byrequests: every candidate's lbstatus grows by its
// lbfactor, the highest lbstatus wins (strictly greater, so the first in
// member order wins ties), and the winner pays back the sum of all lbfactors.
import type { Member } from "../members";
import type { Strategy } from "./strategy";

export class ByRequests implements Strategy {
  readonly name = "byrequests" as const;

  pick(candidates: readonly Member[]): Member | undefined {
    let best: Member | undefined;
    let total = 0;
    for (let i = 0; i < candidates.length; i++) {
      const m = candidates[i];
      m.lbstatus += m.lbfactor;
      total += m.lbfactor;
      if (best === undefined || m.lbstatus > best.lbstatus) best = m;
    }
    if (best) best.lbstatus -= total;
    return best;
  }

  // mod_proxy_balancer's default update for sticky requests: the same
  // accumulate-and-pay step, with the sticky member as the winner.
  stickyChosen(chosen: Member, usable: readonly Member[]): void {
    let total = 0;
    for (let i = 0; i < usable.length; i++) {
      const m = usable[i];
      m.lbstatus += m.lbfactor;
      total += m.lbfactor;
    }
    chosen.lbstatus -= total;
  }
}
