import { OutsideVantage } from "./outside";
import { CheckResult } from "./result";
import { VerifyTarget } from "./target";

export interface VerifyContext {
  target: VerifyTarget;
  /** A machine outside the managers' allowlist, when the operator gives one (--outside). */
  outside?: OutsideVantage;
}

/** One job: a name for its line if it throws, and what it checks. */
export interface Check {
  name: string;
  run(ctx: VerifyContext): Promise<CheckResult[]>;
}
