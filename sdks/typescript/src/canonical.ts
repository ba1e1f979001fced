/**
 * The canonical JSON form (docs/protocol.md#canonical-json) and the byte order of UTF-8, as the
 * Python core computes them.
 *
 * Merge ties (two writes of one field with the same HLC; one increment seen with two amounts)
 * compare canonical bytes, and versions hash them: compact, keys sorted by code point, strings
 * and numbers as RFC 8785 writes them, which is what `JSON.stringify` does (`1.0` is `1`,
 * `1e21` is `1e+21`). The golden vectors of sdks/vectors/canonical.json hold both sides to it.
 */

/** Compare two strings as their UTF-8 bytes compare (code point order, not UTF-16 units). */
export function compareCodePoints(a: string, b: string): number {
  const length = Math.min(a.length, b.length);
  for (let i = 0; i < length; i++) {
    const x = a.charCodeAt(i);
    const y = b.charCodeAt(i);
    if (x !== y) {
      // A surrogate (U+D800-DFFF) encodes a code point above U+FFFF: it sorts after the BMP.
      const xs = x >= 0xd800 && x <= 0xdfff;
      const ys = y >= 0xd800 && y <= 0xdfff;
      if (xs !== ys) return xs ? 1 : -1;
      return x - y;
    }
  }
  return a.length - b.length;
}

/** Compact JSON with object keys sorted by code point. */
export function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(",")}]`;
  if (value !== null && typeof value === "object") {
    const entries = Object.entries(value as Record<string, unknown>)
      .filter(([, v]) => v !== undefined)
      .sort(([a], [b]) => compareCodePoints(a, b));
    return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonicalJson(v)}`).join(",")}}`;
  }
  return JSON.stringify(value);
}
