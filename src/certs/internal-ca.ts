// SPDX-License-Identifier: MIT
// The default issuer: a root CA made once per host in <state>/ca/ and kept,
// signing short-lived ECDSA leaves for DNS names and IP addresses.
import { X509Certificate as NodeX509Certificate, createPrivateKey, randomBytes, webcrypto } from 'node:crypto';
import fsp from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import * as x509 from '@peculiar/x509';
import { JfeError, isJfeError, isSystemError } from '../errors';
import type { Logger } from '../log';
import { canonicalIp, isIpName, normaliseDnsName } from './cert-name';
import type { IssuedCert, Issuer } from './issuer';
import type { StateDir } from './state-dir';

const HOUR_MS = 3600_000;
const DAY_MS = 24 * HOUR_MS;
export const CA_VALIDITY_MS = 3650 * DAY_MS;
export const LEAF_VALIDITY_MS = 90 * DAY_MS;
/** Leaves start an hour in the past, for clients whose clocks lag. */
export const BACKDATE_MS = HOUR_MS;
/** Warn when the root has less than this left: clients must then be given a new root. */
const CA_EXPIRY_WARNING_MS = 365 * DAY_MS;

export const CA_DIR = 'ca';
export const CA_KEY_FILE = 'ca.key.pem';
export const CA_CERT_FILE = 'ca.crt.pem';

const EC_KEY = { name: 'ECDSA', namedCurve: 'P-256' } as const;
const SIGNING = { name: 'ECDSA', hash: 'SHA-256' } as const;
/** The longest CN (X.520 ub-common-name); longer names get a SAN only. */
const MAX_CN = 64;

// @peculiar/x509 takes a WebCrypto provider per call: Node's, never a global one.
const crypto = webcrypto;
type CryptoKey = webcrypto.CryptoKey;
type CryptoKeyPair = webcrypto.CryptoKeyPair;

export interface InternalCaOptions {
  stateDir: StateDir;
  log: Logger;
  /** Milliseconds since the epoch; injected by tests. */
  now?: () => number;
  /** Goes into the root's subject, to tell hosts' roots apart; default os.hostname(). */
  hostname?: string;
}

function randomSerialHex(): string {
  // 128 random bits; @peculiar/x509 prefixes 0x00 when the top bit is set, so the INTEGER stays positive.
  return randomBytes(16).toString('hex');
}

function pkcs8Pem(der: ArrayBuffer): string {
  return createPrivateKey({ key: Buffer.from(der), format: 'der', type: 'pkcs8' }).export({ type: 'pkcs8', format: 'pem' }).toString();
}

function pemToDer(pem: string): ArrayBuffer {
  const der = createPrivateKey(pem).export({ type: 'pkcs8', format: 'der' });
  return der.buffer.slice(der.byteOffset, der.byteOffset + der.byteLength) as ArrayBuffer;
}

function normalisePem(pem: string): string {
  const out = pem.replace(/\r\n/g, '\n').trim();
  return `${out}\n`;
}

export class InternalCa implements Issuer {
  readonly name = 'internal';

  private constructor(
    private readonly caCert: x509.X509Certificate,
    private readonly caKey: CryptoKey,
    private readonly caPem: string,
    private readonly now: () => number,
  ) {}

  /**
   * Loads the root from <state>/ca/, or creates it there when absent (once:
   * a concurrent creator's root wins and is loaded). A root whose key does not
   * match, or that expired, is refused with JFE_ERR_STATE and what to do.
   */
  static async open(opts: InternalCaOptions): Promise<InternalCa> {
    const now = opts.now ?? Date.now;
    const log = opts.log.child({ component: 'internal-ca' });
    const caDir = opts.stateDir.path(CA_DIR);
    await opts.stateDir.removeStaleTemps(opts.stateDir.root);
    let loaded = await loadCa(caDir, now, log);
    if (loaded === null) {
      const created = await opts.stateDir.createDirAtomic(caDir, async (tmp) => {
        const { keyPem, certPem } = await createRoot(opts.hostname ?? os.hostname(), now());
        await opts.stateDir.writeNewFile(path.join(tmp, CA_KEY_FILE), keyPem, 0o600);
        await opts.stateDir.writeNewFile(path.join(tmp, CA_CERT_FILE), certPem, 0o644);
      });
      loaded = await loadCa(caDir, now, log);
      if (loaded === null) {
        throw new JfeError('JFE_ERR_STATE', `internal CA: ${caDir} vanished right after it was created; is another process removing it?`);
      }
      if (created) {
        log.info({ subject: loaded.cert.subject, notAfter: loaded.cert.notAfter.toISOString(), dir: caDir }, 'internal CA created');
      }
    }
    return new InternalCa(loaded.cert, loaded.key, loaded.pem, now);
  }

