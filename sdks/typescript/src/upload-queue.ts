/**
 * Files uploaded from the device: queued durably, sent with tus 1.0 when the network allows (the
 * Python SDK's `upload_queue.py`, same rules; docs/files.md, docs/sdk-js.md#files).
 *
 * `enqueue` hashes the bytes (a `Blob`/`File` in browsers, a `Uint8Array` anywhere) and stores
 * them with the upload's record in the storage adapter's `uploads` table, in one commit, before
 * it resolves: the app can at once write a document that refers to the file
 * (`{"$file": sha256}`), offline included, and the upload survives a restart. Sending stores the
 * upload URL as soon as the node creates it; a resumed upload asks the node its offset (HEAD) and
 * sends only the rest, so a cut costs at most the chunk in flight.
 *
 * A network failure or a transient answer (5xx, 429, 423) leaves the upload queued and throws
 * `EndpointUnavailable`; `run` retries with backoff and full jitter. A permanent refusal (a type
 * or size the node refuses, no write access) marks the upload `failed` with the problem, for the
 * app to show; it is not retried. A queue talks to one endpoint: a tus upload lives on the node
 * that created it.
 */

import { Backoff } from "./backoff.js";
import { BreakwaterError, EndpointUnavailable, errorForProblem } from "./errors.js";
import { Emitter } from "./events.js";
import type { Fetch, HeadersProvider } from "./node-api.js";
import { pause } from "./pause.js";
import type { StorageAdapter, Write } from "./storage/adapter.js";

const TUS = { "tus-resumable": "1.0.0" };
/** Bytes per stored piece (the adapters hold JSON: each piece is base64). */
const PIECE = 256 * 1024;
const TRANSIENT = new Set([423, 429]);

export interface QueuedFile {
  readonly id: number;
  readonly sha256: string;
  readonly size: number;
  readonly collection: string;
  readonly contentType: string;
  readonly filename: string;
  readonly state: "pending" | "failed";
  /** The node's reason for a `failed` upload. */
  readonly problem: string;
}

interface Row extends QueuedFile {
  /** The upload's URL path on the node, once created. */
  readonly location: string | null;
}

export interface UploadEvents {
  /** The node holds `sent` bytes of `file` (after every chunk). */
  progress: { file: QueuedFile; sent: number };
  uploaded: QueuedFile;
  failed: QueuedFile;
}

export interface UploadOptions {
  /** Bytes per PATCH (default 1 MiB). */
  chunkSize?: number;
  requestTimeoutMs?: number;
  backoffBaseMs?: number;
  backoffCapMs?: number;
  random?: () => number;
}

const fileKey = (id: number): string => `f/${String(id).padStart(12, "0")}`;
const pieceKey = (id: number, index: number): string => `d/${String(id).padStart(12, "0")}/${String(index).padStart(9, "0")}`;

function toBase64(bytes: Uint8Array): string {
  let text = "";
  for (let i = 0; i < bytes.length; i += 0x8000) text += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  return btoa(text);
}

function fromBase64(text: string): Uint8Array {
  return Uint8Array.from(atob(text), (c) => c.charCodeAt(0));
}

function publicFile({ location: _, ...file }: Row): QueuedFile {
  return file;
}

export class UploadQueue {
  private readonly emitter = new Emitter<UploadEvents>();
  private readonly chunkSize: number;
  private readonly backoff: Backoff;
  private wake = new AbortController();
  /** Enqueues run one at a time (each takes the next id). */
  private adding: Promise<unknown> = Promise.resolve();

  constructor(
    private readonly storage: StorageAdapter,
    readonly baseUrl: string,
    private readonly fetchFn: Fetch = globalThis.fetch.bind(globalThis),
    private readonly headers?: HeadersProvider,
    private readonly options: UploadOptions = {},
  ) {
    this.chunkSize = options.chunkSize ?? 1 << 20;
    this.backoff = new Backoff(options.backoffBaseMs ?? 500, options.backoffCapMs ?? 30_000, options.random);
  }

  on<K extends keyof UploadEvents>(event: K, listener: (value: UploadEvents[K]) => void): () => void {
    return this.emitter.on(event, listener);
  }

