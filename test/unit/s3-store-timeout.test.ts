// A server that accepts connections and never answers (a hung gateway, a half-open connection)
// must make S3 calls fail as retryable "unavailable", not hang memsync forever.
import { createServer, type Server, type Socket } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { isAppError } from '../../src/errors.js';
import { S3RemoteStore } from '../../src/remote/s3-store.js';

const sockets = new Set<Socket>();
let server: Server | undefined;

afterEach(async () => {
  for (const socket of sockets) socket.destroy();
  await new Promise<void>((resolve) => (server ? server.close(() => resolve()) : resolve()));
  server = undefined;
});

async function blackHole(): Promise<string> {
  server = createServer((socket) => {
    sockets.add(socket);
    socket.on('data', () => undefined); // taken in, never answered
  });
  await new Promise<void>((resolve) => server?.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  return `http://127.0.0.1:${typeof address === 'object' && address !== null ? address.port : 0}`;
}

describe('S3RemoteStore against a server that never answers', () => {
  it('fails HEAD, PUT and the access check as remote_unavailable after the idle timeout', async () => {
    const store = new S3RemoteStore({
      bucket: 'memsync-test',
      prefix: 'memories/',
      endpoint: await blackHole(),
      region: 'us-east-1',
      credentials: { accessKeyId: 'test-access-key', secretAccessKey: 'test-secret-key' },
      forcePathStyle: true,
      partsInFlight: 1,
      idleTimeoutMs: 300,
    });
    try {
      const calls: Promise<unknown>[] = [
        store.head('a/b'),
        store.checkAccess(),
        store.put('a/c', () => Buffer.from('x'), { sizeBytes: 1, md5Hex: undefined, partSizeBytes: undefined, ifNoneMatch: true, metadata: {}, signal: undefined, onProgress: undefined }),
      ].map((call: Promise<unknown>) => call.then(() => undefined, (e: unknown) => e));
      for (const error of await Promise.all(calls)) {
        expect(isAppError(error, 'remote_unavailable'), String(error)).toBe(true);
        expect(isAppError(error) && error.retryable).toBe(true);
      }
    } finally {
      store.close();
    }
  }, 15_000);
});
