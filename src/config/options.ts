// SPDX-License-Identifier: MIT
// Every setting of jfe, once: its flag, JFE_ environment variable and config
// key (both derived from the name), default, help text and validation.
import { z } from 'zod';
import { parseDuration } from './duration';
import { parseListenAddress } from './listen-address';
import { checkDnsServer, checkIpAddress, normaliseDomainPattern, splitList } from './name-lists';
import { parsePortSet } from './ports';
import { parseRateLimit, parseShare } from './rate-limit';
import { DEFAULT_UPSTREAM_PORTS, parseUpstreamPorts } from './upstream-ports';

export interface OptionDef<T> {
  type: 'string' | 'number' | 'boolean';
  describe: string;
  default?: string | number | boolean;
  /** Tuning and test knobs: real options, shown apart in --help under "Advanced options". */
  hidden?: boolean;
  alias?: string;
  schema: z.ZodType<T>;
}

function def<T>(d: OptionDef<T>): OptionDef<T> {
  return d;
}

const u32 = (what: string) =>
  z.union([z.number(), z.string()]).transform((v, ctx) => {
    const n = typeof v === 'number' ? v : /^0x[0-9a-f]+$/i.test(v.trim()) ? parseInt(v, 16) : /^\d+$/.test(v.trim()) ? Number(v) : NaN;
    if (!Number.isInteger(n) || n < 1 || n > 0xffffffff) {
      ctx.addIssue({ code: 'custom', message: `${what} must be an integer from 1 to 4294967295 (decimal or 0x hex), got "${v}"` });
      return z.NEVER;
    }
    return n;
  });

const portSpec = (allowEmpty: boolean) =>
  z.string().transform((v, ctx) => {
    try {
      parsePortSet(v, allowEmpty);
      return v;
    } catch (err) {
      ctx.addIssue({ code: 'custom', message: (err as Error).message });
      return z.NEVER;
    }
  });

const duration = (min: number, max: number) =>
  z.union([z.string(), z.number()]).transform((v, ctx) => {
    try {
      const ms = typeof v === 'number' ? v : parseDuration(v);
      if (ms < min || ms > max) {
        ctx.addIssue({ code: 'custom', message: `must be between ${min} ms and ${max} ms, got ${ms} ms` });
        return z.NEVER;
      }
      return ms;
    } catch (err) {
      ctx.addIssue({ code: 'custom', message: (err as Error).message });
      return z.NEVER;
    }
  });

const count = (what: string, min: number, max: number) =>
  z.union([z.number(), z.string()]).transform((v, ctx) => {
    const n = typeof v === 'number' ? v : /^\d+$/.test(v.trim()) ? Number(v) : NaN;
    if (!Number.isInteger(n) || n < min || n > max) {
      ctx.addIssue({ code: 'custom', message: `${what} must be an integer from ${min} to ${max}, got "${v}"` });
      return z.NEVER;
    }
    return n;
  });

const absPath = z.string().refine((v) => v.startsWith('/'), { message: 'must be an absolute path' });

/** Repeatable (an array from yargs) or comma-separated; each item checked by `item`, which throws with the reason. */
const list = (item: (raw: string) => string) =>
  z.union([z.string(), z.array(z.string())]).transform((v, ctx) => {
    try {
      return [...new Set(splitList(v).map(item))];
    } catch (err) {
      ctx.addIssue({ code: 'custom', message: (err as Error).message });
      return z.NEVER;
    }
  });

const checked = <T>(parse: (raw: string) => T) =>
  z.string().transform((v, ctx) => {
    try {
      return parse(v);
    } catch (err) {
      ctx.addIssue({ code: 'custom', message: (err as Error).message });
      return z.NEVER;
    }
  });

