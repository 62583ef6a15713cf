// SPDX-License-Identifier: MIT
// The settings shared by attach, detach and status, and their conversion to
// the bpf/ options.
import type { SteeringOptions } from '../../bpf/steering';
import type { Settings } from '../../config/load';

export const STEERING_OPTION_NAMES = ['netns', 'pinDir', 'runDir', 'mark', 'table', 'rulePriority', 'json', 'logLevel'] as const;
export type SteeringSettings = Settings<(typeof STEERING_OPTION_NAMES)[number]>;

export function steeringOptions(s: SteeringSettings): SteeringOptions {
  return { netnsPath: s.netns, pinDir: s.pinDir, runDir: s.runDir, mark: s.mark, table: s.table, priority: s.rulePriority };
}
