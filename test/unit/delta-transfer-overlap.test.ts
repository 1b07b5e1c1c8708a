// A delta upload starts the server's copies without waiting for the local MD5s of the copied
// ranges: those are read while the server copies, and only the checks of its answers wait for
// them. The local file here holds back every read inside a copied range until the store has
// copied that range: a transfer that took the MD5s first would never reach the store.
import { createHash } from 'node:crypto';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { AppError } from '../../src/errors.js';
import { chunkBuffer } from '../../src/delta/chunker.js';
import { planComposition } from '../../src/delta/compose-plan.js';
import { createSignature } from '../../src/delta/signature.js';
import { MemoryRemoteStore } from '../../src/remote/memory-store.js';
import type { ComposeOptions, FileBody } from '../../src/remote/store.js';
import { fileDigestAccumulator, type FileDigest } from '../../src/snapshot/digest.js';
import { buildManifest } from '../../src/snapshot/manifest.js';
import { SignatureStore } from '../../src/state/signature-store.js';
import { DeltaTransfer } from '../../src/upload/delta-transfer.js';
import { pseudoRandomBytes } from '../helpers/delta-data.js';
import { recordingLogger, type LogLine } from '../helpers/recording-logger.js';
import { tempDir } from '../helpers/tmp.js';

const MIB = 1024 * 1024;
const S1 = 'auto_20250101_000000';
const S2 = 'auto_20250102_000000';
const BASE = pseudoRandomBytes(11, 40 * MIB);
// An edit in the middle: copied, sent, copied.
const NEXT = Buffer.concat([BASE.subarray(0, 20 * MIB), Buffer.from('EDITED'), BASE.subarray(20 * MIB + 6)]);
const sha256Hex = (bytes: Buffer): string => createHash('sha256').update(bytes).digest('hex');
/** The ranges of NEXT the transfer will have the server copy: the plan it makes from the same signatures. */
const COPIED = planComposition(chunkBuffer(NEXT), NEXT.length, createSignature(chunkBuffer(BASE), BASE.length, sha256Hex(BASE))).parts.flatMap((part) =>
  part.kind === 'copy' ? [{ start: part.targetStart, end: part.targetStart + part.length }] : [],
);
const inCopiedRange = (start: number, end: number): boolean => COPIED.some((range) => start < range.end && range.start < end);

/** The in-memory store, telling who waits on it each copied range it has copied (as target offsets). */
class CopyWatchingStore extends MemoryRemoteStore {
  readonly copied: { start: number; end: number }[] = [];
  private readonly waiting: (() => void)[] = [];
  /** Cancels the composition once this many ranges are copied. */
  cancelAfterCopies: { count: number; controller: AbortController } | undefined;

  override async compose(targetKey: string, options: ComposeOptions): Promise<void> {
    const targetStarts = options.parts.reduce<number[]>((starts, part, index) => [...starts, (starts[index] ?? 0) + (part.kind === 'copy' ? part.sourceEnd - part.sourceStart : part.length)], [0]);
    return super.compose(targetKey, {
      ...options,
      onPartDone: (done) => {
        options.onPartDone?.(done);
        if (done.kind !== 'copy') return;
        this.copied.push({ start: targetStarts[done.index] ?? 0, end: (targetStarts[done.index] ?? 0) + done.bytes });
        for (const wake of this.waiting.splice(0)) wake();
        if (this.cancelAfterCopies !== undefined && this.copied.length >= this.cancelAfterCopies.count) this.cancelAfterCopies.controller.abort();
      },
    });
  }

  /** Resolves once a range covering [start, end) is copied. */
  async untilCopied(start: number, end: number): Promise<void> {
    while (!this.copied.some((range) => range.start <= start && end <= range.end)) await new Promise<void>((wake) => this.waiting.push(wake));
  }
}

/** NEXT as a local file whose reads inside a copied range wait until the store has copied it; sent ranges read at once. */
function localFile(store: CopyWatchingStore): FileBody & { copiedRangeReads: number } {
  const body = {
    kind: 'file' as const,
    copiedRangeReads: 0,
    read: async (target: Buffer, position: number): Promise<void> => {
      if (inCopiedRange(position, position + target.length)) {
        body.copiedRangeReads += 1;
        await store.untilCopied(position, position + target.length);
      }
      NEXT.copy(target, 0, position, position + target.length);
    },
  };
  return body;
}

function digestOf(bytes: Buffer): FileDigest {
  const digests = fileDigestAccumulator(bytes.length, 16 * MIB);
  digests.update(bytes);
  return digests.digest();
}

