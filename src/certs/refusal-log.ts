// SPDX-License-Identifier: MIT
// One log line per policy refusal, without letting a flood of attacker-chosen
// names flood the journal: past `perMinute` lines at info in a minute, the
// rest go to debug and one info line per minute says how many did.
import type { Logger } from '../log';

export class RefusalLog {
  private windowStart = -Infinity;
  private inWindow = 0;
  private demoted = 0;

  constructor(
    private readonly log: Logger,
    private readonly now: () => number,
    private readonly perMinute = 30,
  ) {}

  /** A fresh refusal: info, unless this minute's share is spent. */
  refused(fields: Record<string, unknown>): void {
    const t = this.now();
    if (t - this.windowStart >= 60_000) {
      if (this.demoted > 0) this.log.info({ demoted: this.demoted, perMinute: this.perMinute }, 'more certificate names refused by policy than logged at info; the rest were logged at debug');
      this.windowStart = t;
      this.inWindow = 0;
      this.demoted = 0;
    }
    if (this.inWindow < this.perMinute) {
      this.inWindow++;
      this.log.info(fields, 'certificate name refused by policy');
    } else {
      this.demoted++;
      this.log.debug(fields, 'certificate name refused by policy');
    }
  }

  /** A repeat of a refusal already logged (negative cache): debug only. */
  repeated(fields: Record<string, unknown>): void {
    this.log.debug(fields, 'certificate name refused by policy');
  }
}
