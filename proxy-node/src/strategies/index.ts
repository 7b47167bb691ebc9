import type { LbMethod } from "../config";
import type { Strategy } from "./strategy";
import { ByRequests } from "./byrequests";
import { ByBusyness } from "./bybusyness";
import { ByTraffic } from "./bytraffic";

export type { Strategy } from "./strategy";

export function createStrategy(name: LbMethod): Strategy {
  switch (name) {
    case "byrequests":
      return new ByRequests();
    case "bybusyness":
      return new ByBusyness();
    case "bytraffic":
      return new ByTraffic();
  }
}
