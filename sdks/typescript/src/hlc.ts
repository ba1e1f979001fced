/**
 * Hybrid logical clocks (docs/protocol.md#hlc-stamps): `WWWWWWWWWWWWW-CCCC-node`, 13 digits of
 * wall-clock milliseconds, 4 of logical counter, and the issuer's id. Fixed widths make plain
 * string comparison the clock order, so stamps compare without decoding.
 */

import { ValidationError } from "./errors.js";

export const NODE_PATTERN = /^[A-Za-z0-9_.~:-]{1,64}$/;
const STAMP_PATTERN = /^(\d{13})-(\d{4})-([A-Za-z0-9_.~:-]{1,64})$/;
export const MAX_COUNTER = 9999;

export interface Stamp {
  wallMs: number;
  counter: number;
  node: string;
}

export function encodeStamp(wallMs: number, counter: number, node: string): string {
  return `${String(wallMs).padStart(13, "0")}-${String(counter).padStart(4, "0")}-${node}`;
}

export function decodeStamp(stamp: string): Stamp {
  const match = typeof stamp === "string" ? STAMP_PATTERN.exec(stamp) : null;
  if (match === null) throw new ValidationError(`hlc ${JSON.stringify(stamp)} is not a valid HLC stamp`, "hlc");
  return { wallMs: Number(match[1]), counter: Number(match[2]), node: match[3] ?? "" };
}

/**
 * A device's clock: `now()` for local writes, `observe()` for stamps received, and `correct()`
 * after a node refused a stamp as `clock_skew` (the device clock runs ahead: shift this clock's
 * physical time back by the measured offset and restart just after the node's stamp).
 */
export class HybridClock {
  private wall = 0;
  private counter = 0;

  constructor(
    readonly node: string,
    private readonly physicalMs: () => number = Date.now,
    public offsetMs = 0,
  ) {
    if (!NODE_PATTERN.test(node)) throw new Error(`node id ${JSON.stringify(node)} must match ${NODE_PATTERN.source}`);
  }

  physical(): number {
    return this.physicalMs() + this.offsetMs;
  }

  /** A new stamp greater than every stamp this clock has issued or observed. */
  now(): string {
    const physical = this.physical();
    if (physical > this.wall) {
      this.wall = physical;
      this.counter = 0;
    } else if (this.counter >= MAX_COUNTER) {
      this.wall += 1; // borrow a millisecond rather than overflow the fixed-width counter
      this.counter = 0;
    } else {
      this.counter += 1;
    }
    return encodeStamp(this.wall, this.counter, this.node);
  }

  /** Advance past a received stamp so that later local stamps order after it. */
  observe(stamp: string): void {
    const seen = decodeStamp(stamp);
    if (seen.wallMs > this.wall || (seen.wallMs === this.wall && seen.counter > this.counter)) {
      this.wall = seen.wallMs;
      this.counter = seen.counter;
    }
    const physical = this.physical();
    if (physical > this.wall) {
      this.wall = physical;
      this.counter = 0;
    }
  }

  /** Re-base on a node's clock after a `clock_skew` refusal (forgets the future stamps). */
  correct(nodeStamp: string): void {
    const nodeWall = decodeStamp(nodeStamp).wallMs;
    this.offsetMs = Math.min(0, nodeWall - this.physicalMs());
    this.wall = 0;
    this.counter = 0;
    this.observe(nodeStamp);
  }
}
