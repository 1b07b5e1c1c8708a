// What a test needs of the machine it runs on: a port to listen on (or to find closed), and a
// user without root's privileges, so that file permissions apply to a process run as it.
import { execFile } from 'node:child_process';
import { createServer, type Server } from 'node:net';
import { promisify } from 'node:util';

/** A listener on a free port of 127.0.0.1; close it to have a port nothing listens on. */
export async function listenOnFreePort(): Promise<{ port: number; server: Server }> {
  const listener = createServer();
  await new Promise<void>((resolve) => listener.listen(0, '127.0.0.1', () => resolve()));
  const address = listener.address();
  if (typeof address !== 'object' || address === null) throw new Error('the listener has no port');
  return { port: address.port, server: listener };
}

export function closeListener(server: Server): Promise<void> {
  return new Promise<void>((resolve) => server.close(() => resolve()));
}

/**
 * The user to run a process as so that file permissions apply to it: this process's own when
 * it is not root, else "nobody". A string says why there is none.
 */
export async function unprivilegedUser(): Promise<{ uid: number; gid: number } | string> {
  const uid = process.getuid?.();
  const gid = process.getgid?.();
  if (uid !== undefined && gid !== undefined && uid !== 0) return { uid, gid };
  try {
    const run = promisify(execFile);
    const nobodyUid = Number((await run('id', ['-u', 'nobody'])).stdout.trim());
    const nobodyGid = Number((await run('id', ['-g', 'nobody'])).stdout.trim());
    if (Number.isInteger(nobodyUid) && Number.isInteger(nobodyGid) && nobodyUid > 0) return { uid: nobodyUid, gid: nobodyGid };
    return 'the user "nobody" has no usable uid and gid';
  } catch (error) {
    return `the tests run as root, where chmod 000 stops no read, and there is no user "nobody" to run the agent as (${String(error)})`;
  }
}
