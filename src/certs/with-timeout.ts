// SPDX-License-Identifier: MIT
// A bound on a certificate-side wait: the promise's own outcome, or a
// JFE_ERR_CERT when it takes longer. The timer never keeps the process alive.
import { JfeError } from '../errors';

export function withTimeout<T>(p: Promise<T>, ms: number, message: (ms: number) => string): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const timer = setTimeout(() => reject(new JfeError('JFE_ERR_CERT', message(ms))), ms);
    timer.unref();
    p.then(
      (v) => {
        clearTimeout(timer);
        resolve(v);
      },
      (err: unknown) => {
        clearTimeout(timer);
        reject(err);
      },
    );
  });
}
