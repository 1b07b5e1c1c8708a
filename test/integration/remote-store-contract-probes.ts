// What the store under test can do, found out by asking it, not assumed from what kind of
// server it is: each probe exercises one capability through the RemoteStore itself, and says
// why when it is missing. The contract suite skips the tests that need a missing capability,
// with that reason, and fails when a capability the caller requires is missing.
import { createHash, randomBytes } from 'node:crypto';
import { describeError, isAppError } from '../../src/errors.js';
import { probeConditionalWrites } from '../../src/remote/conditional-writes.js';
import type { PutOptions, RemoteStore } from '../../src/remote/store.js';
import { normalizeEtag, PartHasher } from '../../src/snapshot/digest.js';

export interface ContractCapabilities {
  /** If-None-Match: * is honoured on single-request uploads. */
  conditionalWrites: boolean;
  /** Unfinished multipart uploads can be listed and aborted. */
  multipartHousekeeping: boolean;
  /** A body not matching its Content-MD5 is refused by the server. */
  contentMd5Check: boolean;
  /** Copies in parts of byte ranges of a stored object (UploadPartCopy); compose needs it. */
  partCopy: boolean;
}

export type Capability = keyof ContractCapabilities;
export const CAPABILITIES: readonly Capability[] = ['conditionalWrites', 'multipartHousekeeping', 'contentMd5Check', 'partCopy'];

export type ProbeResult = { present: true } | { present: false; reason: string };
export type ProbedCapabilities = Record<Capability, ProbeResult>;

export interface ProbeSubject {
  store: RemoteStore;
  /** Starts a multipart upload and leaves it unfinished; a store without multipart uploads omits it. */
  startMultipartUpload?: (key: string) => Promise<string>;
}

const MIB = 1024 * 1024;
/** S3's smallest part but the last: a copy in parts needs a source larger than one. */
const PART_BYTES = 5 * MIB;

const md5Hex = (bytes: Buffer): string => createHash('md5').update(bytes).digest('hex');

function putOptions(bytes: Buffer, md5: string | undefined): PutOptions {
  return { sizeBytes: bytes.length, md5Hex: md5, partSizeBytes: undefined, ifNoneMatch: false, metadata: {}, signal: undefined, onProgress: undefined };
}

const missing = (reason: string): ProbeResult => ({ present: false, reason });
const PRESENT: ProbeResult = { present: true };

/** Runs every probe under `keyPrefix` and removes what they wrote. */
export async function probeCapabilities(subject: ProbeSubject, keyPrefix: string): Promise<ProbedCapabilities> {
  return {
    conditionalWrites: await probeConditional(subject.store),
    multipartHousekeeping: await probeMultipartHousekeeping(subject, `${keyPrefix}multipart/`),
    contentMd5Check: await probeContentMd5(subject.store, `${keyPrefix}content-md5/probe.bin`),
    partCopy: await probePartCopy(subject.store, `${keyPrefix}part-copy/`),
  };
}

async function probeConditional(store: RemoteStore): Promise<ProbeResult> {
  try {
    const mode = await probeConditionalWrites(store);
    return mode === 'honoured' ? PRESENT : missing(`If-None-Match: * is ${mode} by the server`);
  } catch (error) {
    return missing(`the conditional-write probe failed: ${describeError(error)}`);
  }
}

async function probeMultipartHousekeeping(subject: ProbeSubject, keyPrefix: string): Promise<ProbeResult> {
  if (subject.startMultipartUpload === undefined) return missing('the store has no multipart uploads to leave unfinished');
  const key = `${keyPrefix}unfinished.bin`;
  try {
    const uploadId = await subject.startMultipartUpload(key);
    const listed = await subject.store.listMultipartUploads(keyPrefix);
    const upload = listed.find((u) => u.uploadId === uploadId);
    if (upload === undefined) return missing(`an unfinished upload is not listed (listed: ${listed.length})`);
    await subject.store.abortMultipartUpload(upload);
    const left = await subject.store.listMultipartUploads(keyPrefix);
    return left.some((u) => u.uploadId === uploadId) ? missing('an aborted upload is still listed') : PRESENT;
  } catch (error) {
    return missing(`listing or aborting multipart uploads failed: ${describeError(error)}`);
  }
}

async function probeContentMd5(store: RemoteStore, key: string): Promise<ProbeResult> {
  const bytes = Buffer.from('content-md5 probe\n');
  try {
    await store.put(key, () => bytes, putOptions(bytes, md5Hex(Buffer.from('other bytes'))));
    await store.delete(key);
    return missing('a body that does not match its Content-MD5 was stored');
  } catch (error) {
    return isAppError(error, 'integrity') ? PRESENT : missing(`a mismatching Content-MD5 failed otherwise than as integrity: ${describeError(error)}`);
  }
}

async function probePartCopy(store: RemoteStore, keyPrefix: string): Promise<ProbeResult> {
  const bytes = randomBytes(PART_BYTES + 1);
  const source = `${keyPrefix}source.bin`;
  const target = `${keyPrefix}target.bin`;
  try {
    await store.put(source, () => bytes, putOptions(bytes, md5Hex(bytes)));
    await store.copy(source, target, { sizeBytes: bytes.length, partSizeBytes: PART_BYTES, sourceEtag: md5Hex(bytes), metadata: {}, signal: undefined });
    const expected = new PartHasher(PART_BYTES);
    expected.update(bytes);
    const head = await store.head(target);
    if (head?.size !== bytes.length) return missing(`a copy in parts has size ${String(head?.size)}, not ${bytes.length}`);
    if (normalizeEtag(head.etag) !== expected.etag()) return missing(`a copy in parts has ETag ${head.etag}, not the multipart ETag ${expected.etag()}`);
    return PRESENT;
  } catch (error) {
    return missing(`a copy in parts failed: ${describeError(error)}`);
  } finally {
    for (const key of [target, source]) await store.delete(key).catch(() => undefined);
  }
}

/** One line per capability, for the log of the run. */
export function describeCapabilities(probed: ProbedCapabilities): string {
  return CAPABILITIES.map((c) => {
    const result = probed[c];
    return result.present ? `${c}: yes` : `${c}: no (${result.reason})`;
  }).join('; ');
}
