import { inspect } from "node:util";

/**
 * A value that must never be printed: the manager token. Anything that turns it
 * into text by accident (a template string, JSON, console.log, an assertion
 * message) gets "(secret)"; only `reveal()` gives the value, at the one place
 * that sends it.
 */
export class Secret {
  readonly #value: string;

  constructor(value: string) {
    this.#value = value;
  }

  reveal(): string {
    return this.#value;
  }

  toString(): string {
    return "(secret)";
  }

  toJSON(): string {
    return "(secret)";
  }

  [inspect.custom](): string {
    return "(secret)";
  }
}
