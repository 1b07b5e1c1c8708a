// Measures the bandwidth limit: 64 MiB uploaded and downloaded at 16 MiB/s through the S3 store,
// against the S3 server the test harness uses (Ceph RGW, MinIO...). Prints elapsed time and the
// effective rate each way. Run: node --import tsx bench/bandwidth.ts
import { createHash, randomBytes } from 'node:crypto';
import { S3RemoteStore } from '../src/remote/s3-store.js';
import type { FileBody } from '../src/remote/store.js';
import { createTestBucket, emptyAndDeleteBucket, startS3TestServer } from '../test/helpers/s3-fixture.js';

const MIB = 1024 * 1024;
const SIZE_MIB = Number(process.env.BENCH_SIZE_MIB ?? 64);
const RATE_MIB = Number(process.env.BENCH_RATE_MIB ?? 16);

function report(direction: string, seconds: number): void {
  if (RATE_MIB === 0) {
    console.log(`${direction}: ${SIZE_MIB} MiB in ${seconds.toFixed(2)} s = ${(SIZE_MIB / seconds).toFixed(2)} MiB/s (no limit)`);
    return;
  }
  const expected = SIZE_MIB / RATE_MIB;
  console.log(`${direction}: ${SIZE_MIB} MiB in ${seconds.toFixed(2)} s = ${(SIZE_MIB / seconds).toFixed(2)} MiB/s (limit ${RATE_MIB} MiB/s, expected ${expected.toFixed(2)} s, ${(((seconds - expected) / expected) * 100).toFixed(1)}%)`);
}

const { server, stop } = await startS3TestServer();
const bucket = await createTestBucket(server, 'bench-bandwidth');
const store = new S3RemoteStore({
  bucket,
  prefix: 'bench/',
  endpoint: server.endpoint,
  region: server.region,
  credentials: { accessKeyId: server.accessKeyId, secretAccessKey: server.secretAccessKey },
  forcePathStyle: true,
  partsInFlight: 4,
  // BENCH_RATE_MIB=0: no limit, the baseline of this server and machine.
  bandwidthLimit: RATE_MIB === 0 ? undefined : { upBytesPerSecond: RATE_MIB * MIB, downBytesPerSecond: RATE_MIB * MIB },
});
try {
  const bytes = randomBytes(SIZE_MIB * MIB);
  const file: FileBody = { kind: 'file', read: async (target, position) => void bytes.copy(target, 0, position, position + target.length) };
  // A fresh bucket's first write is slow on Ceph RGW (about 2 s here): not the limit's doing, so it is paid before timing.
  await store.put('warm-up', () => Buffer.from('x'), { sizeBytes: 1, md5Hex: undefined, partSizeBytes: undefined, ifNoneMatch: false, metadata: {}, signal: undefined, onProgress: undefined });
  const upStart = performance.now();
  await store.put('limited.bin', () => file, { sizeBytes: bytes.length, md5Hex: undefined, partSizeBytes: 8 * MIB, ifNoneMatch: false, metadata: {}, signal: undefined, onProgress: undefined });
  report('upload', (performance.now() - upStart) / 1000);

  const downStart = performance.now();
  const hash = createHash('sha256');
  for await (const chunk of await store.get('limited.bin')) hash.update(chunk as Buffer);
  report('download', (performance.now() - downStart) / 1000);
  if (hash.digest('hex') !== createHash('sha256').update(bytes).digest('hex')) throw new Error('downloaded bytes differ');
} finally {
  store.close();
  await emptyAndDeleteBucket(server, bucket);
  await stop();
}
