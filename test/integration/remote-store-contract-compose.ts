// The compose part of the RemoteStore contract: a new version of an object made of ranges of
// the previous one copied by the server and bytes sent from the local file, checked byte for
// byte, by its ETag, and for what a failure leaves behind (nothing, and no open upload).
import { createHash } from 'node:crypto';
import { Readable } from 'node:stream';
import { beforeAll, describe, expect, it } from 'vitest';
import { AppError } from '../../src/errors.js';
import type { ComposeOptions, ComposePartSpec, FileBody, RemoteStore } from '../../src/remote/store.js';
import { multipartEtag, normalizeEtag } from '../../src/snapshot/digest.js';
import { pseudoRandomBytes } from '../helpers/delta-data.js';
import type { Capability } from './remote-store-contract-probes.js';

export interface ComposeContractContext {
  name: string;
  store: () => RemoteStore;
  /** A fresh key namespace ('label-N/'). */
  ns: (label: string) => string;
  /** Whether the probes found the store to have a capability ("none left open" is asserted with multipartHousekeeping). */
  has: (capability: Capability) => boolean;
  /** Skips the running test, with the probe's reason, unless the store has every capability named. */
  need: (skip: (note: string) => never, ...capabilities: Capability[]) => void;
  /** The object's bytes as read by a client other than the store, or why there is none. */
  readIndependently?: (key: string) => Promise<Buffer | { skipped: string }>;
}

const MIB = 1024 * 1024;
const BASE_BYTES = 20 * MIB;
const METADATA = { 'memsync-agent': 'compose-agent', 'memsync-sha256': 'f'.repeat(64) };

/** A part in the plan: a range of the base object, or so many bytes of the local file sent. */
type Step = { copy: [number, number] } | { send: number };

interface ComposeCase {
  label: string;
  local: (base: Buffer) => Buffer;
  plan: Step[];
}

function md5Hex(bytes: Buffer): string {
  return createHash('md5').update(bytes).digest('hex');
}

function fileBodyOver(bytes: Buffer): FileBody {
  return {
    kind: 'file',
    read: async (target, position) => {
      if (position + target.length > bytes.length) throw new Error('read past the end');
      bytes.copy(target, 0, position, position + target.length);
    },
  };
}

/** The plan as ComposePartSpecs; checks it describes `local` exactly, so a wrong test plan fails loudly here. */
function partsFor(base: Buffer, local: Buffer, plan: Step[]): ComposePartSpec[] {
  let targetStart = 0;
  const parts = plan.map((step): ComposePartSpec => {
    if ('copy' in step) {
      const [sourceStart, sourceEnd] = step.copy;
      const bytes = local.subarray(targetStart, targetStart + sourceEnd - sourceStart);
      expect(bytes.equals(base.subarray(sourceStart, sourceEnd)), `plan: copy ${sourceStart}-${sourceEnd} is not the local bytes at ${targetStart}`).toBe(true);
      targetStart += bytes.length;
      return { kind: 'copy', sourceStart, sourceEnd, md5Hex: md5Hex(bytes) };
    }
    const part: ComposePartSpec = { kind: 'send', targetStart, length: step.send, md5Hex: md5Hex(local.subarray(targetStart, targetStart + step.send)) };
    targetStart += step.send;
    return part;
  });
  expect(targetStart, 'plan: the parts do not cover the local file').toBe(local.length);
  return parts;
}

function partMd5(part: ComposePartSpec): Buffer {
  if (typeof part.md5Hex !== 'string') throw new Error('partMd5: the MD5 is still pending');
  return Buffer.from(part.md5Hex, 'hex');
}

/**
 * The plan's copied parts with their local MD5s made known only once every copied part has been
 * reported done: a store that waited for an MD5 before copying would never finish. `md5Of` says
 * what each copied part's MD5 turns out to be (default: the right one).
 */
