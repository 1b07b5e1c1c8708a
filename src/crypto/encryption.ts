import { randomBytes } from 'node:crypto';
import { mkdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { AppError } from '../errors.js';
import { encryptedManifestCodec, type ManifestCodec } from '../snapshot/manifest-codec.js';
import { writeFileAtomic } from '../state/atomic-file.js';
import { SALT_BYTES } from './format.js';
import { contentTag, Keyring, type KeySource, type WriteKey } from './keys.js';

/**
 * Client-side encryption as the rest of memsync sees it: the keyring for reading, the key new
 * objects are written with, and the manifest codec. Built once at start by the composition
 * root (the passphrase is stretched here, once), then handed to uploads, restores and verify.
 */
export interface Encryption {
  keyring: Keyring;
  writeKey: WriteKey;
  codec: ManifestCodec;
  source: KeySource['kind'];
  /** First bytes of the key check value: tells keys apart in status without revealing anything. */
  keyId: string;
  contentTag(sha256Hex: string): string;
}

/** The passphrase salt lives in the state directory, so manifests encrypt the same way across restarts. */
const SALT_FILE = 'encryption-salt';

async function writeSalt(stateDir: string, persist: boolean): Promise<Buffer> {
  const file = path.join(stateDir, SALT_FILE);
  try {
    const text = (await readFile(file, 'utf8')).trim();
    if (/^[0-9a-f]{32}$/.test(text)) return Buffer.from(text, 'hex');
    throw new AppError('config', `${file} does not hold a ${SALT_BYTES}-byte hex salt`, { hint: 'remove the file: a new salt is chosen and nothing already uploaded is affected' });
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
  }
  const salt = randomBytes(SALT_BYTES);
  if (!persist) return salt;
  await mkdir(stateDir, { recursive: true, mode: 0o700 });
  await writeFileAtomic(file, `${salt.toString('hex')}\n`);
  return salt;
}

/**
 * @param persistSalt false for one-shot commands, which never create files in the agent's state
 * directory: without a stored salt they write under a fresh one (readers find it in each header).
 */
export async function openEncryption(source: KeySource, stateDir: string, persistSalt = true): Promise<Encryption> {
  const keyring = new Keyring(source, source.kind === 'passphrase' ? { writeSalt: await writeSalt(stateDir, persistSalt) } : {});
  const writeKey = await keyring.writeKey();
  return {
    keyring,
    writeKey,
    codec: encryptedManifestCodec(writeKey),
    source: source.kind,
    keyId: writeKey.keyCheck.subarray(0, 4).toString('hex'),
    contentTag: (sha256Hex) => contentTag(writeKey.masterKey, sha256Hex),
  };
}
