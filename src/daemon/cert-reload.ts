// SPDX-License-Identifier: MIT
// The certificate source a worker hands its agent, swappable on SIGHUP: the
// state directory is read again into a fresh store (held contexts dropped,
// files an operator replaced or removed taken into account). A failed reload
// keeps serving what was loaded.
import type { CertRequest, CertSource } from '../certs/cert-source';
import type { SecureContext } from 'node:tls';
import type { Logger } from '../log';

export class ReloadableCertSource implements CertSource {
  constructor(
    private current: CertSource,
    private readonly open: () => Promise<CertSource>,
    private readonly log: Logger,
  ) {}

  contextFor(req: CertRequest): Promise<SecureContext> {
    return this.current.contextFor(req);
  }

  async reload(): Promise<boolean> {
    try {
      this.current = await this.open();
    } catch (err) {
      this.log.error({ err }, 'certificate reload failed; keeping the loaded certificates');
      return false;
    }
    this.log.info({}, 'certificates reloaded from the state directory');
    return true;
  }
}