function md5sKnownAfterTheCopies(parts: ComposePartSpec[], md5Of: (md5Hex: string, index: number) => Promise<string> = async (md5Hex) => md5Hex) {
  const copies = parts.flatMap((part, index) => (part.kind === 'copy' ? [index] : []));
  const reported = new Set<number>();
  let allCopied!: () => void;
  const copied = new Promise<void>((resolve) => (allCopied = resolve));
  const pending = parts.map((part, index): ComposePartSpec => {
    if (part.kind !== 'copy') return part;
    const md5Hex = copied.then(() => md5Of(part.md5Hex as string, index));
    md5Hex.catch(() => undefined); // a composition that fails first never asks
    return { ...part, md5Hex };
  });
  const onPartDone = (part: { index: number; kind: string }): void => {
    if (part.kind === 'copy') reported.add(part.index);
    if (copies.every((index) => reported.has(index))) allCopied();
  };
  return { parts: pending, onPartDone, copies };
}

async function readAll(stream: NodeJS.ReadableStream): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream as AsyncIterable<Buffer>) chunks.push(Buffer.from(chunk));
  return Buffer.concat(chunks);
}

async function appErrorOf(promise: Promise<unknown>): Promise<AppError> {
  const error = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(error, 'expected compose to fail').toBeInstanceOf(AppError);
  return error as AppError;
}

const CASES: ComposeCase[] = [
  {
    label: 'appended at the end',
    local: (base) => Buffer.concat([base, pseudoRandomBytes(101, MIB + 7)]),
    plan: [{ copy: [0, 10 * MIB] }, { copy: [10 * MIB, BASE_BYTES] }, { send: MIB + 7 }],
  },
  {
    label: 'inserted in the middle',
    local: (base) => Buffer.concat([base.subarray(0, 9 * MIB), pseudoRandomBytes(102, 777), base.subarray(9 * MIB)]),
    // The inserted bytes are sent with enough of what follows for S3's 5 MiB minimum part.
    plan: [{ copy: [0, 9 * MIB] }, { send: 5 * MIB + 777 }, { copy: [14 * MIB, BASE_BYTES] }],
  },
  {
    label: 'deleted in the middle',
    local: (base) => Buffer.concat([base.subarray(0, 8 * MIB), base.subarray(8 * MIB + 4321)]),
    plan: [{ copy: [0, 8 * MIB] }, { copy: [8 * MIB + 4321, BASE_BYTES] }],
  },
  {
    label: 'edited at the start',
    local: (base) => Buffer.concat([pseudoRandomBytes(104, 100), base.subarray(100)]),
    plan: [{ send: 5 * MIB }, { copy: [5 * MIB, BASE_BYTES] }],
  },
  {
    label: 'shrunk, ending in a short copied part',
    local: (base) => base.subarray(0, 10 * MIB + 12_345),
    plan: [{ copy: [0, 10 * MIB] }, { copy: [10 * MIB, 10 * MIB + 12_345] }],
  },
];