  /** The root certificate (PEM), for `jfe ca export` and for clients to trust. */
  rootPem(): string {
    return this.caPem;
  }

  /** The root's validity end: leaves never outlive it. */
  get rootNotAfter(): Date {
    return this.caCert.notAfter;
  }

  async issue(name: string): Promise<IssuedCert> {
    const ip = isIpName(name);
    if (ip ? canonicalIp(name) !== name : normaliseDnsName(name) !== name) {
      throw new JfeError('JFE_ERR_CERT', `internal CA: refusing to issue for a name that is not normalised: ${JSON.stringify(name)}`);
    }
    try {
      const now = this.now();
      const notBefore = new Date(now - BACKDATE_MS);
      const notAfter = new Date(Math.min(now + LEAF_VALIDITY_MS, this.caCert.notAfter.getTime()));
      if (notAfter.getTime() <= now) {
        throw new JfeError('JFE_ERR_CERT', `internal CA expired on ${this.caCert.notAfter.toISOString()}`);
      }
      const keys = (await crypto.subtle.generateKey(EC_KEY, true, ['sign', 'verify'])) as CryptoKeyPair;
      const caSki = this.caCert.getExtension(x509.SubjectKeyIdentifierExtension);
      const aki = caSki
        ? new x509.AuthorityKeyIdentifierExtension(caSki.keyId)
        : await x509.AuthorityKeyIdentifierExtension.create(this.caCert.publicKey, false, crypto);
      const short = name.length <= MAX_CN;
      const cert = await x509.X509CertificateGenerator.create(
        {
          serialNumber: randomSerialHex(),
          // RFC 5280 §4.2.1.6: with an empty subject the SAN must be critical.
          subject: short ? [{ CN: [name] }] : [],
          issuer: this.caCert.subjectName,
          notBefore,
          notAfter,
          publicKey: keys.publicKey,
          signingKey: this.caKey,
          signingAlgorithm: SIGNING,
          extensions: [
            new x509.BasicConstraintsExtension(false, undefined, true),
            new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
            new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth], false),
            new x509.SubjectAlternativeNameExtension([{ type: ip ? 'ip' : 'dns', value: name }], !short),
            await x509.SubjectKeyIdentifierExtension.create(keys.publicKey, false, crypto),
            aki,
          ],
        },
        crypto,
      );
      const keyPem = pkcs8Pem(await crypto.subtle.exportKey('pkcs8', keys.privateKey));
      return { certPem: normalisePem(cert.toString('pem')) + this.caPem, keyPem, notBefore: cert.notBefore, notAfter: cert.notAfter };
    } catch (err) {
      if (isJfeError(err)) throw err;
      throw new JfeError('JFE_ERR_CERT', `internal CA: issue for ${name}: ${(err as Error).message}`, { cause: err });
    }
  }
}

async function createRoot(hostname: string, now: number): Promise<{ keyPem: string; certPem: string }> {
  const keys = (await crypto.subtle.generateKey(EC_KEY, true, ['sign', 'verify'])) as CryptoKeyPair;
  const id = randomBytes(4).toString('hex');
  const prefix = 'jfe internal CA ';
  const host = hostname.slice(0, MAX_CN - prefix.length - id.length - 1) || 'localhost';
  const cert = await x509.X509CertificateGenerator.createSelfSigned(
    {
      serialNumber: randomSerialHex(),
      name: [{ CN: [`${prefix}${host} ${id}`] }, { O: ['jfe'] }],
      notBefore: new Date(now - BACKDATE_MS),
      notAfter: new Date(now + CA_VALIDITY_MS),
      keys,
      signingAlgorithm: SIGNING,
      extensions: [
        // pathLenConstraint 0: this root signs leaves only, never another CA.
        new x509.BasicConstraintsExtension(true, 0, true),
        new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
        await x509.SubjectKeyIdentifierExtension.create(keys.publicKey, false, crypto),
      ],
    },
    crypto,
  );
  const keyPem = pkcs8Pem(await crypto.subtle.exportKey('pkcs8', keys.privateKey));
  return { keyPem, certPem: normalisePem(cert.toString('pem')) };
}

