import * as fs from "node:fs";
import * as path from "node:path";

/**
 * Figures measured while the suites run (times, counts). Printed at the end of
 * the run and kept in build/figures.json for the README; never asserted.
 */
const figures: Array<[string, number]> = [];

export function recordFigure(name: string, value: number): void {
  figures.push([name, Math.round(value * 10) / 10]);
}

export function writeFigures(): Array<[string, number]> {
  if (figures.length) {
    const dir = path.resolve(__dirname, "..", "..", "build");
    fs.mkdirSync(dir, { recursive: true });
    fs.writeFileSync(path.join(dir, "figures.json"), JSON.stringify({ at: new Date().toISOString(), figures }, null, 2));
  }
  return figures;
}
