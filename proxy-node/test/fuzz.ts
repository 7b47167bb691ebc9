// What the two differential checks (node's llhttp, HAProxy) generate their
// hostile requests with: one seeded PRNG and one kind of byte-level damage.

/** mulberry32: a small seeded PRNG, the same sequence everywhere; `next(n)` is an integer in [0, n). */
export function prng(seed: number): (n: number) => number {
  let a = seed >>> 0;
  return (n) => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return Math.floor((((t ^ (t >>> 14)) >>> 0) / 4294967296) * n);
  };
}

/** `edits` single-byte edits at random places: insert a byte of `alphabet`, delete one, or replace one. */
export function damage(text: string, edits: number, rnd: (n: number) => number, alphabet: readonly string[]): string {
  for (let e = 0; e < edits; e++) {
    const at = rnd(text.length + 1);
    const op = rnd(3);
    // A byte is drawn only when one is written, so a seed gives the same corpus as it always did.
    if (op === 0) text = text.slice(0, at) + alphabet[rnd(alphabet.length)] + text.slice(at);
    else if (op === 1) text = text.slice(0, at) + text.slice(at + 1);
    else text = text.slice(0, at) + alphabet[rnd(alphabet.length)] + text.slice(at + 1);
  }
  return text;
}
