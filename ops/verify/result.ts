export type Verdict = "PASS" | "FAIL" | "SKIP";

/** One printed line: which check, how it went, and what verify saw. */
export interface CheckResult {
  check: string;
  verdict: Verdict;
  saw: string;
  /** Counts behind the line, for callers that want more than the text (the spread per server). */
  counts?: Record<string, number>;
}

export const pass = (check: string, saw: string, counts?: Record<string, number>): CheckResult => ({ check, verdict: "PASS", saw, counts });
export const fail = (check: string, saw: string, counts?: Record<string, number>): CheckResult => ({ check, verdict: "FAIL", saw, counts });
export const skip = (check: string, saw: string): CheckResult => ({ check, verdict: "SKIP", saw });

export function formatResult(r: CheckResult): string {
  return `${r.verdict.padEnd(4)}  ${r.check.padEnd(18)}  ${r.saw}`;
}
