// SPDX-License-Identifier: MIT
// What every dialogue does around its exchange: a DialogueStop (malformed,
// truncated, too long, closed, aborted) or any other error fails it, and its
// reader is closed either way, leaving both sockets paused and ours again.
import type { UpgradeOutcome } from './upgrade';

/** Ends a dialogue as 'failed', with the reason it gives. */
export class DialogueStop extends Error {
  constructor(readonly reason: string) {
    super(reason);
  }
}

export async function runDialogue<Io extends { close(): void }>(io: Io, talk: (io: Io) => Promise<UpgradeOutcome>): Promise<UpgradeOutcome> {
  try {
    return await talk(io);
  } catch (err) {
    return { kind: 'failed', reason: err instanceof DialogueStop ? err.reason : String(err) };
  } finally {
    io.close();
  }
}