async function setup(): Promise<{ store: CopyWatchingStore; delta: DeltaTransfer; logs: LogLine[] }> {
  const logs: LogLine[] = [];
  const store = new CopyWatchingStore();
  const baseDigest = digestOf(BASE);
  await store.put(`${S1}/metadata.json`, () => BASE, { sizeBytes: BASE.length, md5Hex: undefined, partSizeBytes: 8 * MIB, ifNoneMatch: false, metadata: {}, signal: undefined, onProgress: undefined });
  const delta = new DeltaTransfer({
    store,
    signatures: new SignatureStore(path.join(await tempDir('delta-overlap'), 'signatures'), recordingLogger(logs)),
    minFileBytes: 16 * MIB,
    knownSnapshots: async () => [{ name: S1, timeMs: 1, manifest: buildManifest(S1, 'directory', [{ path: 'metadata.json', size: BASE.length, sha256: baseDigest.sha256 }]) }],
    agentId: 'overlap-agent',
    retry: { attempts: 1, baseDelayMs: 1, maxDelayMs: 1 },
    log: recordingLogger(logs),
  });
  await delta.keep(chunkBuffer(BASE), baseDigest);
  await delta.keep(chunkBuffer(NEXT), digestOf(NEXT));
  return { store, delta, logs };
}

describe('DeltaTransfer: the server copies while the local MD5s are taken', () => {
  it('starts the copies before the local MD5s of the copied ranges are read, and still checks every one of them', async () => {
    const { store, delta, logs } = await setup();
    const body = localFile(store);
    const result = await delta.compose(S2, `${S2}/metadata.json`, { path: 'metadata.json', digest: digestOf(NEXT), body }, new AbortController().signal, recordingLogger(logs));

    expect(result, JSON.stringify(logs.filter((line) => line.level !== 'debug'))).toBeDefined();
    expect(store.copied.length).toBe(2);
    // The copied ranges were read (for their MD5s), and only once the store had copied them.
    expect(body.copiedRangeReads).toBeGreaterThan(0);
    const stored = store.objects.get(`${S2}/metadata.json`);
    expect(stored?.bytes.equals(NEXT)).toBe(true);
    expect(result?.etag).toBe(stored?.etag);
    expect(result?.bytesSent).toBeLessThan(6 * MIB);
    expect(await store.listMultipartUploads('')).toEqual([]);
  });

  it('a copied range whose local bytes differ is still caught after the copy: the file is left to be sent whole; nothing stored, no open upload', async () => {
    const { store, delta, logs } = await setup();
    // The local file's copied bytes are not the ones its signature promised (changed after it was chunked).
    const changed = Buffer.from(NEXT);
    changed[30 * MIB] = (changed[30 * MIB] ?? 0) ^ 0xff;
    const body: FileBody = { kind: 'file', read: async (target, position) => void changed.copy(target, 0, position, position + target.length) };
    const result = await delta.compose(S2, `${S2}/metadata.json`, { path: 'metadata.json', digest: digestOf(NEXT), body }, new AbortController().signal, recordingLogger(logs));

    expect(result).toBeUndefined();
    expect(logs.some((line) => line.level === 'warn' && String(line.fields.reason).includes('differs from the local file'))).toBe(true);
    expect(store.objects.has(`${S2}/metadata.json`)).toBe(false);
    expect(await store.listMultipartUploads('')).toEqual([]);
  });

  it('cancelled while a copied range waits for its local MD5: AppError cancelled; nothing stored, no open upload', async () => {
    const { store, delta, logs } = await setup();
    const cancel = new AbortController();
    store.cancelAfterCopies = { count: 2, controller: cancel };
    // Reads of copied ranges do not come back before the cancellation: only it ends the wait for their MD5s.
    const body: FileBody = {
      kind: 'file',
      read: async (target, position) => {
        if (inCopiedRange(position, position + target.length)) await new Promise<void>((_, fail) => cancel.signal.addEventListener('abort', () => fail(new Error('read cut short')), { once: true }));
        NEXT.copy(target, 0, position, position + target.length);
      },
    };
    const error = await delta.compose(S2, `${S2}/metadata.json`, { path: 'metadata.json', digest: digestOf(NEXT), body }, cancel.signal, recordingLogger(logs)).then(
      () => undefined,
      (e: unknown) => e,
    );

    expect(error).toBeInstanceOf(AppError);
    expect((error as AppError).kind).toBe('cancelled');
    expect(store.copied.length).toBe(2);
    expect(store.objects.has(`${S2}/metadata.json`)).toBe(false);
    expect(await store.listMultipartUploads('')).toEqual([]);
  });
});
