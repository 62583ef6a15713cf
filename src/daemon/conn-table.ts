// SPDX-License-Identifier: MIT
// The connection counts every worker of one `jfe run` shares, so that
// --max-connections and --max-connections-per-client hold for the host
// although the BPF program spreads each client's connections over all the
// workers: a memory block (native/src/conn_table.cc) the primary makes and
// hands to each worker it forks, with a column of its own. A worker counts in
// its column only; the primary zeroes the column of a worker that exited
// before giving it to another, so the connections of a worker that crashed
// stop counting at once. Per connection: one native call in, one out, no IPC.
import fs from 'node:fs';
import type { ConnectionCounter, ConnectionCounts } from '../agent/admission';
import type { ClientKey } from '../client-key';
import { type ConnTable, native } from '../native';

/** In a worker: the fd of the block (its stdio index) and the column it was given. */
export const CONN_TABLE_FD_ENV = 'JFEWORKER_CONN_TABLE_FD';
export const CONN_COLUMN_ENV = 'JFEWORKER_CONN_COLUMN';
/** The block's fd in a worker: stdio 0-2, then the IPC channel (3), then this. */
export const WORKER_TABLE_FD = 4;

const MIN_ENTRIES = 1 << 10;
const MAX_ENTRIES = 1 << 22;

/**
 * Slots per column: a power of two at least twice the host's cap, so one
 * worker holding every connection, each from another client, still finds a
 * free slot near each client's place (a client that finds none is counted in
 * the host's total only). Memory is touched only where clients land.
 */
export function tableEntries(maxConnections: number): number {
  let n = MIN_ENTRIES;
  while (n < 2 * maxConnections && n < MAX_ENTRIES) n *= 2;
  return n;
}

/** Columns: room for two generations of workers at once (a reload) and for restarts, twice over. */
export function tableColumns(slots: number): number {
  return Math.min(256, Math.max(8, 4 * slots));
}

/** A worker's share of the block, as the pool forks it. */
export interface WorkerShare {
  env: Record<string, string>;
  /** The block's fd, passed as the worker's WORKER_TABLE_FD. */
  fd: number;
  /** Once the worker has exited: its column is zeroed and free again. */
  exited(): void;
}

/** The primary's side: the block, and which columns are given to live workers. */
export class HostConnectionTable {
  private readonly free: number[];
  private readonly view: ConnTable;

  private constructor(
    private readonly fd: number,
    columns: number,
  ) {
    this.free = Array.from({ length: columns }, (_, i) => i);
    this.view = new (native().ConnTable)(fd, -1, new Uint32Array(2));
  }

  static create(maxConnections: number, slots: number): HostConnectionTable {
    const columns = tableColumns(slots);
    return new HostConnectionTable(native().connTableCreate(columns, tableEntries(maxConnections)), columns);
  }

  /** A column for a worker about to be forked; null when every column is taken (the worker then counts alone). */
  forWorker(): WorkerShare | null {
    const column = this.free.shift();
    if (column === undefined) return null;
    this.view.resetColumn(column);
    this.view.setInUse(column, true);
    let done = false;
    return {
      env: { [CONN_TABLE_FD_ENV]: String(WORKER_TABLE_FD), [CONN_COLUMN_ENV]: String(column) },
      fd: this.fd,
      exited: () => {
        if (done) return;
        done = true;
        // The worker is gone: nobody writes its column any more.
        this.view.resetColumn(column);
        this.free.push(column);
      },
    };
  }

  /** Connections held by every worker now. */
  hostTotal(): number {
    return this.view.hostTotal();
  }
}

/** A worker's counter over its column of the block. */
class SharedConnectionCounter implements ConnectionCounter {
  private readonly out = new Uint32Array(2);
  private readonly table: ConnTable;

  constructor(fd: number, column: number) {
    this.table = new (native().ConnTable)(fd, column, this.out);
  }

  acquire(key: ClientKey | null, counts: ConnectionCounts): number {
    // Kind 0 is no address: one bucket, never compared with a client's cap.
    const slot = key === null ? this.table.acquire(0, 0, 0) : this.table.acquire(key.family, key.hi, key.lo);
    counts.client = this.out[0] ?? 0;
    counts.host = this.out[1] ?? 0;
    return slot;
  }

  release(ticket: number): void {
    this.table.release(ticket);
  }

  hostTotal(): number {
    return this.table.hostTotal();
  }
}

/** In a worker: the counter over the column its primary gave it, or null when it was given none. */
export function openWorkerCounter(env: NodeJS.ProcessEnv): ConnectionCounter | null {
  const fd = env[CONN_TABLE_FD_ENV];
  const column = env[CONN_COLUMN_ENV];
  if (fd === undefined || column === undefined) return null;
  const counter = new SharedConnectionCounter(Number(fd), Number(column));
  fs.closeSync(Number(fd)); // the mapping stays
  return counter;
}
