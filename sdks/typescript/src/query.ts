/**
 * Queries over the local view with the Python SDK's semantics, which are SQLite's
 * `json_extract` comparisons (docs/protocol.md#queries): a missing field or `null` is SQL NULL
 * and matches no comparison (`eq null` / `ne null` test for it); booleans are 1 and 0; arrays
 * and objects compare as their compact JSON text; numbers sort before strings; strings compare
 * by UTF-8 bytes; in an order, NULL comes first ascending and last descending, then the id.
 */

import { compareCodePoints } from "./canonical.js";
import { ValidationError } from "./errors.js";
import type { Json, JsonObject } from "./document.js";
import { checkCollection } from "./mutation.js";

export type Scalar = string | number | boolean | null;
export type Operator = "eq" | "ne" | "lt" | "lte" | "gt" | "gte";
export type WhereClause = string | readonly [string, Operator | string, Scalar];
export type Where = Record<string, Scalar> | readonly WhereClause[];

const OPERATORS: readonly string[] = ["eq", "ne", "lt", "lte", "gt", "gte"];
const FIELD_PATTERN = /^[A-Za-z_][A-Za-z0-9_]{0,63}$/;

export interface Filter {
  field: string;
  op: Operator;
  value: Scalar;
}

export interface Query {
  collection: string;
  filters: readonly Filter[];
  order: string | null;
  descending: boolean;
  limit: number | null;
}

function field(name: string): string {
  if (!FIELD_PATTERN.test(name)) throw new ValidationError(`${JSON.stringify(name)} is not a queryable field name`, "where");
  return name;
}

/** A filter value written as text: JSON when it parses to a scalar, else the text itself. */
function scalar(text: string): Scalar {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return text;
  }
  if (typeof value === "number" && !Number.isFinite(value)) return text; // 1e400: not a double
  if (value !== null && typeof value === "object") {
    throw new ValidationError("filter values must be strings, numbers, booleans or null", "where");
  }
  return value as Scalar;
}

function filter(name: string, op: string, value: Scalar): Filter {
  if (!OPERATORS.includes(op)) throw new ValidationError(`operator ${JSON.stringify(op)} is not one of ${OPERATORS.join(", ")}`, "where");
  if (value === null && op !== "eq" && op !== "ne") throw new ValidationError("null can only be compared with eq or ne", "where");
  if (value !== null && typeof value === "object") {
    throw new ValidationError("filter values must be strings, numbers, booleans or null", "where");
  }
  return { field: field(name), op: op as Operator, value };
}

/** Parse `FIELD:OP:VALUE` (the value may contain colons). */
export function parseFilter(text: string): Filter {
  const first = text.indexOf(":");
  const second = first < 0 ? -1 : text.indexOf(":", first + 1);
  if (second < 0) throw new ValidationError(`where ${JSON.stringify(text)} must look like FIELD:OP:VALUE`, "where");
  return filter(text.slice(0, first), text.slice(first + 1, second), scalar(text.slice(second + 1)));
}

/** Validate a query: `where` is `{field: value}` (equality) or clauses; `orderBy` is `field` or `-field`. */
export function buildQuery(collection: string, where?: Where | null, orderBy?: string | null, limit?: number | null): Query {
  const clauses: WhereClause[] = Array.isArray(where)
    ? [...(where as readonly WhereClause[])]
    : Object.entries((where ?? {}) as Record<string, Scalar>).map(([name, value]) => [name, "eq", value] as const);
  if (limit != null && !(Number.isInteger(limit) && limit >= 1)) throw new ValidationError("limit must be at least 1", "limit");
  const descending = orderBy?.startsWith("-") ?? false;
  return {
    collection: checkCollection(collection),
    filters: clauses.map((c) => (typeof c === "string" ? parseFilter(c) : filter(c[0], c[1], c[2]))),
    order: orderBy ? field(descending ? orderBy.slice(1) : orderBy) : null,
    descending,
    limit: limit ?? null,
  };
}

type SqlValue = null | number | string;

/** A field as `json_extract` yields it. */
function sqlValue(value: Json | undefined): SqlValue {
  if (value === undefined || value === null) return null;
  if (typeof value === "boolean") return value ? 1 : 0;
  if (typeof value === "number" || typeof value === "string") return value;
  return JSON.stringify(value); // arrays and objects: their compact JSON text, keys as stored
}

/** SQLite's order of two non-NULL values: numbers before text, text by UTF-8 bytes. */
function compareSql(a: SqlValue, b: SqlValue): number {
  if (a === null || b === null) return a === b ? 0 : a === null ? -1 : 1;
  if (typeof a === "number" && typeof b === "number") return a === b ? 0 : a < b ? -1 : 1;
  if (typeof a === "number") return -1;
  if (typeof b === "number") return 1;
  return compareCodePoints(a, b);
}

function test(item: Filter, data: JsonObject): boolean {
  const actual = sqlValue(data[item.field]);
  if (item.value === null) return item.op === "eq" ? actual === null : actual !== null;
  if (actual === null) return false;
  const order = compareSql(actual, sqlValue(item.value));
  switch (item.op) {
    case "eq":
      return order === 0;
    case "ne":
      return order !== 0;
    case "lt":
      return order < 0;
    case "lte":
      return order <= 0;
    case "gt":
      return order > 0;
    case "gte":
      return order >= 0;
  }
}

/** Whether a live document matches every filter of `query`. */
export function matches(query: Query, data: JsonObject): boolean {
  return query.filters.every((item) => test(item, data));
}

/** The query's answer over `docs` (live documents of its collection): filtered, ordered, limited. */
export function runQuery<T extends { id: string; data: JsonObject }>(query: Query, docs: Iterable<T>): T[] {
  const direction = query.descending ? -1 : 1;
  const order = query.order;
  const found = [...docs].filter((doc) => matches(query, doc.data));
  found.sort((a, b) => {
    const byField = order === null ? 0 : compareSql(sqlValue(a.data[order]), sqlValue(b.data[order]));
    return direction * (byField !== 0 ? byField : compareCodePoints(a.id, b.id));
  });
  return query.limit === null ? found : found.slice(0, query.limit);
}
