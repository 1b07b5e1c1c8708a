import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { chunkBuffer } from '../../src/delta/chunker.js';
import { createSignature } from '../../src/delta/signature.js';
import { serializeSignatureBundle, signatureBundleByteLimit, signatureFromBundle } from '../../src/delta/signature-bundle.js';
import { isAppError } from '../../src/errors.js';
import { pseudoRandomBytes } from '../helpers/delta-data.js';

const data = pseudoRandomBytes(3, 3 * 1024 * 1024);
const sha256 = createHash('sha256').update(data).digest('hex');
const signature = createSignature(chunkBuffer(data), data.length, sha256);
const expected = { size: data.length, sha256 };

describe('signature bundles', () => {
  it('round-trips a signature by path and stays within its bound', () => {
    const bundle = serializeSignatureBundle(new Map([['metadata.json', signature]]));
    expect(bundle.length).toBeLessThanOrEqual(signatureBundleByteLimit([data.length]));
    expect(signatureFromBundle(bundle, 'metadata.json', expected)).toEqual(signature);
    expect(signatureFromBundle(bundle, 'index.faiss', expected)).toBeUndefined();
  });

  it.each([
    ['not JSON', Buffer.from('{')],
    ['another format', Buffer.from(JSON.stringify({ format: 'x', version: 1, files: {} }))],
    ['files as an array', Buffer.from(JSON.stringify({ format: 'memsync-signatures', version: 1, files: [] }))],
    ['an entry that is no signature', Buffer.from(JSON.stringify({ format: 'memsync-signatures', version: 1, files: { 'metadata.json': 'AAAA' } }))],
    ['an entry of another content', serializeSignatureBundle(new Map([['metadata.json', createSignature(chunkBuffer(data.subarray(1)), data.length - 1, 'f'.repeat(64))]]))],
    ['an entry far too long', Buffer.from(JSON.stringify({ format: 'memsync-signatures', version: 1, files: { 'metadata.json': 'A'.repeat(10_000_000) } }))],
  ])('refuses %s as integrity', (_label, bytes) => {
    let thrown: unknown;
    try {
      signatureFromBundle(bytes, 'metadata.json', expected);
    } catch (error) {
      thrown = error;
    }
    expect(isAppError(thrown, 'integrity')).toBe(true);
  });

  it('does not take a prototype key for a file', () => {
    const bundle = Buffer.from('{"format":"memsync-signatures","version":1,"files":{}}');
    expect(signatureFromBundle(bundle, '__proto__', expected)).toBeUndefined();
    expect(signatureFromBundle(bundle, 'constructor', expected)).toBeUndefined();
  });
});
