// SPDX-License-Identifier: MIT
// The hooks the agent and the certificate side call (ConnectionEvents,
// AgentEvents, CertEvents: daemon.ts hands these over), turned into metric
// updates. Parameters are plain strings here so that metrics/ needs no
// import of agent/ or certs/; every label goes through a closed set.
import type { Logger } from '../log';
import {
  ACME_DEFERRALS,
  CERT_RESULTS,
  CONNECTION_KINDS,
  EVICTION_REASONS,
  HANDSHAKE_FAILURES,
  type JfeMetrics,
  MAX_EXPIRY_SERIES,
  POLICY_REFUSALS,
  REFUSAL_REASONS,
  UPGRADE_PROTOCOLS,
  UPSTREAM_FAILURES,
  bounded,
} from './registry';

export interface ConnectionMetricEvents {
  opened(kind: string, port: number, protocol?: string): void;
  bytes(direction: 'in' | 'out', n: number): void;
  handshake(seconds: number): void;
  handshakeFailed(reason: string): void;
  sessionWithoutData(): void;
  upstreamFailed(reason: string): void;
  closed(kind: string, result: unknown): void;
  refused(reason: string): void;
  evicted(reason: string): void;
  collision(): void;
}

export interface CertMetricEvents {
  issued(issuer: string, result: string): void;
  expiry(name: string, notAfter: Date): void;
  policyRefused(reason: string): void;
  acmeDeferred(reason: string): void;
}

function portLabel(port: number): string {
  return Number.isInteger(port) && port > 0 && port < 65536 ? String(port) : 'other';
}

/** The agent's hooks. `log` gets the debug line for collisions (cheap when debug is off). */
export function connectionEvents(m: JfeMetrics, log: Logger): ConnectionMetricEvents {
  const pending = m.bytesPending;
  return {
    opened(kind, port, protocol) {
      const k = bounded(CONNECTION_KINDS, kind);
      m.connectionsTotal.inc({ port: portLabel(port), kind: k });
      if (k === 'upgrade') m.upgradesTotal.inc({ protocol: bounded(UPGRADE_PROTOCOLS, protocol) });
    },
    bytes(direction, n) {
      pending[direction] += n;
    },
    handshake(seconds) {
      m.handshakeSeconds.observe(seconds);
    },
    handshakeFailed(reason) {
      m.handshakeFailuresTotal.inc({ reason: bounded(HANDSHAKE_FAILURES, reason) });
    },
    sessionWithoutData() {
      m.sessionsWithoutDataTotal.inc();
    },
    upstreamFailed(reason) {
      m.upstreamConnectFailuresTotal.inc({ reason: bounded(UPSTREAM_FAILURES, reason) });
    },
    closed() {
      // jfe_connections_active is read from the agent at scrape time.
    },
    refused(reason) {
      m.connectionsRefusedTotal.inc({ reason: bounded(REFUSAL_REASONS, reason) });
    },
    evicted(reason) {
      m.connectionsEvictedTotal.inc({ reason: bounded(EVICTION_REASONS, reason) });
    },
    collision() {
      m.sourcePortCollisionsTotal.inc();
      log.debug({}, 'upstream source port collided with a client connection; picked another');
    },
  };
}

/**
 * The certificate side's hooks. Expiry series are bounded: past
 * MAX_EXPIRY_SERIES names, the one that expires last is dropped (the soonest
 * expiries are what alerts need).
 */
export function certEvents(m: JfeMetrics, maxNames = MAX_EXPIRY_SERIES): CertMetricEvents {
  const held = new Map<string, number>();
  return {
    issued(issuer, result) {
      // Issuer names are configuration ([a-z0-9-]), not input: a bounded set.
      m.certificatesIssuedTotal.inc({ issuer, result: bounded(CERT_RESULTS, result) === 'other' ? 'error' : result });
    },
    expiry(name, notAfter) {
      const seconds = Math.floor(notAfter.getTime() / 1000);
      if (!held.has(name) && held.size >= maxNames) {
        let latest: [string, number] | null = null;
        for (const e of held) if (latest === null || e[1] > latest[1]) latest = e;
        if (latest === null || latest[1] <= seconds) return;
        held.delete(latest[0]);
        m.certificateExpiry.remove({ name: latest[0] });
      }
      held.set(name, seconds);
      m.certificateExpiry.set({ name }, seconds);
    },
    policyRefused(reason) {
      m.policyRefusalsTotal.inc({ reason: bounded(POLICY_REFUSALS, reason) });
    },
    acmeDeferred(reason) {
      m.acmeDeferralsTotal.inc({ reason: bounded(ACME_DEFERRALS, reason) });
    },
  };
}
