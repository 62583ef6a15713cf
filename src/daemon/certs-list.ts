// SPDX-License-Identifier: MIT
// For `jfe certs list`: the stored certificates of a state directory (cli/
// reaches certs/ only through daemon/).
export { type StoredCert, listStoredCerts } from '../certs/cert-list';
