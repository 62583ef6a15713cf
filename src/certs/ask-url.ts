// SPDX-License-Identifier: MIT
// The operator's own answer to "may this name have a certificate?": GET
// <ask URL>?domain=<name>; 200 allows. Bounded in time, reads no body, and
// follows redirects only within the same origin (an answer from another host
// is no answer from the operator).
import http from 'node:http';
import https from 'node:https';

export type AskOutcome = { result: 'allowed' } | { result: 'refused'; status: number; detail?: string } | { result: 'error'; detail: string };

export interface AskOptions {
  timeoutMs: number;
  /** Same-origin redirects followed at most. */
  maxRedirects?: number;
}

function askUrlFor(base: string, name: string): URL {
  const u = new URL(base);
  u.searchParams.set('domain', name);
  return u;
}

function getStatus(u: URL, signal: AbortSignal): Promise<{ status: number; location: string | undefined }> {
  const mod = u.protocol === 'https:' ? https : http;
  return new Promise((resolve, reject) => {
    // agent: false: one connection per question, nothing pooled between answers.
    const req = mod.get(u, { agent: false, signal, headers: { accept: '*/*', 'user-agent': 'jfe-name-policy' } }, (res) => {
      const location = res.headers.location;
      // The status is the answer; the body is never read, so its size cannot matter.
      res.destroy();
      resolve({ status: res.statusCode ?? 0, location: typeof location === 'string' ? location : undefined });
    });
    req.on('error', reject);
  });
}

/** Asks `askUrl` about `name`. Never rejects. */
export async function askAllows(askUrl: string, name: string, opts: AskOptions): Promise<AskOutcome> {
  const signal = AbortSignal.timeout(opts.timeoutMs);
  let u = askUrlFor(askUrl, name);
  const origin = u.origin;
  try {
    for (let hop = 0; ; hop++) {
      const { status, location } = await getStatus(u, signal);
      if (status === 200) return { result: 'allowed' };
      if (status >= 300 && status < 400 && location !== undefined && hop < (opts.maxRedirects ?? 3)) {
        const next = new URL(location, u);
        if (next.origin !== origin) return { result: 'refused', status, detail: 'redirect to another origin not followed' };
        u = next;
        continue;
      }
      return { result: 'refused', status };
    }
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    if (signal.aborted) return { result: 'error', detail: `no answer within ${opts.timeoutMs} ms` };
    return { result: 'error', detail: e.code ?? e.message };
  }
}
