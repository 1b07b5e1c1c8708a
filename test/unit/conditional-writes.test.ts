import { describe, expect, it } from 'vitest';
import { probeConditionalWrites, PROBE_KEY_PREFIX } from '../../src/remote/conditional-writes.js';
import { MemoryRemoteStore } from '../../src/remote/memory-store.js';

describe('probeConditionalWrites', () => {
  it.each([
    ['honoured', {}],
    ['ignored', { honourIfNoneMatch: false }],
    ['refused', { refuseIfNoneMatch: true }],
  ] as const)('detects a server that %s If-None-Match and leaves no probe object behind', async (mode, options) => {
    const store = new MemoryRemoteStore(options);
    expect(await probeConditionalWrites(store)).toBe(mode);
    expect([...store.objects.keys()]).toEqual([]);
    expect(store.putLog.every((key) => key.startsWith(PROBE_KEY_PREFIX))).toBe(true);
  });

  it('after a refusal, the store stops sending the header and conditional puts go through', async () => {
    const store = new MemoryRemoteStore({ refuseIfNoneMatch: true });
    store.useConditionalWrites(false);
    const bytes = Buffer.from('x');
    await store.put('a', () => bytes, { sizeBytes: 1, md5Hex: undefined, partSizeBytes: undefined, ifNoneMatch: true, metadata: {}, signal: undefined, onProgress: undefined });
    expect(store.objects.has('a')).toBe(true);
  });
});
