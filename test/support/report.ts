/**
 * Root hooks for every mocha run: at the end, the figures measured on the way and
 * the components that cannot be had on this machine, reported as not covered.
 */
import { UNOBTAINABLE } from "../../scripts/toolchain";
import { writeFigures } from "./figures";

export const mochaHooks = {
  afterAll(): void {
    const figures = writeFigures();
    if (figures.length) {
      console.log("\n  figures measured in this run (not asserted):");
      for (const [name, value] of figures) console.log(`    ${name.padEnd(64)} ${value}`);
    }
    console.log("\n  NOT COVERED on this machine (unobtainable here, see scripts/toolchain.ts):");
    for (const u of UNOBTAINABLE) console.log(`    - ${u.component}: ${u.error}\n      so ${u.consequence}`);
  },
};
