// A real `breakwater serve` for integration tests: the worktree's venv, loopback, a free port,
// a temporary data directory; stopped by its PID.
import { spawn } from "node:child_process";
import type { ChildProcess } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

const BREAKWATER = fileURLToPath(new URL("../../../.venv/bin/breakwater", import.meta.url));

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const address = server.address();
      server.close(() => resolve(typeof address === "object" && address ? address.port : 0));
    });
  });
}

export interface NodeOptions {
  /** Extra `BREAKWATER_*` settings. */
  env?: Record<string, string>;
  /** A TOML config file's text. */
  config?: string;
  /** A store URL (two nodes on one `sqlite:///` file serve one region's data). */
  store?: string;
}

export class Node {
  private process: ChildProcess | null = null;
  readonly url: string;
  private readonly dataDir = mkdtempSync(join(tmpdir(), "bw-node-"));

  constructor(
    readonly port: number,
    private readonly options: NodeOptions = {},
  ) {
    this.url = `http://127.0.0.1:${port}`;
  }

  /** Start the node and wait until `/readyz` answers 200. */
  async start(): Promise<void> {
    const args = ["serve", "--host", "127.0.0.1", "--port", String(this.port), "--data", this.dataDir, "--log-level", "warning"];
    if (this.options.config !== undefined) {
      const path = join(this.dataDir, "breakwater.toml");
      writeFileSync(path, this.options.config);
      args.push("--config", path);
    }
    if (this.options.store !== undefined) args.push("--store", this.options.store);
    this.process = spawn(BREAKWATER, args, {
      stdio: ["ignore", "ignore", "inherit"],
      env: { ...process.env, ...this.options.env },
    });
    const deadline = Date.now() + 20_000;
    while (Date.now() < deadline) {
      if (this.process.exitCode !== null) throw new Error(`breakwater serve exited with ${this.process.exitCode}`);
      try {
        if ((await fetch(`${this.url}/readyz`)).ok) return;
      } catch {
        // not listening yet
      }
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    throw new Error("breakwater serve did not become ready in 20 s");
  }

  /** Stop the node (SIGTERM to its PID) and wait for it to exit. */
  async stop(): Promise<void> {
    const child = this.process;
    this.process = null;
    if (child === null || child.exitCode !== null) return;
    const exited = new Promise((resolve) => child.once("exit", resolve));
    child.kill("SIGTERM");
    await exited;
  }

  /** Run `breakwater <args> --data <this node's data>` (e.g. `backup`, `restore`) to its end. */
  async cli(...args: string[]): Promise<void> {
    const child = spawn(BREAKWATER, [...args, "--data", this.dataDir], { stdio: ["ignore", "ignore", "pipe"] });
    let errors = "";
    child.stderr?.on("data", (chunk: Buffer) => (errors += chunk.toString()));
    const code = await new Promise((resolve) => child.once("exit", resolve));
    if (code !== 0) throw new Error(`breakwater ${args[0]} exited with ${String(code)}: ${errors}`);
  }

  async remove(): Promise<void> {
    await this.stop();
    rmSync(this.dataDir, { recursive: true, force: true });
  }

  /** `GET` a document's envelope from the node (`null` when 404). */
  async document(collection: string, id: string): Promise<{ data: Record<string, unknown> | null; version: string; hlc: string } | null> {
    const response = await fetch(`${this.url}/v1/collections/${collection}/docs/${id}`);
    if (response.status === 404) return null;
    if (!response.ok) throw new Error(`GET ${collection}/${id}: ${response.status}`);
    return (await response.json()) as { data: Record<string, unknown> | null; version: string; hlc: string };
  }

  /** `PUT` a document as another client would. */
  async put(collection: string, id: string, data: Record<string, unknown>): Promise<void> {
    const response = await fetch(`${this.url}/v1/collections/${collection}/docs/${id}`, {
      method: "PUT",
      headers: { "content-type": "application/json" },
      body: JSON.stringify(data),
    });
    if (!response.ok) throw new Error(`PUT ${collection}/${id}: ${response.status} ${await response.text()}`);
  }
}
