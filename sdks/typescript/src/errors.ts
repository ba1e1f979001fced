/**
 * The SDK's errors. One root, `BreakwaterError`; whether retrying can help belongs to the type:
 *
 *     BreakwaterError          a problem answer (RFC 9457) or a refused input; `type` is its token
 *     ├── ValidationError      input the protocol refuses (permanent: fix the call)
 *     ├── CursorExpired        410 on a cursor: the device resyncs from scratch, keeping its outbox
 *     └── EndpointUnavailable  network error, timeout, 5xx or 429 (transient: back off, fail over)
 *     ClientClosed             the client was closed (not a BreakwaterError: a programming error)
 *     StaleState               other tabs kept committing while this tab's operation tried to (transient: try again)
 */

/** A problem object as the node sends it (docs/protocol.md#errors). */
export interface Problem {
  type: string;
  title?: string;
  status?: number;
  detail?: string;
  [extension: string]: unknown;
}

export class BreakwaterError extends Error {
  readonly problem: Problem;

  constructor(problem: Problem) {
    super(problem.detail ?? problem.title ?? problem.type);
    this.name = new.target.name;
    this.problem = problem;
  }

  get type(): string {
    return this.problem.type;
  }
}

export class ValidationError extends BreakwaterError {
  constructor(detail: string, field?: string) {
    super({ type: "validation_error", title: "Invalid input", status: 400, detail, ...(field ? { field } : {}) });
  }
}

export class CursorExpired extends BreakwaterError {}

export class EndpointUnavailable extends BreakwaterError {
  /** Seconds the node asked to wait (`Retry-After`), when it said. */
  readonly retryAfter: number | undefined;

  constructor(
    detail: string,
    retryAfter?: number,
    /** The refusal's own type when the node said (e.g. `region_standby`, `draining`). */
    readonly reason?: string,
  ) {
    super({ type: "unavailable", title: "Endpoint unavailable", detail });
    this.retryAfter = retryAfter;
  }
}

export class ClientClosed extends Error {
  constructor() {
    super("the client is closed");
    this.name = "ClientClosed";
  }
}

/**
 * Another tab committed to the shared storage since this tab read its cached state, so this
 * tab's commit was not made; the store runs the operation again on the reloaded state and
 * rejects with this only when that kept happening (docs/adr/0048-view-rows-for-pending-documents.md).
 */
export class StaleState extends Error {
  constructor() {
    super("other tabs kept committing to the shared storage while this tab tried to; try again");
    this.name = "StaleState";
  }
}

/** The error for a non-2xx answer: transient ones are `EndpointUnavailable`. */
export function errorForProblem(status: number, problem: Partial<Problem>, retryAfter?: number): BreakwaterError {
  const type = typeof problem.type === "string" ? problem.type : `http_${status}`;
  if (status >= 500 || status === 429) {
    return new EndpointUnavailable(`${status} ${type}: ${problem.detail ?? ""}`.trim(), retryAfter, type);
  }
  const full: Problem = { ...problem, type, status };
  return status === 410 ? new CursorExpired(full) : new BreakwaterError(full);
}
