// SPDX-License-Identifier: MIT
// Counts of what the inputs led to (outcome kinds, verdicts), per target: with
// no coverage feedback, this is how a run shows that its inputs reach past the
// first check of each parser. run.js prints them with --stats.
const counts = new Map<string, number>();

export function tally(label: string): void {
  counts.set(label, (counts.get(label) ?? 0) + 1);
}

export function tallies(): Record<string, number> {
  return Object.fromEntries([...counts].sort(([a], [b]) => a.localeCompare(b)));
}