export function composeContract(context: ComposeContractContext): void {
  describe('compose', () => {
    let base: Buffer;
    let baseKey: string;
    let baseEtag: string;

    async function putObject(key: string, bytes: Buffer): Promise<string> {
      const store = context.store();
      await store.put(key, () => Readable.from([bytes]), {
        sizeBytes: bytes.length,
        md5Hex: undefined,
        partSizeBytes: 5 * MIB,
        ifNoneMatch: false,
        metadata: {},
        signal: undefined,
        onProgress: undefined,
      });
      const head = await store.head(key);
      if (head === undefined) throw new Error(`${key} not stored`);
      return head.etag;
    }

    function options(sourceKey: string, sourceEtag: string, local: Buffer, parts: ComposePartSpec[], overrides: Partial<ComposeOptions> = {}): ComposeOptions {
      return { sourceKey, sourceEtag, parts, body: fileBodyOver(local), metadata: METADATA, signal: undefined, ...overrides };
    }

    /** Nothing at the target, and no multipart upload left open under `keyPrefix`. */
    async function expectNothingLeft(keyPrefix: string, targetKey: string): Promise<void> {
      const store = context.store();
      expect(await store.head(targetKey)).toBeUndefined();
      if (context.has('multipartHousekeeping')) expect(await store.listMultipartUploads(keyPrefix)).toEqual([]);
    }

    beforeAll(async () => {
      // Every compose test needs ranged copies; without them they skip and need no base.
      if (!context.has('partCopy')) return;
      base = pseudoRandomBytes(100, BASE_BYTES);
      baseKey = `${context.ns('compose-base')}index.faiss`;
      // The previous version as memsync writes a large file: in parts, so its ETag is of the -N form.
      baseEtag = await putObject(baseKey, base);
    });

    for (const [caseIndex, composeCase] of CASES.entries()) {
      it(`a file ${composeCase.label}: byte-identical, ETag md5-of-part-md5s-N of the planned parts, metadata stored, every part reported`, async ({ skip }) => {
        context.need(skip, 'partCopy');
        const store = context.store();
        const keyPrefix = context.ns('compose');
        const targetKey = `${keyPrefix}index.faiss`;
        const local = composeCase.local(base);
        const parts = partsFor(base, local, composeCase.plan);
        const done: Array<{ index: number; bytes: number; kind: string }> = [];
        await store.compose(targetKey, options(baseKey, baseEtag, local, parts, { onPartDone: (part) => done.push(part) }));

        const head = await store.head(targetKey);
        expect(head?.size).toBe(local.length);
        expect(normalizeEtag(head?.etag)).toBe(multipartEtag(parts.map(partMd5)));
        expect(head?.metadata).toEqual(METADATA);
        expect((await readAll(await store.get(targetKey))).equals(local), 'composed bytes differ from the local file').toBe(true);
        expect(done.sort((a, b) => a.index - b.index)).toEqual(parts.map((part, index) => ({ index, bytes: part.kind === 'copy' ? part.sourceEnd - part.sourceStart : part.length, kind: part.kind })));
        if (context.has('multipartHousekeeping')) expect(await store.listMultipartUploads(keyPrefix)).toEqual([]);
        // The source is untouched.
        expect((await store.head(baseKey))?.etag).toBe(baseEtag);

        if (caseIndex === 1 && context.readIndependently !== undefined) {
          const independent = await context.readIndependently(targetKey);
          if (Buffer.isBuffer(independent)) expect(independent.equals(local), 'the AWS CLI reads other bytes than the local file').toBe(true);
          else console.info(`[contract ${context.name}] independent read-back skipped: ${independent.skipped}`);
        }
      });
    }

    it('copied parts whose local MD5s are known only after the server copied them: the copies do not wait for them; byte-identical, ETag as planned', async ({ skip }) => {
      context.need(skip, 'partCopy');
      const store = context.store();
      const keyPrefix = context.ns('compose-md5-later');
      const targetKey = `${keyPrefix}index.faiss`;
      const local = Buffer.concat([base, pseudoRandomBytes(110, 1000)]);
      const planned = partsFor(base, local, [{ copy: [0, 10 * MIB] }, { copy: [10 * MIB, BASE_BYTES] }, { send: 1000 }]);
      const later = md5sKnownAfterTheCopies(planned);
      await store.compose(targetKey, options(baseKey, baseEtag, local, later.parts, { onPartDone: later.onPartDone }));
      const head = await store.head(targetKey);
      expect(normalizeEtag(head?.etag)).toBe(multipartEtag(planned.map(partMd5)));
      expect((await readAll(await store.get(targetKey))).equals(local), 'composed bytes differ from the local file').toBe(true);
      if (context.has('multipartHousekeeping')) expect(await store.listMultipartUploads(keyPrefix)).toEqual([]);
    });

    it('a copied part whose local MD5, known only after the copy, differs: AppError integrity naming the part; no object, no open upload', async ({ skip }) => {
      context.need(skip, 'partCopy');
      const store = context.store();
      const keyPrefix = context.ns('compose-md5-later-wrong');
      const targetKey = `${keyPrefix}index.faiss`;
      const planned = partsFor(base, base, [{ copy: [0, 10 * MIB] }, { copy: [10 * MIB, BASE_BYTES] }]);
      const wrongMd5 = md5Hex(Buffer.from('not these bytes'));
      const later = md5sKnownAfterTheCopies(planned, async (md5, index) => (index === 1 ? wrongMd5 : md5));
      const error = await appErrorOf(store.compose(targetKey, options(baseKey, baseEtag, base, later.parts, { onPartDone: later.onPartDone })));
      expect(error.kind, error.message).toBe('integrity');
      expect(error.message).toContain('part 2');
      expect(error.message).toContain(wrongMd5);
      await expectNothingLeft(keyPrefix, targetKey);
    });

    it('a copied part whose local MD5 cannot be taken (the local file unreadable): that failure; no object, no open upload', async ({ skip }) => {
      context.need(skip, 'partCopy');
      const store = context.store();
      const keyPrefix = context.ns('compose-md5-failed');
      const targetKey = `${keyPrefix}index.faiss`;
      const planned = partsFor(base, base, [{ copy: [0, 10 * MIB] }, { copy: [10 * MIB, BASE_BYTES] }]);
      const unreadable = new AppError('local_io', 'read index.faiss: EIO', { retryable: false });
      const later = md5sKnownAfterTheCopies(planned, async () => Promise.reject(unreadable));
      const error = await appErrorOf(store.compose(targetKey, options(baseKey, baseEtag, base, later.parts, { onPartDone: later.onPartDone })));
      expect(error.kind, error.message).toBe('local_io');
      await expectNothingLeft(keyPrefix, targetKey);
    });

    it('cancelled while a copied part still waits for its local MD5: AppError cancelled; no object, no open upload', async ({ skip }) => {
      context.need(skip, 'partCopy');
      const store = context.store();
      const keyPrefix = context.ns('compose-md5-cancel');
      const targetKey = `${keyPrefix}index.faiss`;
      const planned = partsFor(base, base, [{ copy: [0, 10 * MIB] }, { copy: [10 * MIB, BASE_BYTES] }]);
      const cancel = new AbortController();
      // MD5s that never come: only the cancellation ends the wait.
      const parts = planned.map((part): ComposePartSpec => (part.kind === 'copy' ? { ...part, md5Hex: new Promise<string>(() => undefined) } : part));
      const done = new Set<number>();
      const onPartDone = (part: { index: number }): void => {
        done.add(part.index);
        if (done.size === parts.length) cancel.abort();
      };
      const error = await appErrorOf(store.compose(targetKey, options(baseKey, baseEtag, base, parts, { signal: cancel.signal, onPartDone })));
      expect(error.kind, error.message).toBe('cancelled');
      await expectNothingLeft(keyPrefix, targetKey);
    });

    it('a source replaced since the plan was made: AppError conflict naming the source; no object, no open upload', async ({ skip }) => {
      context.need(skip, 'partCopy');
      const store = context.store();
      const keyPrefix = context.ns('compose-replaced');
      const sourceKey = `${keyPrefix}old/index.faiss`;
      const targetKey = `${keyPrefix}new/index.faiss`;
      const planned = pseudoRandomBytes(200, 12 * MIB);
      const plannedEtag = await putObject(sourceKey, planned);
      const local = Buffer.concat([planned, pseudoRandomBytes(201, 1000)]);
      const parts = partsFor(planned, local, [{ copy: [0, 6 * MIB] }, { copy: [6 * MIB, 12 * MIB] }, { send: 1000 }]);
      // Another writer replaces the source with bytes of the same size.
      await putObject(sourceKey, pseudoRandomBytes(202, 12 * MIB));

      const error = await appErrorOf(store.compose(targetKey, options(sourceKey, plannedEtag, local, parts)));
      expect(error.kind, error.message).toBe('conflict');
      expect(error.message).toContain(sourceKey);
      await expectNothingLeft(keyPrefix, targetKey);
    });

    it('a copied part whose bytes do not have the planned MD5: AppError integrity (not retryable) naming the part and both MD5s; no object, no open upload', async ({ skip }) => {
      context.need(skip, 'partCopy');
      const store = context.store();
      const keyPrefix = context.ns('compose-wrong-md5');
      const targetKey = `${keyPrefix}index.faiss`;
      const local = Buffer.from(base);
      const parts = partsFor(base, local, [{ copy: [0, 5 * MIB] }, { copy: [5 * MIB, 10 * MIB] }, { copy: [10 * MIB, BASE_BYTES] }]);
      const actualMd5 = (parts[1] as ComposePartSpec).md5Hex;
      const wrongMd5 = md5Hex(Buffer.from('not these bytes'));
      parts[1] = { ...(parts[1] as ComposePartSpec), md5Hex: wrongMd5 };

      const error = await appErrorOf(store.compose(targetKey, options(baseKey, baseEtag, local, parts)));
      expect(error.kind, error.message).toBe('integrity');
      expect(error.retryable).toBe(false);
      expect(error.message).toContain(targetKey);
      expect(error.message).toContain('part 2');
      expect(error.message).toContain(wrongMd5);
      expect(error.message).toContain(actualMd5);
      await expectNothingLeft(keyPrefix, targetKey);
    });

    it('a sent part that is not what was planned (the file changed since): AppError integrity; no object, no open upload', async ({ skip }) => {
      context.need(skip, 'partCopy', 'contentMd5Check');
      const store = context.store();
      const keyPrefix = context.ns('compose-changed-file');
      const targetKey = `${keyPrefix}index.faiss`;
      const local = Buffer.concat([pseudoRandomBytes(300, 100), base.subarray(100)]);
      const parts = partsFor(base, local, [{ send: 5 * MIB }, { copy: [5 * MIB, BASE_BYTES] }]);
      local[17] = (local[17] ?? 0) ^ 0xff; // changed between planning and sending

      const error = await appErrorOf(store.compose(targetKey, options(baseKey, baseEtag, local, parts)));
      expect(error.kind, error.message).toBe('integrity');
      await expectNothingLeft(keyPrefix, targetKey);
    });

    it('cancelled after the first part: AppError cancelled, no further part started, no object, no open upload', async ({ skip }) => {
      context.need(skip, 'partCopy');
      const store = context.store();
      const keyPrefix = context.ns('compose-cancel');
      const targetKey = `${keyPrefix}index.faiss`;
      const local = Buffer.concat([base, pseudoRandomBytes(400, 5 * MIB + 1000)]);
      // More parts than any store keeps in flight (the S3 store in this suite: 4).
      const parts = partsFor(base, local, [{ copy: [0, 5 * MIB] }, { copy: [5 * MIB, 10 * MIB] }, { copy: [10 * MIB, 15 * MIB] }, { copy: [15 * MIB, BASE_BYTES] }, { send: 5 * MIB }, { send: 1000 }]);
      const cancel = new AbortController();
      const done: number[] = [];
      const error = await appErrorOf(
        store.compose(
          targetKey,
          options(baseKey, baseEtag, local, parts, {
            signal: cancel.signal,
            onPartDone: (part) => {
              done.push(part.index);
              cancel.abort();
            },
          }),
        ),
      );
      expect(error.kind, error.message).toBe('cancelled');
      expect(done.length).toBeLessThan(parts.length);
      await expectNothingLeft(keyPrefix, targetKey);
    });

    it('a signal already aborted: AppError cancelled, nothing created', async ({ skip }) => {
      context.need(skip, 'partCopy');
      const store = context.store();
      const keyPrefix = context.ns('compose-aborted');
      const targetKey = `${keyPrefix}index.faiss`;
      const parts = partsFor(base, base, [{ copy: [0, BASE_BYTES] }]);
      const error = await appErrorOf(store.compose(targetKey, options(baseKey, baseEtag, base, parts, { signal: AbortSignal.abort() })));
      expect(error.kind).toBe('cancelled');
      await expectNothingLeft(keyPrefix, targetKey);
    });

    it('a part but the last under 5 MiB is refused at completion: AppError object_refused EntityTooSmall; no object, no open upload', async ({ skip }) => {
      context.need(skip, 'partCopy');
      const store = context.store();
      const keyPrefix = context.ns('compose-small-part');
      const targetKey = `${keyPrefix}index.faiss`;
      const local = base.subarray(0, 7 * MIB);
      const parts = partsFor(base, local, [{ copy: [0, MIB] }, { copy: [MIB, 7 * MIB] }]);
      const error = await appErrorOf(store.compose(targetKey, options(baseKey, baseEtag, local, parts)));
      expect(error.kind, error.message).toBe('object_refused');
      expect(error.details?.code).toBe('EntityTooSmall');
      await expectNothingLeft(keyPrefix, targetKey);
    });
  });
}
