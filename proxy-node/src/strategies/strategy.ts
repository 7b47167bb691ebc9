import type { Member } from "../members";
import type { LbMethod } from "../config";

/**
 * A balancing strategy picks among candidates the balancer already filtered
 * (usable, not draining, right standby tier). It knows nothing of stickiness.
 */
export interface Strategy {
  readonly name: LbMethod;
  pick(candidates: readonly Member[]): Member | undefined;
  /** Called when stickiness chose `chosen`, so counters stay fair (Apache does this for byrequests). */
  stickyChosen(chosen: Member, usable: readonly Member[]): void;
}