  /** Queue `content` for `collection`; durable when it resolves, no network. */
  enqueue(content: Blob | Uint8Array, collection: string, options: { contentType?: string; filename?: string } = {}): Promise<QueuedFile> {
    const added = this.adding.then(() => this.add(content, collection, options));
    this.adding = added.catch(() => undefined);
    return added;
  }

  private async add(content: Blob | Uint8Array, collection: string, options: { contentType?: string; filename?: string }): Promise<QueuedFile> {
    const bytes = content instanceof Uint8Array ? new Uint8Array(content) : new Uint8Array(await content.arrayBuffer()); // a copy: the app may reuse its buffer
    const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", bytes));
    const id = ((await this.storage.get("uploads", "last_id")) as number | undefined ?? 0) + 1;
    const blobType = content instanceof Uint8Array ? "" : content.type;
    const row: Row = {
      id,
      sha256: Array.from(digest, (b) => b.toString(16).padStart(2, "0")).join(""),
      size: bytes.length,
      collection,
      contentType: options.contentType ?? (blobType || "application/octet-stream"),
      filename: options.filename ?? ("name" in content && typeof content.name === "string" ? content.name : `upload-${id}`),
      state: "pending",
      problem: "",
      location: null,
    };
    const writes: Write[] = [
      { table: "uploads", key: "last_id", value: id },
      { table: "uploads", key: fileKey(id), value: row },
    ];
    for (let at = 0, index = 0; at < bytes.length; at += PIECE, index++) {
      writes.push({ table: "uploads", key: pieceKey(id, index), value: toBase64(bytes.subarray(at, at + PIECE)) });
    }
    await this.storage.commit(writes);
    return publicFile(row);
  }

  /** Files not yet uploaded: pending ones first in queue order, then failed ones. */
  async queued(): Promise<QueuedFile[]> {
    const rows = await this.rows();
    return [...rows.filter((r) => r.state === "pending"), ...rows.filter((r) => r.state === "failed")].map(publicFile);
  }

  private async rows(): Promise<Row[]> {
    return (await this.storage.list("uploads", "f/")).map(([, value]) => value as Row);
  }

  private async row(id: number): Promise<Row | undefined> {
    return (await this.storage.get("uploads", fileKey(id))) as Row | undefined;
  }

  private async save(row: Row): Promise<void> {
    await this.storage.commit([{ table: "uploads", key: fileKey(row.id), value: row }]);
  }

  /** Drop an upload's record and bytes (uploaded, or the app gives up on a failed one). */
  async remove(file: QueuedFile): Promise<void> {
    const pieces = await this.storage.list("uploads", `${pieceKey(file.id, 0).slice(0, -9)}`);
    await this.storage.commit([{ table: "uploads", key: fileKey(file.id), value: undefined }, ...pieces.map(([key]): Write => ({ table: "uploads", key, value: undefined }))]);
  }

  /** Bytes `[offset, offset + length)` of a queued file. */
  private async read(id: number, offset: number, length: number): Promise<Uint8Array<ArrayBuffer>> {
    const out = new Uint8Array(length);
    let filled = 0;
    while (filled < length) {
      const at = offset + filled;
      const piece = fromBase64((await this.storage.get("uploads", pieceKey(id, Math.floor(at / PIECE)))) as string);
      const part = piece.subarray(at % PIECE, at % PIECE + (length - filled));
      out.set(part, filled);
      filled += part.length;
    }
    return out;
  }

  private async request(method: string, path: string, headers: Record<string, string>, body?: Uint8Array<ArrayBuffer>): Promise<Response> {
    const auth = this.headers ? await this.headers() : {};
    let response: Response;
    try {
      response = await this.fetchFn(`${this.baseUrl}${path}`, {
        method,
        headers: { ...TUS, ...auth, ...headers },
        ...(body === undefined ? {} : { body }),
        signal: AbortSignal.timeout(this.options.requestTimeoutMs ?? 30_000),
      });
    } catch (error) {
      throw new EndpointUnavailable(`${method} ${path}: ${String(error)}`);
    }
    if (response.status >= 500 || TRANSIENT.has(response.status)) throw new EndpointUnavailable(`${method} ${path}: HTTP ${response.status}`);
    return response;
  }

