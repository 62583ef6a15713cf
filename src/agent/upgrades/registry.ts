// SPDX-License-Identifier: MIT
// Which upgrade dialogue, if any, applies to a connection's first bytes: by
// the destination port (configured, or each protocol's default ports) and,
// for protocols with an unmistakable opening, by content on any port.
import { JfeError } from '../../errors';
import type { DialogueFactory, FirstSpeaker, UpgradeProtocol } from './upgrade';

/** Past this many bytes an undecided opening is no upgrade request: plaintext. */
export const MAX_DETECT_BYTES = 1024;

export type Match = DialogueFactory | 'need-more' | null;

/**
 * Parses "postgres=5432,smtp=25+587" (protocol=ports, ports joined by '+'),
 * "default" (each protocol's default ports) or "off" (no upgrades). Unknown
 * protocols and bad ports are errors naming the setting.
 */
export function parseUpgradePorts(spec: string, factories: readonly DialogueFactory[]): Map<number, DialogueFactory> {
  const byName = new Map(factories.map((f) => [f.protocol as string, f]));
  const ports = new Map<number, DialogueFactory>();
  const trimmed = spec.trim();
  if (trimmed === 'off') return ports;
  if (trimmed === 'default') {
    for (const f of factories) for (const p of f.defaultPorts) ports.set(p, f);
    return ports;
  }
  for (const part of trimmed.split(',')) {
    const m = /^\s*([a-z0-9]+)\s*=\s*([0-9+\s]+)$/.exec(part);
    const factory = m ? byName.get(m[1] ?? '') : undefined;
    if (!m || !factory) {
      const known = [...byName.keys()].join(', ');
      throw new JfeError('JFE_ERR_CONFIG_INVALID', `upgrades: "${part.trim()}" is not protocol=port[+port…] with a protocol of ${known} (or "default", "off")`);
    }
    for (const p of (m[2] ?? '').split('+')) {
      const port = Number(p.trim());
      if (!Number.isInteger(port) || port < 1 || port > 65535) {
        throw new JfeError('JFE_ERR_CONFIG_INVALID', `upgrades: "${p.trim()}" in "${part.trim()}" is not a port from 1 to 65535`);
      }
      if (ports.has(port)) throw new JfeError('JFE_ERR_CONFIG_INVALID', `upgrades: port ${port} is given twice`);
      ports.set(port, factory);
    }
  }
  return ports;
}

export class UpgradeRegistry {
  private readonly anywhere: Record<FirstSpeaker, DialogueFactory[]>;

  constructor(
    private readonly byPort: ReadonlyMap<number, DialogueFactory>,
    factories: readonly DialogueFactory[],
  ) {
    // Content detection only for protocols that are enabled at all.
    const enabled = new Set<UpgradeProtocol>([...byPort.values()].map((f) => f.protocol));
    const anywhere = factories.filter((f) => f.detectAnywhere && enabled.has(f.protocol));
    this.anywhere = {
      client: anywhere.filter((f) => f.firstSpeaker === 'client'),
      server: anywhere.filter((f) => f.firstSpeaker === 'server'),
    };
  }

  /**
   * The dialogue for what `speaker` sent first to `port`, 'need-more', or null (not an upgrade).
   * An opening is decided by its first bytes however long the read that brought them, so the
   * verdict does not depend on how the bytes were cut into reads; only an undecided one ends
   * at MAX_DETECT_BYTES.
   */
  match(speaker: FirstSpeaker, port: number, first: Buffer): Match {
    const configured = this.byPort.get(port);
    let needMore = false;
    if (configured?.firstSpeaker === speaker) {
      const r = configured.detect(first);
      if (r === 'yes') return configured;
      if (r === 'need-more') needMore = true;
    }
    for (const f of this.anywhere[speaker]) {
      if (f === configured) continue;
      const r = f.detect(first);
      if (r === 'yes') return f;
      if (r === 'need-more') needMore = true;
    }
    return needMore && first.length <= MAX_DETECT_BYTES ? 'need-more' : null;
  }

  /** Whether a port expects a server that speaks first with an upgradeable protocol. */
  expectsServerFirst(port: number): boolean {
    return this.byPort.get(port)?.firstSpeaker === 'server' || this.anywhere.server.length > 0;
  }
}

export const NO_UPGRADES = new UpgradeRegistry(new Map(), []);
