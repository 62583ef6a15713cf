// SPDX-License-Identifier: MIT
// The ACME account key: ECDSA P-256, made once in <state>/acme/account.key.pem
// (0600, atomic) and reused for every directory, so restarts keep the account.
import { createPrivateKey, generateKeyPairSync } from 'node:crypto';
import fsp from 'node:fs/promises';
import path from 'node:path';
import { JfeError, isSystemError } from '../../errors';
import type { Logger } from '../../log';
import type { StateDir } from '../state-dir';

export const ACME_DIR = 'acme';
export const ACCOUNT_KEY_FILE = 'account.key.pem';

/** Loads the account key, or creates it when absent. Throws JFE_ERR_STATE when the file exists but is unusable. */
export async function loadOrCreateAccountKey(stateDir: StateDir, log: Logger): Promise<string> {
  const dir = await stateDir.ensureDir(ACME_DIR);
  const file = path.join(dir, ACCOUNT_KEY_FILE);
  try {
    const pem = await fsp.readFile(file, 'utf8');
    const key = createPrivateKey(pem);
    if (key.asymmetricKeyType !== 'ec') throw new Error(`not an EC key (${key.asymmetricKeyType ?? 'unknown'})`);
    return pem;
  } catch (err) {
    if (!isSystemError(err, 'ENOENT')) {
      throw new JfeError('JFE_ERR_STATE', `ACME account key ${file}: ${(err as Error).message}; restore it from a backup, or remove it to register a new account`, { cause: err });
    }
  }
  const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const pem = privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
  // Two processes racing here would each write a key; only the primary calls this.
  await stateDir.writeFileAtomic(file, pem, 0o600);
  log.info({ file }, 'ACME account key created');
  return pem;
}
