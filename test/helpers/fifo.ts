// FIFOs made by tests, in place of backup files: a reader that opens one blocks until a writer
// comes, which is the hang memsync must not fall into.
import { execFile } from 'node:child_process';
import { closeSync, openSync } from 'node:fs';
import { promisify } from 'node:util';

const execFileAsync = promisify(execFile);
const made: string[] = [];

export async function mkfifo(absolute: string): Promise<void> {
  await execFileAsync('mkfifo', [absolute]);
  made.push(absolute);
}

/**
 * Opens every FIFO made so far read-write, so a reader blocked in open() on one (the defect) is
 * let go. Synchronous on purpose: it must work while every thread of the libuv pool is blocked.
 */
export function releaseFifos(): void {
  for (const fifo of made.splice(0)) {
    try {
      closeSync(openSync(fifo, 'r+'));
    } catch {
      // removed with its directory
    }
  }
}
