import { createHash } from 'node:crypto';
import { AppError } from '../errors.js';
import { manifestObjectId, noKeyConfigured, type Keyring, type WriteKey } from '../crypto/keys.js';
import { decryptBuffer, encryptBuffer } from '../crypto/streams.js';
import { parseManifest, serializeManifest, type Manifest } from './manifest.js';
import { ENCRYPTED_MANIFEST_FILE_NAME, MANIFEST_FILE_NAME } from './reserved-names.js';

/**
 * How a manifest is stored: as plain JSON, or encrypted. The two use different object names,
 * so a listing alone tells plain snapshots from encrypted ones and both can live in one prefix.
 * An encrypted manifest encrypts deterministically (its object id is derived from its content
 * under the key), so the same manifest always has the same ETag and sweeps can still recognise
 * an uploaded snapshot without downloading anything. That reveals only whether two encrypted
 * manifests are identical, which their ETags would say anyway.
 */

export { ENCRYPTED_MANIFEST_FILE_NAME } from './reserved-names.js';

export type ManifestFormat = 'plain' | 'encrypted';

/** The manifest's format from its object name within the snapshot; undefined for any other file. */
export function manifestFormatOf(relativePath: string): ManifestFormat | undefined {
  if (relativePath === MANIFEST_FILE_NAME) return 'plain';
  if (relativePath === ENCRYPTED_MANIFEST_FILE_NAME) return 'encrypted';
  return undefined;
}

export function manifestKeyFor(snapshot: string, format: ManifestFormat): string {
  return `${snapshot}/${format === 'plain' ? MANIFEST_FILE_NAME : ENCRYPTED_MANIFEST_FILE_NAME}`;
}

/** What this agent writes its manifests as. */
export interface ManifestCodec {
  readonly format: ManifestFormat;
  key(snapshot: string): string;
  encode(manifest: Manifest): Buffer;
  /** The ETag S3 reports for the encoded manifest (one PUT: the MD5 of its bytes). */
  etag(manifest: Manifest): string;
}

export function plainManifestCodec(): ManifestCodec {
  return codec('plain', serializeManifest);
}

export function encryptedManifestCodec(writeKey: WriteKey): ManifestCodec {
  return codec('encrypted', (manifest) => {
    const plaintext = serializeManifest(manifest);
    return encryptBuffer(writeKey, plaintext, { objectId: manifestObjectId(writeKey.masterKey, plaintext) });
  });
}

function codec(format: ManifestFormat, encode: (manifest: Manifest) => Buffer): ManifestCodec {
  return {
    format,
    key: (snapshot) => manifestKeyFor(snapshot, format),
    encode,
    etag: (manifest) => createHash('md5').update(encode(manifest)).digest('hex'),
  };
}

/**
 * Reads a stored manifest of either format. An encrypted one needs the keyring; without it,
 * or with the wrong key, the error says so before any file of the snapshot is fetched.
 */
export async function decodeManifest(bytes: Buffer, format: ManifestFormat, snapshot: string, keyring: Keyring | undefined): Promise<Manifest> {
  if (format === 'plain') return parseManifest(bytes, snapshot);
  if (keyring === undefined) throw noKeyConfigured(`snapshot ${snapshot}`);
  const plaintext = await decryptBuffer(keyring, bytes, `manifest of ${snapshot}`);
  if (plaintext.length === 0) throw new AppError('integrity', `manifest of ${snapshot} is empty`, { retryable: false });
  return parseManifest(plaintext, snapshot);
}
