// SPDX-License-Identifier: MIT
// The checks of `jfe doctor`, in the order an operator would fix them.
import type { Check } from './check';
import { attachedCheck, bpffsCheck, capabilitiesCheck, fwmarkSysctlCheck, kernelCheck, programCheck, routingCheck, rpFilterCheck, socketsCheck } from './host-checks';
import { openFilesCheck } from './open-files';
import { selfTestCheck } from './self-test';

export { type CheckResult, type DoctorOptions, runChecks } from './check';

export const DOCTOR_CHECKS: Check[] = [
  kernelCheck,
  capabilitiesCheck,
  bpffsCheck,
  attachedCheck,
  programCheck,
  socketsCheck,
  routingCheck,
  fwmarkSysctlCheck,
  rpFilterCheck,
  openFilesCheck,
  selfTestCheck,
];