  private static async refusal(response: Response): Promise<BreakwaterError> {
    let problem: Record<string, unknown> = {};
    try {
      problem = (await response.json()) as Record<string, unknown>;
    } catch {
      problem = { detail: `HTTP ${response.status}` };
    }
    return errorForProblem(response.status, problem);
  }

  private async create(row: Row): Promise<string> {
    const metadata = Object.entries({ collection: row.collection, filetype: row.contentType, filename: row.filename })
      .map(([key, value]) => `${key} ${toBase64(new TextEncoder().encode(value))}`)
      .join(",");
    const response = await this.request("POST", "/v1/uploads", { "upload-length": String(row.size), "upload-metadata": metadata });
    const location = response.headers.get("location");
    if (response.status !== 201 || location === null) throw await UploadQueue.refusal(response);
    await this.save({ ...row, location: new URL(location, `${this.baseUrl}/`).pathname });
    return new URL(location, `${this.baseUrl}/`).pathname;
  }

  /** The node's offset of an upload; `null` when it expired or was collected (start again). */
  private async offset(location: string): Promise<number | null> {
    const response = await this.request("HEAD", location, {});
    if (response.status === 404 || response.status === 410) return null;
    if (response.status !== 200) throw await UploadQueue.refusal(response);
    return Number(response.headers.get("upload-offset"));
  }

  private progress(file: QueuedFile, sent: number, callback?: (file: QueuedFile, sent: number) => void): void {
    callback?.(file, sent);
    this.emitter.emit("progress", { file, sent });
  }

  /** Send one queued file from where the node has it; it leaves the queue when done. */
  async upload(file: QueuedFile, progress?: (file: QueuedFile, sent: number) => void): Promise<void> {
    const row = await this.row(file.id);
    if (row === undefined) return;
    let location = row.location;
    let offset = location === null ? null : await this.offset(location);
    if (location === null || offset === null) {
      location = await this.create(row);
      offset = 0;
    }
    this.progress(file, offset, progress);
    while (offset < file.size) {
      const chunk = await this.read(file.id, offset, Math.min(this.chunkSize, file.size - offset));
      const response = await this.request("PATCH", location, { "upload-offset": String(offset), "content-type": "application/offset+octet-stream" }, chunk);
      if (response.status === 409) {
        const known = await this.offset(location); // the node holds another offset: ask it
        if (known === null) {
          await this.save({ ...row, location: null });
          throw new EndpointUnavailable("the upload expired on the node; starting again");
        }
        offset = known;
        continue;
      }
      if (response.status !== 204) throw await UploadQueue.refusal(response);
      offset = Number(response.headers.get("upload-offset"));
      this.progress(file, offset, progress);
    }
    await this.remove(file);
    this.emitter.emit("uploaded", file);
  }

  /**
   * Upload every pending file once; the number uploaded. A permanent refusal marks that file
   * failed and goes on; a transient failure stops the pass and throws `EndpointUnavailable`.
   */
  async runOnce(progress?: (file: QueuedFile, sent: number) => void): Promise<number> {
    let done = 0;
    for (const file of await this.queued()) {
      if (file.state !== "pending") continue;
      try {
        await this.upload(file, progress);
      } catch (error) {
        if (!(error instanceof BreakwaterError) || error instanceof EndpointUnavailable) throw error;
        const row = await this.row(file.id);
        const failed: Row = { ...(row ?? { ...file, location: null }), state: "failed", problem: error.message };
        await this.save(failed);
        this.emitter.emit("failed", publicFile(failed));
        continue;
      }
      done += 1;
    }
    return done;
  }

  /** Upload until the queue is empty, retrying transient failures with backoff (`maxAttempts` bounds the passes). */
  async run(progress?: (file: QueuedFile, sent: number) => void, maxAttempts = Infinity): Promise<number> {
    let done = 0;
    for (let attempt = 1; ; attempt++) {
      try {
        done += await this.runOnce(progress);
        this.backoff.reset();
        return done;
      } catch (error) {
        if (!(error instanceof EndpointUnavailable) || attempt >= maxAttempts) throw error;
        await pause(this.backoff.next(), this.wake.signal);
        if (this.wake.signal.aborted) this.wake = new AbortController();
      }
    }
  }

  /** Cut the wait before the next attempt short (the app says the network is back). */
  retryNow(): void {
    this.wake.abort();
  }
}
