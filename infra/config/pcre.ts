/**
 * Drupal's `trusted_host_patterns` are compiled by PHP's PCRE (Symfony wraps each
 * as `{pattern}i`), but we can only compile them here with JavaScript's RegExp, and
 * the two disagree: JavaScript accepts `[^]`, `\u{41}`, `\u0041`, `[]`, `\a`,
 * `x{,3}` and more that PCRE refuses or reads differently. No PCRE parser is among
 * our dependencies, so this is a whitelist instead: a small regex grammar whose
 * every construct compiles in both and means the same in both. Host patterns need
 * nothing beyond it.
 *
 *   pattern     := alternative ("|" alternative)*
 *   alternative := (assertion | atom quantifier?)*
 *   assertion   := "^" | "$" | "\b" | "\B"
 *   atom        := "." | literal | "\" (d D w W s S) | "\" metachar | class
 *                | "(" ("?:" | "?=" | "?!")? pattern ")"
 *   quantifier  := ("*" | "+" | "?" | "{" n "}" | "{" n ",}" | "{" n "," m "}") "?"?
 *   class       := "[" "^"? item+ "]"   (no "[" "{" "}" inside unless escaped)
 *
 * Literals are printable ASCII without spaces; metachars are \ ^ $ . | ? * + ( ) [ ] { } / -.
 * Unescaped braces only ever appear balanced (in quantifiers), as the `{...}`
 * delimiters PHP puts around the pattern require.
 */

const META = "\\^$.|?*+()[]{}/-";
const CLASS_ESCAPES = "dDwWsS";
/** PCRE's default limit for a repeat count. */
const MAX_REPEAT = 65535;
const MAX_DEPTH = 32;

class Refused extends Error {}

class Parser {
  private i = 0;
  private depth = 0;

  constructor(private readonly s: string) {}

  private fail(what: string): never {
    throw new Refused(`${what} at position ${this.i}`);
  }

  private peek(): string | undefined {
    return this.s[this.i];
  }

  parse(): void {
    this.pattern();
    if (this.i < this.s.length) this.fail(`unbalanced "${this.s[this.i]}"`);
  }

  private pattern(): void {
    this.alternative();
    while (this.peek() === "|") {
      this.i++;
      this.alternative();
    }
  }

  private alternative(): void {
    for (;;) {
      const c = this.peek();
      if (c === undefined || c === "|" || c === ")") return;
      if (c === "^" || c === "$") {
        this.i++;
        this.noQuantifier();
        continue;
      }
      if (c === "\\" && (this.s[this.i + 1] === "b" || this.s[this.i + 1] === "B")) {
        this.i += 2;
        this.noQuantifier();
        continue;
      }
      if (c === "(" && (this.s.startsWith("(?=", this.i) || this.s.startsWith("(?!", this.i))) {
        this.group(3);
        this.noQuantifier();
        continue;
      }
      this.atom();
      this.quantifier();
    }
  }

  private noQuantifier(): void {
    const c = this.peek();
    if (c === "*" || c === "+" || c === "?" || c === "{") this.fail(`a quantifier after an assertion`);
  }

  private group(open: number): void {
    if (++this.depth > MAX_DEPTH) this.fail(`groups nested deeper than ${MAX_DEPTH}`);
    this.i += open;
    this.pattern();
    if (this.peek() !== ")") this.fail(`an unclosed group`);
    this.i++;
    this.depth--;
  }

  private atom(): void {
    const c = this.peek() as string;
    if (c === "(") {
      if (this.s.startsWith("(?:", this.i)) return this.group(3);
      if (this.s[this.i + 1] === "?") this.fail(`the group syntax "${this.s.slice(this.i, this.i + 3)}"`);
      return this.group(1);
    }
    if (c === "[") return this.charClass();
    if (c === "\\") {
      this.escape(META + CLASS_ESCAPES);
      return;
    }
    if (c === ".") {
      this.i++;
      return;
    }
    if (META.includes(c) && c !== "/" && c !== "-") this.fail(`"${c}" where a literal or group was expected (escape it as \\${c})`);
    this.literal();
  }

  private literal(): string {
    const c = this.peek();
    if (c === undefined || c < "!" || c > "~") this.fail(`a character other than printable ASCII`);
    this.i++;
    return c;
  }

  /** A backslash and one of the allowed characters after it. */
  private escape(allowed: string): string {
    const next = this.s[this.i + 1];
    if (next === undefined || !allowed.includes(next)) {
      this.fail(`the escape "\\${next ?? ""}" (JavaScript and PCRE read many escapes differently; use \\d \\w \\s or an escaped metacharacter)`);
    }
    this.i += 2;
    return next;
  }

  private quantifier(): void {
    const c = this.peek();
    if (c === "*" || c === "+" || c === "?") {
      this.i++;
    } else if (c === "{") {
      const m = /^\{(\d{1,5})(,(\d{1,5})?)?\}/.exec(this.s.slice(this.i));
      if (!m) this.fail(`"{" that is not a quantifier {n}, {n,} or {n,m} (escape it as \\{)`);
      const min = Number(m[1]);
      const max = m[3] === undefined ? min : Number(m[3]);
      if (min > MAX_REPEAT || max > MAX_REPEAT || min > max) this.fail(`the repeat count "${m[0]}"`);
      this.i += m[0].length;
    } else {
      return;
    }
    if (this.peek() === "?") this.i++;
    const after = this.peek();
    if (after === "*" || after === "+" || after === "?" || after === "{") this.fail(`a second quantifier "${after}"`);
  }

  private charClass(): void {
    this.i++;
    if (this.peek() === "^") this.i++;
    let items = 0;
    for (;;) {
      const c = this.peek();
      if (c === undefined) this.fail(`an unclosed character class`);
      if (c === "]") {
        if (items === 0) this.fail(`an empty character class ("[]" and "[^]" differ between JavaScript and PCRE)`);
        this.i++;
        return;
      }
      if (c === "[" || c === "{" || c === "}") this.fail(`an unescaped "${c}" inside a character class (escape it as \\${c})`);
      if (c === "-" && items > 0 && this.s[this.i + 1] !== "]") this.fail(`"-" that is neither a range nor the first or last in its class`);
      if (c === "\\") {
        this.escape(META + CLASS_ESCAPES);
        items++;
        continue;
      }
      const from = this.literal();
      items++;
      if (this.peek() === "-" && this.s[this.i + 1] !== "]" && from !== "-") {
        this.i++;
        const to = this.peek();
        if (to === undefined || to === "\\" || to === "[" || to === "{" || to === "}") this.fail(`a range that does not end in a plain character`);
        this.literal();
        if (to < from) this.fail(`the range "${from}-${to}" out of order`);
      }
    }
  }
}

/**
 * Why the pattern is refused, or undefined when PCRE and JavaScript both compile it
 * to the same matcher.
 */
export function pcreProblem(pattern: string): string | undefined {
  if (pattern.length > 1000) return "it is longer than 1000 characters";
  try {
    new Parser(pattern).parse();
  } catch (e) {
    if (e instanceof Refused) return e.message;
    throw e;
  }
  try {
    new RegExp(pattern);
  } catch (e) {
    return e instanceof Error ? e.message : String(e);
  }
  return undefined;
}
