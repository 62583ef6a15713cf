// SPDX-License-Identifier: MIT
// --upstream-ports: the source ports of the agent's upstream legs in
// 'original' mode. They must lie outside the range clients take their own
// ports from (Linux 32768-60999, Windows and macOS 49152-65535): a leg holds
// (client address, port') -> (service, P), and a client opening its own
// connection to (service, P) from port' would find that tuple taken. Pure.
import { JfeError } from '../errors';

export interface UpstreamPorts {
  lo: number;
  hi: number;
}

export const DEFAULT_UPSTREAM_PORTS = '1024-32767';

/** Below 1024 a source port means something to some services (rsh, NFS): never ours. */
const MIN = 1024;
const MAX = 65535;

export function parseUpstreamPorts(raw: string): UpstreamPorts {
  const m = /^\s*(\d{1,5})\s*-\s*(\d{1,5})\s*$/.exec(raw);
  const lo = m ? Number(m[1]) : NaN;
  const hi = m ? Number(m[2]) : NaN;
  if (!(lo >= MIN && lo <= hi && hi <= MAX)) {
    throw new JfeError('JFE_ERR_CONFIG_INVALID', `upstream ports must be a range LO-HI with ${MIN} <= LO <= HI <= ${MAX}, e.g. "${DEFAULT_UPSTREAM_PORTS}", got "${raw}"`);
  }
  return { lo, hi };
}
