// A process that dies (SIGKILL, by its own hand) at the moment the directory store has written
// every byte of an object to its temporary file and not yet put it in place: what a crash or a
// power cut at that point leaves on disk. usage: node --import tsx fs-store-crash-child.ts DIR PREFIX KEY BYTES
import { FsRemoteStore } from '../../src/remote/fs-store.js';

const [directory, prefix, key, size] = process.argv.slice(2);
if (directory === undefined || prefix === undefined || key === undefined || size === undefined) throw new Error('usage: DIR PREFIX KEY BYTES');
const bytes = Buffer.alloc(Number(size), 7);
const store = new FsRemoteStore({ directory, prefix });
await store.put(key, () => bytes, {
  sizeBytes: bytes.length,
  md5Hex: undefined,
  partSizeBytes: undefined,
  ifNoneMatch: true,
  metadata: { 'memsync-agent': 'crashing-agent' },
  signal: undefined,
  // Told after each write into the temporary file; the last one comes before it is placed.
  onProgress: (loaded) => {
    if (loaded === bytes.length) process.kill(process.pid, 'SIGKILL');
  },
});
process.stdout.write('placed\n');
