/**
 * The sync calls of the wire protocol (docs/protocol.md#push, #pull) over `fetch`. Network
 * errors, timeouts, 5xx and 429 become `EndpointUnavailable`; other problem answers become a
 * `BreakwaterError` of their `type` (410 a `CursorExpired`). An abort by the caller's `signal`
 * rethrows its reason untouched, so the sync loop can tell "woken" from "failed".
 */

import { EndpointUnavailable, errorForProblem } from "./errors.js";
import type { Problem } from "./errors.js";
import type { VersionVector } from "./cursor.js";
import type { Directory } from "./endpoints.js";
import type { State } from "./document.js";
import type { PulledChange } from "./local-store.js";

export type Fetch = typeof fetch;
/** Headers for every request; with `renew`, a request refused with 401 is retried once after it says yes. */
export interface HeadersProvider {
  (): Record<string, string> | Promise<Record<string, string>>;
  renew?: (used: Record<string, string>) => Promise<boolean>;
}

export interface PushResult {
  mutation_id: string;
  status: "applied" | "duplicate" | "rejected";
  origin?: string;
  seq?: number;
  /** With `include_state=true`, on an `applied` result: the document's state right after the change. */
  state?: State;
  error?: Problem;
}

export interface PushAnswer {
  results: PushResult[];
  hlc?: string;
  /** With `include_state=true`: as in a pull. */
  stable?: VersionVector;
  /** Over the WebSocket: an applied result without `state` has the state the device derives from its own mutation. */
  derive?: boolean;
}

export interface PullPage {
  changes: PulledChange[];
  cursor: string;
  has_more: boolean;
  stable?: VersionVector;
  hlc?: string;
}

/** An HTTP answer, read whole. */
interface Answer {
  status: number;
  ok: boolean;
  retryAfter: string | null;
  text: string;
}

export class NodeApi {
  /** Milliseconds the last call took. */
  lastLatency = 0;

  constructor(
    readonly baseUrl: string,
    private readonly fetchFn: Fetch,
    private readonly timeoutMs: number,
    private readonly headers?: HeadersProvider,
    /** Aborts every call of this API (the client is closing). */
    private readonly stop?: AbortSignal,
    private readonly now: () => number = () => performance.now(),
  ) {}

  private async call(method: string, path: string, body?: unknown, extraMs = 0, callSignal?: AbortSignal): Promise<unknown> {
    const signals = [callSignal, this.stop].filter((s): s is AbortSignal => s !== undefined);
    const signal = signals.length > 0 ? AbortSignal.any(signals) : undefined;
    const used = this.headers ? await this.headers() : {};
    const first = await this.send(method, path, used, body, extraMs, signal);
    // Once: a second 401 is the answer.
    if (first.status === 401 && this.headers?.renew && (await this.headers.renew(used))) {
      return this.answer(await this.send(method, path, await this.headers(), body, extraMs, signal));
    }
    return this.answer(first);
  }

  private async send(
    method: string,
    path: string,
    authorization: Record<string, string>,
    body: unknown,
    extraMs: number,
    signal: AbortSignal | undefined,
  ): Promise<Answer> {
    const headers: Record<string, string> = { ...authorization };
    if (body !== undefined) headers["content-type"] = "application/json";
    const timeout = AbortSignal.timeout(this.timeoutMs + extraMs);
    const started = this.now();
    let response: Response;
    let text: string;
    try {
      response = await this.fetchFn(`${this.baseUrl}${path}`, {
        method,
        headers,
        ...(body === undefined ? {} : { body: JSON.stringify(body) }),
        signal: signal ? AbortSignal.any([signal, timeout]) : timeout,
      });
      text = await response.text();
    } catch (error) {
      if (signal?.aborted) throw signal.reason;
      throw new EndpointUnavailable(`${this.baseUrl}: ${String(error)}`);
    }
    this.lastLatency = this.now() - started;
    return { status: response.status, ok: response.ok, retryAfter: response.headers.get("retry-after"), text };
  }

  /** The decoded body of a 2xx answer, or the error for any other. */
  private answer(response: Answer): unknown {
    let parsed: unknown = null;
    try {
      parsed = response.text ? JSON.parse(response.text) : null;
    } catch {
      if (response.ok) throw new EndpointUnavailable(`${this.baseUrl}: answer is not JSON`);
    }
    if (response.ok) return parsed;
    const retryAfter = Number(response.retryAfter ?? "");
    const problem = parsed !== null && typeof parsed === "object" ? (parsed as Partial<Problem>) : {};
    throw errorForProblem(response.status, problem, Number.isFinite(retryAfter) && retryAfter > 0 ? retryAfter : undefined);
  }

  /** `POST` a JSON body (or none); the decoded answer (`null` for an empty one). */
  post(path: string, body: unknown): Promise<unknown> {
    return this.call("POST", path, body);
  }

  /** `GET` a JSON answer. */
  get(path: string): Promise<unknown> {
    return this.call("GET", path);
  }

  /**
   * `POST /v1/sync/push`: one result per mutation, in order, and the node's clock; asks for the
   * applied states and `stable` too (a query parameter, which a node without it ignores), so the
   * device can settle its writes without pulling them (docs/protocol.md#settling-a-write-from-the-push-answer-every-sdk).
   */
  async push(clientId: string, mutations: readonly Record<string, unknown>[]): Promise<PushAnswer> {
    return (await this.call("POST", "/v1/sync/push?include_state=true", { client_id: clientId, mutations })) as PushAnswer;
  }

  /** `GET /v1/sync/pull` (with states unless told, of `collections` only when given); `waitS` > 0 long-polls (the timeout counts on top of it). */
  async pull(
    cursor: string,
    limit: number,
    options: { waitS?: number; signal?: AbortSignal; includeState?: boolean; collections?: readonly string[] | null } = {},
  ): Promise<PullPage> {
    const { waitS = 0, signal, includeState = true, collections = null } = options;
    const params = new URLSearchParams({ cursor, limit: String(limit) });
    if (collections !== null) params.set("collections", collections.join(","));
    if (includeState) params.set("include_state", "true");
    if (waitS > 0) params.set("wait", String(waitS));
    return (await this.call("GET", `/v1/sync/pull?${params}`, undefined, waitS * 1000, signal)) as PullPage;
  }

  /** `GET /readyz`: the milliseconds it took; throws when the node cannot serve (a draining node answers 503). */
  async ready(signal?: AbortSignal): Promise<number> {
    await this.call("GET", "/readyz", undefined, 0, signal);
    return this.lastLatency;
  }

  /** `GET /v1/regions`: the deployment's region directory. */
  async regions(signal?: AbortSignal): Promise<Directory> {
    return (await this.call("GET", "/v1/regions", undefined, 0, signal)) as Directory;
  }
}
