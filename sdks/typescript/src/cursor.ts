/**
 * Feed cursors: opaque strings that encode a version vector `{origin: seq}` (docs/protocol.md#cursors).
 * The SDK stores the node's cursors as they come; it decodes them only to tell which
 * acknowledged mutations it has pulled back, so it can let them leave the outbox.
 */

import { canonicalJson } from "./canonical.js";
import { ValidationError } from "./errors.js";

export type VersionVector = Record<string, number>;

const PREFIX = "c1.";
const ORIGIN_PATTERN = /^[A-Za-z0-9_.~:-]{1,64}$/;
const MAX_ORIGINS = 256;

function base64url(text: string): string {
  const bytes = new TextEncoder().encode(text);
  return btoa(String.fromCharCode(...bytes)).replaceAll("+", "-").replaceAll("/", "_").replace(/=+$/, "");
}

const UTF8 = new TextDecoder("utf-8", { fatal: true });

function fromBase64url(body: string): string {
  const binary = atob(body.replaceAll("-", "+").replaceAll("_", "/"));
  const bytes = new Uint8Array(binary.length);
  for (let i = 0; i < binary.length; i++) bytes[i] = binary.charCodeAt(i);
  return UTF8.decode(bytes);
}

/**
 * The last cursors decoded, each already validated: a write compares and decodes the same few
 * cursors (the device's, the push answer's, the realtime echo's) several times.
 */
const decoded = new Map<string, Readonly<VersionVector>>();
const DECODED_KEPT = 8;

/** The cursor for `vector` (origins sorted, so equal vectors give equal cursors). */
export function encodeCursor(vector: VersionVector): string {
  return Object.keys(vector).length === 0 ? "" : PREFIX + base64url(canonicalJson(vector));
}

/** The vector inside `cursor` (the caller's own copy); a malformed cursor is a `ValidationError`. */
export function decodeCursor(cursor: string | null | undefined): VersionVector {
  if (!cursor) return {};
  let vector = decoded.get(cursor);
  if (vector === undefined) {
    vector = parseCursor(cursor);
    if (decoded.size >= DECODED_KEPT) decoded.clear();
    decoded.set(cursor, vector);
  }
  return { ...vector };
}

function parseCursor(cursor: string): VersionVector {
  if (!cursor.startsWith(PREFIX) || cursor.length > 16_384) {
    throw new ValidationError("cursor is not a Breakwater cursor", "cursor");
  }
  let raw: unknown;
  try {
    raw = JSON.parse(fromBase64url(cursor.slice(PREFIX.length)));
  } catch {
    throw new ValidationError("cursor is corrupt", "cursor");
  }
  if (raw === null || typeof raw !== "object" || Array.isArray(raw)) {
    throw new ValidationError("cursor is corrupt", "cursor");
  }
  const entries = Object.entries(raw);
  const valid = (origin: string, seq: unknown): boolean =>
    ORIGIN_PATTERN.test(origin) && typeof seq === "number" && Number.isInteger(seq) && seq >= 0 && seq < 2 ** 63;
  if (entries.length > MAX_ORIGINS || !entries.every(([origin, seq]) => valid(origin, seq))) {
    throw new ValidationError("cursor is corrupt", "cursor");
  }
  return raw as VersionVector;
}

/** `vector` moved past every `[origin, seq]` of `changes`. */
export function advance(vector: VersionVector, changes: Iterable<readonly [string, number]>): VersionVector {
  const result = { ...vector };
  for (const [origin, seq] of changes) {
    if (seq > (result[origin] ?? 0)) result[origin] = seq;
  }
  return result;
}

/** The pointwise maximum of two vectors. */
export function mergeVectors(left: VersionVector, right: VersionVector): VersionVector {
  return advance(left, Object.entries(right));
}

/** Whether the change `(origin, seq)` is at or behind `vector`. */
export function covers(vector: VersionVector, origin: string, seq: number): boolean {
  return (vector[origin] ?? 0) >= seq;
}