interface LoadedCa {
  cert: x509.X509Certificate;
  key: CryptoKey;
  pem: string;
}

async function readOptional(file: string): Promise<string | null> {
  try {
    return await fsp.readFile(file, 'utf8');
  } catch (err) {
    if (isSystemError(err, 'ENOENT')) return null;
    throw new JfeError('JFE_ERR_STATE', `internal CA: cannot read ${file} (${(err as NodeJS.ErrnoException).code ?? (err as Error).message}); run jfe as root or fix its permissions`, { cause: err });
  }
}

/** Null when <ca>/ has neither file (nothing made yet); throws for a half or a broken root. */
async function loadCa(caDir: string, now: () => number, log: Logger): Promise<LoadedCa | null> {
  const keyFile = path.join(caDir, CA_KEY_FILE);
  const certFile = path.join(caDir, CA_CERT_FILE);
  const [keyPem, certPem] = await Promise.all([readOptional(keyFile), readOptional(certFile)]);
  if (keyPem === null && certPem === null) return null;
  const moveAway = `move ${caDir} away to create a new root (clients must then trust the new one), or restore both files`;
  if (keyPem === null || certPem === null) {
    throw new JfeError('JFE_ERR_STATE', `internal CA: ${keyPem === null ? keyFile : certFile} is missing but ${keyPem === null ? certFile : keyFile} exists; ${moveAway}`);
  }
  let nodeCert: NodeX509Certificate;
  let keyDer: ArrayBuffer;
  try {
    nodeCert = new NodeX509Certificate(certPem);
    const keyObj = createPrivateKey(keyPem);
    if (keyObj.asymmetricKeyType !== 'ec' || keyObj.asymmetricKeyDetails?.namedCurve !== 'prime256v1') {
      throw new Error(`${keyFile} is not an ECDSA P-256 key`);
    }
    if (!nodeCert.ca) throw new Error(`${certFile} is not a CA certificate`);
    if (!nodeCert.checkPrivateKey(keyObj)) throw new Error(`${keyFile} does not match ${certFile}`);
    keyDer = pemToDer(keyPem);
  } catch (err) {
    throw new JfeError('JFE_ERR_STATE', `internal CA: ${(err as Error).message}; ${moveAway}`, { cause: err });
  }
  const notAfter = new Date(nodeCert.validTo).getTime();
  if (notAfter <= now()) {
    throw new JfeError('JFE_ERR_STATE', `internal CA: the root in ${certFile} expired on ${new Date(notAfter).toISOString()}; ${moveAway}`);
  }
  if (notAfter - now() < CA_EXPIRY_WARNING_MS) {
    log.warn({ notAfter: new Date(notAfter).toISOString(), file: certFile }, 'internal CA root expires within a year; leaves are cut short to its end');
  }
  const st = await fsp.stat(keyFile);
  if ((st.mode & 0o077) !== 0) {
    try {
      await fsp.chmod(keyFile, 0o600);
    } catch (err) {
      throw new JfeError('JFE_ERR_STATE', `internal CA: ${keyFile} is readable by group or others and cannot be made 0600 (${(err as Error).message}); chmod 0600 it`, { cause: err });
    }
    log.warn({ file: keyFile }, 'internal CA key was readable by group or others; mode set to 0600');
  }
  const key = await crypto.subtle.importKey('pkcs8', keyDer, EC_KEY, false, ['sign']);
  return { cert: new x509.X509Certificate(certPem), key, pem: normalisePem(certPem) };
}
