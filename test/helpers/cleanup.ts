// SPDX-License-Identifier: MIT
// A stack of teardown steps run in reverse order, all of them, even when one fails.
export class Cleanup {
  private readonly steps: { what: string; fn: () => unknown }[] = [];

  add(what: string, fn: () => unknown): void {
    this.steps.push({ what, fn });
  }

  async run(): Promise<void> {
    const errors: string[] = [];
    while (this.steps.length > 0) {
      const step = this.steps.pop();
      if (!step) break;
      const started = Date.now();
      try {
        await step.fn();
        const took = Date.now() - started;
        if (took > 2000) process.stderr.write(`cleanup step "${step.what}" took ${took} ms\n`);
      } catch (err) {
        errors.push(`${step.what}: ${(err as Error).message}`);
      }
    }
    if (errors.length > 0) throw new Error(`cleanup failed:\n${errors.join('\n')}`);
  }
}
