// SPDX-License-Identifier: MIT
// Native errors become text a person can act on.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { errnoHint, kernelAtLeast } from '../../../src/bpf/errno-hints';
import { wrapNative } from '../../../src/bpf/native-error';

const err = (code: string, syscall: string, log?: string) => Object.assign(new Error(`${syscall}: x`), { code, syscall, log });
const ctx = { kernelRelease: '6.1.0-18-amd64', pinDir: '/sys/fs/bpf/jfe' };

test('missing privileges say: run as root', () => {
  for (const syscall of ['bpf_prog_load', 'bpf_obj_get', 'bpf_link_create', 'bpf_map_update_elem']) {
    assert.equal(errnoHint(err('EPERM', syscall), ctx), 'run as root: needs CAP_BPF and CAP_NET_ADMIN');
  }
  assert.match(errnoHint(err('EPERM', 'setns'), ctx) ?? '', /^run as root: .*CAP_SYS_ADMIN/);
});

test('an old kernel says which version sk_lookup needs', () => {
  assert.equal(errnoHint(err('EINVAL', 'bpf_prog_load'), { kernelRelease: '5.4.0-150-generic' }), 'kernel lacks sk_lookup: needs ≥ 5.9 (this kernel is 5.4.0-150-generic)');
  const h = errnoHint(err('EINVAL', 'bpf_prog_load', 'libbpf: prog load failed\nverifier: R1 invalid mem access\n'), ctx) ?? '';
  assert.match(h, /kernel refused the sk_lookup program/);
  assert.match(h, /R1 invalid mem access/, 'the verifier log travels with the error');
});

test('pinning outside bpffs says bpffs is not mounted at the pin dir', () => {
  assert.match(errnoHint(err('EPERM', 'bpf_obj_pin'), ctx) ?? '', /^bpffs not mounted at \/sys\/fs\/bpf\/jfe/);
});

test('unknown combinations give no hint', () => {
  assert.equal(errnoHint(err('EBADF', 'bpf_map_update_elem'), ctx), null);
  assert.equal(errnoHint(new Error('plain'), ctx), null);
});

test('kernel versions compare by major and minor', () => {
  assert.equal(kernelAtLeast('5.9.0', 5, 9), true);
  assert.equal(kernelAtLeast('5.8.18', 5, 9), false);
  assert.equal(kernelAtLeast('6.1.0-18-amd64', 5, 9), true);
  assert.equal(kernelAtLeast('4.19.0', 5, 9), false);
});

test('wrapped errors keep the cause and get the not-root code', () => {
  const wrapped = wrapNative(err('EPERM', 'bpf_prog_load'), 'JFE_ERR_BPF_LOAD', 'load the sk_lookup program');
  assert.equal(wrapped.code, 'JFE_ERR_NOT_ROOT');
  assert.equal(wrapped.message, 'load the sk_lookup program: run as root: needs CAP_BPF and CAP_NET_ADMIN');
  assert.equal((wrapped.cause as { code: string }).code, 'EPERM');
  const other = wrapNative(err('EBADF', 'bpf_map_update_elem'), 'JFE_ERR_BPF_MAP', 'set port set');
  assert.equal(other.code, 'JFE_ERR_BPF_MAP');
  assert.equal(other.message, 'set port set: bpf_map_update_elem: x');
});
