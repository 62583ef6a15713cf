// SPDX-License-Identifier: MIT
// Log lines for events a stranger can cause by the thousand (new names from
// SNI, names refused by policy, refused connections): at most `perInterval`
// lines per interval at their level, the rest at debug, and one summary line
// with their count once the interval is over. The one throttle of jfe's logs.
import type { Logger } from './log';

export interface LogThrottleOptions {
  level: 'info' | 'warn';
  /** The message of each event's line. */
  msg: string;
  /** The message of the line that counts the events not logged at `level`. */
  summaryMsg: string;
  perInterval: number;
  intervalMs: number;
  /** Milliseconds; injected by tests. */
  now?: () => number;
}

export class LogThrottle {
  private windowStart = -Infinity;
  private logged = 0;
  private held = 0;
  private timer: NodeJS.Timeout | undefined;
  private readonly now: () => number;

  constructor(
    private readonly log: Logger,
    private readonly opts: LogThrottleOptions,
  ) {
    this.now = opts.now ?? Date.now;
  }

  /** One event: its line at the throttle's level while this interval's share lasts, else at debug. */
  note(fields: Record<string, unknown>): void {
    const now = this.now();
    if (now - this.windowStart >= this.opts.intervalMs) {
      this.flush();
      this.windowStart = now;
      this.logged = 0;
    }
    if (this.logged < this.opts.perInterval) {
      this.logged++;
      this.log[this.opts.level](fields, this.opts.msg);
      return;
    }
    this.held++;
    if (this.log.isLevelEnabled('debug')) this.log.debug(fields, this.opts.msg);
    // The summary comes at the end of the interval even if the flood stops; unref'd, it never holds the process.
    this.timer ??= setTimeout(() => this.flush(), Math.max(0, this.windowStart + this.opts.intervalMs - now)).unref();
  }

  /** Writes the summary of the events not logged at the throttle's level, if any. */
  flush(): void {
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.timer = undefined;
    if (this.held === 0) return;
    this.log[this.opts.level]({ count: this.held, perInterval: this.opts.perInterval, intervalMs: this.opts.intervalMs }, this.opts.summaryMsg);
    this.held = 0;
  }
}