export const OPTIONS = {
  config: def({
    type: 'string',
    describe: 'file of settings (YAML or JSON): keys are the settings\' names in camelCase, e.g. "excludePorts: 25,8080"; flags and JFE_ variables override it',
    schema: z.string().min(1, { message: 'must be a file path' }).optional(),
  }),
  netns: def({
    type: 'string',
    describe: 'network namespace to act on, as a file (/run/netns/NAME, /proc/PID/ns/net); default: the current one',
    schema: absPath.optional(),
  }),
  pinDir: def({
    type: 'string',
    describe: 'bpffs directory for pinned objects (mounted when missing)',
    default: '/sys/fs/bpf/jfe',
    schema: absPath,
  }),
  runDir: def({
    type: 'string',
    describe: 'directory for the lock and the record of routing changes',
    default: '/run/jfe',
    schema: absPath,
  }),
  ports: def({
    type: 'string',
    describe: 'TCP ports to steer: ranges and ports, e.g. "23-65535" or "80,443,8000-8999"',
    default: '23-65535',
    schema: portSpec(false),
  }),
  excludePorts: def({
    type: 'string',
    describe: 'ports never to steer, e.g. "25,8080"',
    default: '',
    schema: portSpec(true),
  }),
  mark: def({
    type: 'string',
    describe: 'firewall mark of upstream connections and their replies',
    default: '0x4a4645',
    schema: u32('mark'),
  }),
  table: def({
    type: 'string',
    describe: 'routing table that delivers marked replies locally',
    default: '4645',
    schema: u32('table'),
  }),
  rulePriority: def({
    type: 'string',
    describe: 'priority of the fwmark routing rule (before main, 32766)',
    default: '4645',
    schema: u32('rule priority').refine((n) => n < 32766, { message: 'rule priority must be below 32766 (the main table)' }),
  }),
  json: def({
    type: 'boolean',
    describe: 'machine-readable output',
    default: false,
    schema: z.boolean(),
  }),
  stateDir: def({
    type: 'string',
    describe: 'directory for the internal CA, certificates and keys (created 0700)',
    default: '/var/lib/jfe',
    schema: absPath,
  }),
  workers: def({
    type: 'string',
    describe: 'agent worker processes, each with its own socket; 0 = one per CPU',
    default: '0',
    schema: count('workers', 0, 64),
  }),
  upstreamSource: def({
    type: 'string',
    describe: 'connect to services from the client\'s own address (original), or from the host\'s (host: services see the host, for hosts where the routing cannot be set up)',
    default: 'original',
    schema: z.enum(['original', 'host']),
  }),
  upstreamPorts: def({
    type: 'string',
    describe: 'source ports of the connections to services in original mode, LO-HI: keep them out of the range clients take their own ports from (Linux 32768-60999, Windows and macOS 49152-65535), or a client can find its connection\'s tuple taken',
    default: DEFAULT_UPSTREAM_PORTS,
    schema: checked(parseUpstreamPorts),
  }),
  idleTimeout: def({
    type: 'string',
    describe: 'close a connection after this long with no byte either way',
    default: '1h',
    schema: duration(1000, 7 * 86_400_000),
  }),
  helloTimeout: def({
    type: 'string',
    describe: 'time a client has from its first TLS byte to the end of the handshake',
    default: '10s',
    schema: duration(100, 300_000),
  }),
  maxConnections: def({
    type: 'string',
    describe: 'connections held at most by the host (all workers together); from 80% of it idle connections are closed sooner, at it the longest-idle one makes room, else new ones are refused and counted',
    default: '20000',
    schema: count('max connections', 1, 10_000_000),
  }),
  maxConnectionsPerClient: def({
    type: 'string',
    describe: 'connections one client (an IPv4 address, an IPv6 /64) holds at most on the host; more from it are refused and counted',
    default: '2000',
    schema: count('max connections per client', 1, 10_000_000),
  }),
  drainTimeout: def({
    type: 'string',
    describe: 'on stop, how long open connections may take to finish',
    default: '30s',
    schema: duration(0, 3_600_000),
  }),
  probeTimeout: def({
    type: 'string',
    describe: 'how long a service may take to answer a ClientHello before it is taken for plaintext',
    default: '1s',
    hidden: true,
    schema: duration(10, 60_000),
  }),
  upgrades: def({
    type: 'string',
    describe:
      'in-band TLS upgrades (PostgreSQL SSLRequest, STARTTLS, MySQL SSL): protocol=port[+port],… ' +
      '(protocols: postgres, smtp, imap, pop3, mysql), "default" for their usual ports, or "off"',
    default: 'default',
    schema: z.string().regex(/^\s*(default|off|[a-z0-9]+\s*=\s*[0-9+\s]+(\s*,\s*[a-z0-9]+\s*=\s*[0-9+\s]+)*)\s*$/, {
      message: 'must be protocol=port[+port],… (e.g. "postgres=5432,smtp=25+587"), "default" or "off"',
    }),
  }),
  upgradeTimeout: def({
    type: 'string',
    describe: 'how long an in-band upgrade dialogue (e.g. SMTP EHLO, STARTTLS) may take before the client asks for TLS',
    default: '30s',
    schema: duration(100, 600_000),
  }),
  issuer: def({
    type: 'string',
    describe: 'where certificates come from: internal (the CA in the state directory) or acme (with the internal CA as the last fallback)',
    default: 'internal',
    schema: z.enum(['internal', 'acme']),
  }),
  acmeDirectory: def({
    type: 'string',
    describe: 'ACME directory URL (default: Let\'s Encrypt production; see --staging)',
    default: '',
    schema: z.string().refine((v) => v === '' || /^https?:\/\/\S+$/.test(v), { message: 'must be an http(s) URL' }),
  }),
  staging: def({
    type: 'boolean',
    describe: 'use Let\'s Encrypt\'s staging directory (untrusted certificates, generous rate limits)',
    default: false,
    schema: z.boolean(),
  }),
  acmeEmail: def({
    type: 'string',
    describe: 'contact address for the ACME account (expiry and policy mail from the CA)',
    default: '',
    schema: z.string().refine((v) => v === '' || /^[^\s@]+@[^\s@]+$/.test(v), { message: 'must be an e-mail address' }),
  }),
  acmeEabKid: def({
    type: 'string',
    describe: 'external account binding key id (CAs that require it, e.g. ZeroSSL); with --acme-eab-hmac-key',
    default: '',
    schema: z.string(),
  }),
  acmeEabHmacKey: def({
    type: 'string',
    describe: 'external account binding HMAC key (base64url); with --acme-eab-kid. A secret: set it as JFE_ACME_EAB_HMAC_KEY or in the config file, since command lines are readable by every local user',
    default: '',
    schema: z.string().refine((v) => v === '' || /^[A-Za-z0-9_=-]+$/.test(v), { message: 'must be base64url' }),
  }),
  acmeFallbackDirectory: def({
    type: 'string',
    describe: 'a second ACME directory URL, tried when an order at the first fails',
    default: '',
    schema: z.string().refine((v) => v === '' || /^https?:\/\/\S+$/.test(v), { message: 'must be an http(s) URL' }),
  }),
  acmeCaFile: def({
    type: 'string',
    describe: 'PEM file of extra CA certificates trusted for the ACME directories\' HTTPS (e.g. Pebble\'s)',
    default: '',
    schema: z.string().refine((v) => v === '' || v.startsWith('/'), { message: 'must be an absolute path' }),
  }),
  issueWait: def({
    type: 'string',
    describe: 'how long a handshake waits for a new ACME certificate before it gets the internal CA\'s (the order goes on)',
    default: '10s',
    schema: duration(0, 300_000),
  }),
  challenge: def({
    type: 'string',
    describe: 'ACME challenge: auto (what the CA offers and the steered ports allow), http-01 (port 80) or tls-alpn-01 (port 443)',
    default: 'auto',
    schema: z.enum(['auto', 'http-01', 'tls-alpn-01']),
  }),
  acmeRetryMin: def({
    type: 'string',
    describe: 'first wait after a failed ACME order for a name; doubles up to 1 h (for tests)',
    default: '1m',
    hidden: true,
    schema: duration(100, 3_600_000),
  }),
  acmeRenewCheck: def({
    type: 'string',
    describe: 'how often stored ACME certificates are checked for renewal, besides the check at each handshake (for tests)',
    default: '1h',
    hidden: true,
    schema: duration(100, 86_400_000),
  }),
  acmeClockOffset: def({
    type: 'string',
    describe: 'shifts the clock ACME renewal is judged by (for tests)',
    default: '0s',
    hidden: true,
    schema: duration(0, 3650 * 86_400_000),
  }),
  maxStoredCerts: def({
    type: 'string',
    describe: 'leaves kept on disk per issuer, by all workers together; beyond it new names are served from memory only (for tests)',
    default: '2000',
    hidden: true,
    schema: count('max stored certificates', 1, 1_000_000),
  }),
  certCacheIdle: def({
    type: 'string',
    describe: 'a certificate\'s TLS context unused for this long leaves a worker\'s memory (made again at its next handshake), so memory goes back down after a flood of names',
    default: '10m',
    hidden: true,
    schema: duration(1000, 7 * 86_400_000),
  }),
  tlsProbeTtl: def({
    type: 'string',
    describe: 'how long the verdict "this service speaks TLS itself" (or not) is kept',
    default: '5m',
    hidden: true,
    schema: duration(1000, 86_400_000),
  }),
  listenersInterval: def({
    type: 'string',
    describe: 'how often the listening sockets of the host are read into the listeners map (for tests)',
    default: '250ms',
    hidden: true,
    schema: duration(10, 60_000),
  }),
  // The name policy: which names from SNI may cost a request to an ACME CA (README: "Which names get ACME certificates").
  domain: def({
    type: 'string',
    describe:
      'a name ACME may issue for: exact ("example.com") or "*.example.com" (any name below it); repeatable or comma-separated. ' +
      'With neither --domain nor --ask, ACME issues nothing',
    default: '',
    schema: list(normaliseDomainPattern),
  }),
  ask: def({
    type: 'string',
    describe: 'URL asked GET ?domain=<name> for a name outside --domain: 200 allows it, any other answer refuses it',
    default: '',
    schema: z.string().refine((v) => v === '' || /^https?:\/\/[^\s#]+$/.test(v), { message: 'must be an http(s) URL without a #fragment' }),
  }),
  askTimeout: def({
    type: 'string',
    describe: 'how long the --ask URL may take to answer; no answer in time refuses the name (asked again after at most 1m)',
    default: '3s',
    schema: duration(100, 60_000),
  }),
  publicIp: def({
    type: 'string',
    describe: 'an address names may resolve to besides the one the client dialled (a host behind NAT: its public address); repeatable or comma-separated',
    default: '',
    schema: list(checkIpAddress),
  }),
  dnsServer: def({
    type: 'string',
    describe: 'DNS server for the name policy\'s A/AAAA lookups, IP[:port] (split DNS, tests); default: the system resolver',
    default: '',
    schema: z.string().transform((v, ctx) => {
      if (v.trim() === '') return '';
      try {
        return checkDnsServer(v);
      } catch (err) {
        ctx.addIssue({ code: 'custom', message: (err as Error).message });
        return z.NEVER;
      }
    }),
  }),
  rateLimitDomain: def({
    type: 'string',
    describe: 'ACME orders per registered domain (example.co.uk for a.example.co.uk): COUNT/PERIOD[,…] or "off"',
    default: '5/1h,40/7d',
    schema: checked(parseRateLimit),
  }),
  rateLimitTotal: def({
    type: 'string',
    describe: 'ACME orders in total: COUNT/PERIOD[,…] or "off"',
    default: '50/1h,300/1d',
    schema: checked(parseRateLimit),
  }),
  rateLimitClientShare: def({
    type: 'string',
    describe:
      'the share of each ACME order window (of --rate-limit-domain and of --rate-limit-total) that the names one client asks for may take, ' +
      'a client being an IPv4 address or an IPv6 /64: a percentage (at least 1 order per window) or "off"',
    default: '25%',
    schema: checked(parseShare),
  }),
  negativeCacheTtl: def({
    type: 'string',
    describe: 'how long a name refused by the name policy stays refused without a new check (errors: at most 1m)',
    default: '10m',
    schema: duration(0, 7 * 86_400_000),
  }),
  negativeCacheSize: def({
    type: 'string',
    describe: 'refused names remembered at most, least recently used forgotten first (for tests)',
    default: '10000',
    hidden: true,
    schema: count('negative cache size', 1, 10_000_000),
  }),
  metricsListen: def({
    type: 'string',
    describe: 'address of the Prometheus /metrics and /healthz endpoint: host:port, [v6]:port, :port (every address), or "off"',
    default: '127.0.0.1:9464',
    schema: z.string().transform((v, ctx) => {
      try {
        return parseListenAddress(v);
      } catch (err) {
        ctx.addIssue({ code: 'custom', message: (err as Error).message });
        return z.NEVER;
      }
    }),
  }),
  verbose: def({
    type: 'boolean',
    alias: 'v',
    describe: 'debug logging (same as --log-level debug)',
    default: false,
    schema: z.boolean(),
  }),
  logLevel: def({
    type: 'string',
    describe: 'log level: debug, info, warn, error, silent',
    default: 'info',
    schema: z.enum(['debug', 'info', 'warn', 'error', 'silent']),
  }),
} as const;

export type OptionName = keyof typeof OPTIONS;
export type OptionValue<N extends OptionName> = z.output<(typeof OPTIONS)[N]['schema']>;

export function flagName(name: string): string {
  return name.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`);
}

export function envName(name: string): string {
  return `JFE_${flagName(name).replace(/-/g, '_').toUpperCase()}`;
}
