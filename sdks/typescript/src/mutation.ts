/**
 * Checks of a local write with the server's own rules (`breakwater/core/mutation.py`), so a
 * write the server would refuse for its shape is refused at once and never queued.
 */

import { ValidationError } from "./errors.js";
import type { JsonObject, Op } from "./document.js";

const COLLECTION_PATTERN = /^[A-Za-z][A-Za-z0-9_]{0,63}$/;
const ID_PATTERN = /^[A-Za-z0-9_][A-Za-z0-9_.:@~+=-]{0,255}$/;
const FIELD_PATTERN = /^[^\x00-\x1f]{1,256}$/u;

/** The server's default limits (docs/protocol.md#limits). */
export interface Limits {
  maxDocumentBytes: number;
  maxDepth: number;
}

export const DEFAULT_LIMITS: Limits = { maxDocumentBytes: 256 * 1024, maxDepth: 32 };

export function checkCollection(name: string): string {
  if (typeof name !== "string" || !COLLECTION_PATTERN.test(name)) {
    throw new ValidationError(`collection ${JSON.stringify(name)} must match ${COLLECTION_PATTERN.source}`, "collection");
  }
  return name;
}

export function checkDocId(id: string): string {
  if (typeof id !== "string" || !ID_PATTERN.test(id)) {
    throw new ValidationError(`id ${JSON.stringify(id)} must match ${ID_PATTERN.source}`, "id");
  }
  return id;
}

/** Refuse JSON nested deeper than `maxDepth` (iteratively: no recursion limit to hit). */
function checkDepth(value: unknown, maxDepth: number): void {
  const stack: [object, number][] = [[value as object, 1]];
  while (stack.length > 0) {
    const [node, depth] = stack.pop() as [object, number];
    const children = Object.values(node);
    if (depth > maxDepth || (children.length > 0 && depth === maxDepth)) {
      throw new ValidationError(`document is nested deeper than ${maxDepth} levels`);
    }
    for (const child of children) {
      if (child !== null && typeof child === "object") stack.push([child as object, depth + 1]);
    }
  }
}

function checkValues(value: unknown): void {
  const stack: unknown[] = [value];
  while (stack.length > 0) {
    const item = stack.pop();
    if (typeof item === "number" && !Number.isFinite(item)) throw new ValidationError("NaN and Infinity are not JSON", "data");
    if (item === undefined || typeof item === "function" || typeof item === "bigint" || typeof item === "symbol") {
      throw new ValidationError(`a ${typeof item} is not a JSON value`, "data");
    }
    if (item !== null && typeof item === "object") stack.push(...Object.values(item));
  }
}

/** Validate a write's data for `op`: an object of JSON values, within size and depth. */
export function checkWrite(op: Op, data: JsonObject | null, limits: Limits): void {
  if (op === "delete") return;
  if (data === null || typeof data !== "object" || Array.isArray(data)) {
    throw new ValidationError("a document must be a JSON object", "data");
  }
  for (const name of Object.keys(data)) {
    if (!FIELD_PATTERN.test(name)) throw new ValidationError(`field name ${JSON.stringify(name)} is empty, too long or has control chars`);
  }
  checkDepth(data, limits.maxDepth);
  checkValues(data);
  const size = new TextEncoder().encode(JSON.stringify(data)).length;
  if (size > limits.maxDocumentBytes) {
    throw new ValidationError(`document is ${size} bytes; the limit is ${limits.maxDocumentBytes}`, "data");
  }
  if (op === "increment") {
    if (Object.keys(data).length === 0) throw new ValidationError("increment needs at least one field", "data");
    for (const [name, amount] of Object.entries(data)) {
      if (typeof amount !== "number") throw new ValidationError(`increment of ${JSON.stringify(name)} must be a number`, "data");
    }
  }
}
