// Whoever can write to the bucket chooses the bytes of every manifest, encrypted header, signature
// bundle and key memsync reads back. Fed thousands of seeded hostile inputs, each reader fails as an
// AppError of the kind it promises (never a raw TypeError or RangeError), reads no more than its
// bound, derives no key for scrypt parameters it refuses, and no planted key becomes the snapshot a
// download without a name fetches. FUZZ_SEED=<n> replays a run; every failure prints its seed.
import { createHash, createHmac, randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { FORMAT_VERSION, HEADER_BYTES, MAGIC, type ScryptParams } from '../../src/crypto/format.js';
import type { DeriveMasterKey } from '../../src/crypto/kdf.js';
import { Keyring, keyCheckValue } from '../../src/crypto/keys.js';
import { encryptBuffer } from '../../src/crypto/streams.js';
import { chunkBuffer } from '../../src/delta/chunker.js';
import { MAX_CHUNK_BYTES, MIN_CHUNK_BYTES } from '../../src/delta/chunker-params.js';
import { createSignature, parseSignature, serializeSignature, type ExpectedFile, type Signature } from '../../src/delta/signature.js';
import { serializeSignatureBundle, signatureFromBundle } from '../../src/delta/signature-bundle.js';
import { AppError, type ErrorKind } from '../../src/errors.js';
import { readSmallObject } from '../../src/remote/body.js';
import { MemoryRemoteStore } from '../../src/remote/memory-store.js';
import { buildRemoteIndex, chooseLatestRestorable, remoteNewerThan } from '../../src/remote/remote-index.js';
import type { RemoteObject } from '../../src/remote/store.js';
import { decodeManifest, encryptedManifestCodec } from '../../src/snapshot/manifest-codec.js';
import { buildManifest, type Manifest } from '../../src/snapshot/manifest.js';
import { pseudoRandomBytes } from '../helpers/delta-data.js';
import { describeFailures, Fuzz, fuzzSeed, preview, unexpectedFailure, type FuzzFailure } from '../helpers/fuzz.js';
import { hostileManifest } from '../helpers/fuzz-manifests.js';

const seed = fuzzSeed();
const NAME = 'auto_20250101_000000';
const replay = `FUZZ_SEED=${seed}`;
const hex64 = (text: string): string => createHash('sha256').update(text).digest('hex');

/** Runs `cases` cases, collecting every problem instead of stopping at the first, and fails once with all of them. */
async function fuzzCases(cases: number, run: (caseIndex: number, fail: (input: unknown, problem: string) => void) => Promise<void> | void): Promise<void> {
  const failures: FuzzFailure[] = [];
  for (let caseIndex = 0; caseIndex < cases; caseIndex += 1) {
    await run(caseIndex, (input, problem) => failures.push({ seed, caseIndex, input: preview(input), problem }));
  }
  expect(describeFailures(failures, cases)).toBe('');
}

/** How a reader ended: its value, or why its failure is not one it promises. */
async function outcome<T>(read: () => Promise<T> | T, kinds: readonly ErrorKind[]): Promise<{ ok: true; value: T } | { ok: false; kind: ErrorKind | undefined; problem: string | undefined }> {
  try {
    return { ok: true, value: await read() };
  } catch (error) {
    const problem = unexpectedFailure(error, kinds) ?? (error instanceof AppError && error.retryable ? `retryable ${error.kind}: the same object fails the same way again` : undefined);
    return { ok: false, kind: error instanceof AppError ? error.kind : undefined, problem };
  }
}

describe('manifests from the bucket', () => {
  const base = buildManifest(NAME, 'directory', [
    { path: 'memory.json', size: 10, sha256: hex64('a') },
    { path: 'sub/index.faiss', size: 4096, sha256: hex64('b') },
    { path: 'notes/日本 🧠.txt', size: 0, sha256: hex64('c') },
    { path: 'z', size: 9_007_199_254_740_991, sha256: hex64('d') },
  ]);

  const CONTROL = /[\u0000-\u001f\u007f]/;
  /** The restore rule, stated again independently of the code under test. */
  function restorablePath(path: unknown): boolean {
    if (typeof path !== 'string' || path.length === 0 || Buffer.byteLength(path) > 1024) return false;
    if (CONTROL.test(path) || path.includes('\\') || /\p{Surrogate}/u.test(path)) return false;
    return path.split('/').every((segment) => segment !== '' && segment !== '.' && segment !== '..' && Buffer.byteLength(segment) <= 255);
  }

  /** What is wrong with a manifest a reader accepted; undefined when it is one memsync can restore. */
  function acceptedManifestProblem(manifest: Manifest): string | undefined {
    const keys = (value: object): string => JSON.stringify(Object.keys(value).sort());
    if (Object.getPrototypeOf(manifest) !== Object.prototype || keys(manifest) !== '["files","format","kind","snapshot","version"]') return `unexpected shape ${keys(manifest)}`;
    if (manifest.format !== 'memsync-manifest' || manifest.version !== 1 || manifest.snapshot !== NAME) return `header ${manifest.format} ${manifest.version} ${manifest.snapshot}`;
    if (manifest.kind !== 'directory' && manifest.kind !== 'file') return `kind ${String(manifest.kind)}`;
    const seen = new Set<string>();
    for (const file of manifest.files) {
      if (Object.getPrototypeOf(file) !== Object.prototype || keys(file) !== '["path","sha256","size"]') return `file entry of shape ${keys(file)}`;
      if (!restorablePath(file.path)) return `unrestorable path ${JSON.stringify(file.path).slice(0, 80)}`;
      if (!Number.isSafeInteger(file.size) || file.size < 0) return `size ${file.size}`;
      if (!/^[0-9a-f]{64}$/.test(file.sha256)) return `sha256 ${file.sha256.slice(0, 80)}`;
      if (seen.has(file.path)) return `${file.path} listed twice`;
      seen.add(file.path);
    }
    for (const path of seen) {
      for (let slash = path.indexOf('/'); slash !== -1; slash = path.indexOf('/', slash + 1)) if (seen.has(path.slice(0, slash))) return `${path.slice(0, slash)} is a file and a directory`;
    }
    if (manifest.kind === 'file' && (manifest.files.length !== 1 || manifest.files[0]?.path !== NAME)) return 'single-file snapshot not named like its file';
    return undefined;
  }

  it('refuses every damaged manifest as integrity (not retried) or reads one memsync can restore, the same encrypted or not', async () => {
    const fuzz = new Fuzz(seed);
    const prototypeBefore = Object.getOwnPropertyNames(Object.prototype).sort();
    const keyring = new Keyring({ kind: 'key', key: randomBytes(32) });
    const writeKey = await keyring.writeKey();
    let accepted = 0;
    const cases = 3000;
    await fuzzCases(cases, async (caseIndex, fail) => {
      const { bytes, mutations } = hostileManifest(fuzz, base);
      const input = { mutations, bytes: preview(bytes, 200) };
      const plain = await outcome(() => decodeManifest(bytes, 'plain', NAME, undefined), ['integrity']);
      if (plain.ok) {
        accepted += 1;
        const problem = acceptedManifestProblem(plain.value);
        if (problem !== undefined) fail(input, `accepted: ${problem}`);
      } else if (plain.problem !== undefined) fail(input, plain.problem);
      // Encrypted under the reader's own key, the same bytes must end the same way once decrypted.
      if (caseIndex % 5 !== 0) return;
      const encrypted = await outcome(() => decodeManifest(encryptBuffer(writeKey, bytes), 'encrypted', NAME, keyring), ['integrity']);
      if (encrypted.ok !== plain.ok) fail(input, `plain ${plain.ok ? 'accepted' : 'refused'}, encrypted ${encrypted.ok ? 'accepted' : `refused (${encrypted.problem ?? encrypted.kind})`}`);
      else if (encrypted.ok && plain.ok && JSON.stringify(encrypted.value) !== JSON.stringify(plain.value)) fail(input, 'encrypted and plain readings differ');
      else if (!encrypted.ok && encrypted.problem !== undefined) fail(input, `encrypted: ${encrypted.problem}`);
    });
    // The generator must reach both sides: harmless changes (extra keys) are read, most are refused.
    expect(accepted, replay).toBeGreaterThan(0);
    expect(accepted, replay).toBeLessThan(cases / 2);
    expect(Object.getOwnPropertyNames(Object.prototype).sort(), 'a manifest key reached Object.prototype').toEqual(prototypeBefore);
  });
});

describe('readSmallObject', () => {
  /**
   * A body produced only as it is pulled, counting what was pulled: what a reader took from the
   * network. An endless one ends 1 MiB past the bound, so a reader that ignores the bound fails
   * this test instead of taking the machine's memory.
   */
  class CountingBody extends Readable {
    pulledBytes = 0;
    private readonly producedBytes: number;
    constructor(
      totalBytes: number,
      maxBytes: number,
      private readonly chunkBytes: number,
    ) {
      super({ highWaterMark: chunkBytes });
      this.producedBytes = Math.min(totalBytes, maxBytes + 1024 * 1024);
    }
    override _read(): void {
      const bytes = Math.min(this.chunkBytes, this.producedBytes - this.pulledBytes);
      if (bytes <= 0) {
        this.push(null);
        return;
      }
      this.pulledBytes += bytes;
      this.push(Buffer.alloc(bytes, 0x7b));
    }
  }

  class OneBodyStore extends MemoryRemoteStore {
    gets = 0;
    constructor(private readonly body: Readable) {
      super();
    }
    override async get(): Promise<Readable> {
      this.gets += 1;
      return this.body;
    }
  }

  it('returns bodies within the bound whole, refuses the rest as integrity, and pulls at most a few chunks past the bound', async () => {
    const fuzz = new Fuzz(seed);
    const KIB = 1024;
    await fuzzCases(600, async (_caseIndex, fail) => {
      const maxBytes = fuzz.pick([0, 1, 4 * KIB, fuzz.between(0, 64 * KIB)]);
      const chunkBytes = fuzz.between(1, 16 * KIB);
      const totalBytes = fuzz.pick([0, maxBytes, maxBytes + 1, fuzz.between(0, 2 * maxBytes + 1), Number.POSITIVE_INFINITY]);
      const listed = fuzz.pick([undefined, totalBytes, fuzz.between(0, maxBytes), maxBytes + 1 + fuzz.int(1e9), Number.NaN, -1, Number.POSITIVE_INFINITY, 1e300]);
      const body = new CountingBody(totalBytes, maxBytes, chunkBytes);
      const store = new OneBodyStore(body);
      const input = { maxBytes, chunkBytes, totalBytes, listed };
      const read = await outcome(() => readSmallObject(store, `${NAME}/.memsync-manifest.json`, maxBytes, { listedSizeBytes: listed }), ['integrity']);
      if (!read.ok && read.problem !== undefined) return fail(input, read.problem);
      if (typeof listed === 'number' && listed > maxBytes) {
        if (read.ok || store.gets !== 0) fail(input, `listed over the bound, yet ${read.ok ? 'read' : `fetched ${store.gets} times`}`);
        return;
      }
      if (totalBytes <= maxBytes) {
        if (!read.ok) fail(input, 'refused a body within the bound');
        else if (read.value.length !== totalBytes || read.value.some((byte) => byte !== 0x7b)) fail(input, `read ${read.value.length} bytes of ${totalBytes}`);
        return;
      }
      if (read.ok) return fail(input, `accepted ${read.value.length} bytes over a bound of ${maxBytes}`);
      // What the reader consumed (up to the chunk that crossed the bound) plus what the stream buffered ahead of it.
      if (body.pulledBytes > maxBytes + 3 * chunkBytes) fail(input, `pulled ${body.pulledBytes} bytes for a bound of ${maxBytes}`);
      if (!body.destroyed) fail(input, 'left the oversized body open');
    });
  });
});

describe('encrypted headers', () => {
  const passphrase = 'correct horse battery staple';
  /** Stands in for scrypt (free, deterministic) and records every set of parameters it was asked to run with. */
  function recordingDerive(): { derive: DeriveMasterKey; asked: ScryptParams[] } {
    const asked: ScryptParams[] = [];
    const derive: DeriveMasterKey = (secret, salt, params) => {
      asked.push({ ...params });
      return Promise.resolve(fakeMasterKey(secret, salt, params));
    };
    return { derive, asked };
  }
  function fakeMasterKey(secret: string, salt: Buffer, params: ScryptParams): Buffer {
    return createHmac('sha256', secret).update(salt).update(`${params.log2N}:${params.r}:${params.p}`).digest();
  }
  /** memsync's documented bounds, stated again: N from 2^10 to 2^17, r from 1 to 8, p = 1. */
  const withinBounds = ({ log2N, r, p }: ScryptParams): boolean => log2N >= 10 && log2N <= 17 && r >= 1 && r <= 8 && p === 1;

  /** A header with memsync's magic (mostly) and random, often absurd, parameters; and whether a reader may derive for it. */
  function randomHeader(fuzz: Fuzz): { bytes: Buffer; derivable: boolean } {
    const header = fuzz.bytes(HEADER_BYTES);
    if (fuzz.chance(0.95)) MAGIC.copy(header, 0);
    header[4] = fuzz.chance(0.9) ? FORMAT_VERSION : fuzz.int(256);
    header[5] = fuzz.chance(0.8) ? fuzz.between(10, 24) : fuzz.pick([0, 9, 25, 31, 32, 53, 64, 255, fuzz.int(256)]);
    header[6] = fuzz.chance(0.7) ? 1 : fuzz.chance(0.7) ? 0 : fuzz.int(256);
    const params: ScryptParams = {
      log2N: fuzz.chance(0.5) ? fuzz.between(10, 17) : fuzz.pick([0, 1, 9, 18, 20, 24, 31, 32, 63, 64, 128, 255, fuzz.int(256)]),
      r: fuzz.chance(0.5) ? fuzz.between(1, 8) : fuzz.pick([0, 9, 16, 32, 255, fuzz.int(256)]),
      p: fuzz.chance(0.6) ? 1 : fuzz.pick([0, 2, 16, 255, fuzz.int(256)]),
    };
    header[7] = params.log2N;
    header[8] = params.r;
    header[9] = params.p;
    const wellFormed = header.subarray(0, 4).equals(MAGIC) && header[4] === FORMAT_VERSION && (header[5] as number) >= 10 && (header[5] as number) <= 24 && header[6] === 1;
    const derivable = wellFormed && withinBounds(params);
    // Sometimes the right key check for the passphrase, so the reader goes on to the chunks.
    if (derivable && fuzz.chance(0.3)) keyCheckValue(fakeMasterKey(passphrase, header.subarray(10, 26), params)).copy(header, 26);
    const body = fuzz.bytes(fuzz.pick([0, 15, 16, 17, fuzz.between(0, 600)]));
    if (fuzz.chance(0.05)) return { bytes: header.subarray(0, fuzz.int(HEADER_BYTES)), derivable: false };
    return { bytes: Buffer.concat([header, body]), derivable };
  }

  it('refuses random headers as integrity or encryption_key, deriving only for parameters within memsync\'s bounds, once per salt', async () => {
    const fuzz = new Fuzz(seed);
    const recorder = recordingDerive();
    const reader = new Keyring({ kind: 'passphrase', passphrase }, { scrypt: { log2N: 10, r: 8, p: 1 }, derive: recorder.derive });
    const rawKeyReader = new Keyring({ kind: 'key', key: randomBytes(32) });
    let derivable = 0;
    await fuzzCases(3000, async (caseIndex, fail) => {
      const header = randomHeader(fuzz);
      if (header.derivable) derivable += 1;
      const input = { header: header.bytes.subarray(0, HEADER_BYTES).toString('hex'), bytes: header.bytes.length };
      for (const keyring of caseIndex % 4 === 0 ? [reader, rawKeyReader] : [reader]) {
        const read = await outcome(() => decodeManifest(header.bytes, 'encrypted', NAME, keyring), ['integrity', 'encryption_key']);
        if (read.ok) fail(input, 'random bytes decrypted into a manifest');
        else if (read.problem !== undefined) fail(input, read.problem);
      }
    });
    expect(recorder.asked.filter((params) => !withinBounds(params)), `${replay}: derived for parameters out of bounds`).toEqual([]);
    expect(recorder.asked.length, `${replay}: one derivation per acceptable header, none for the others`).toBe(derivable);
    expect(derivable, replay).toBeGreaterThan(100);
  });

  it('refuses every altered, cut or extended encrypted manifest, with a raw key or a passphrase', async () => {
    const fuzz = new Fuzz(seed);
    const recorder = recordingDerive();
    const manifest = buildManifest(NAME, 'directory', [{ path: 'memory.json', size: 10, sha256: hex64('a') }]);
    const readers = [new Keyring({ kind: 'key', key: randomBytes(32) }), new Keyring({ kind: 'passphrase', passphrase }, { scrypt: { log2N: 10, r: 8, p: 1 }, derive: recorder.derive })];
    const sealed = await Promise.all(readers.map(async (keyring) => encryptedManifestCodec(await keyring.writeKey()).encode(manifest)));
    await fuzzCases(1500, async (caseIndex, fail) => {
      const which = caseIndex % 2;
      const original = sealed[which] as Buffer;
      const bytes = Buffer.from(original);
      let altered: Buffer = bytes;
      const change = fuzz.int(5);
      if (change === 0 || change === 1) {
        // Half the flips in the header, where the parameters and the key check live.
        for (let n = fuzz.between(1, 4); n > 0; n -= 1) {
          const at = change === 0 ? fuzz.int(HEADER_BYTES) : fuzz.int(bytes.length);
          bytes[at] = (bytes[at] as number) ^ (1 << fuzz.int(8));
        }
      } else if (change === 2) altered = bytes.subarray(0, fuzz.int(bytes.length));
      else if (change === 3) altered = Buffer.concat([bytes, fuzz.bytes(fuzz.between(1, 64))]);
      else bytes[fuzz.pick([7, 8, 9])] = fuzz.pick([0, 18, 20, 64, 255]);
      const read = await outcome(() => decodeManifest(altered, 'encrypted', NAME, readers[which]), ['integrity', 'encryption_key']);
      const input = { keyring: which === 0 ? 'raw key' : 'passphrase', change, header: altered.subarray(0, HEADER_BYTES).toString('hex') };
      if (altered.equals(original)) {
        if (!read.ok) fail(input, 'refused the unaltered manifest');
      } else if (read.ok) fail(input, 'accepted an altered manifest');
      else if (read.problem !== undefined) fail(input, read.problem);
    });
    expect(recorder.asked.filter((params) => !withinBounds(params)), `${replay}: derived for parameters out of bounds`).toEqual([]);
  });
});

describe('snapshot names planted in the listing', () => {
  const FUTURE = ['20991231_235959', '20990101_000000', '21000101_000000'];
  /** Names that are no snapshot name at all: never a snapshot. */
  const INVALID_NAMES = ['..', '.', '.hidden_20991231_235959', '-x_20991231_235959', '_x_20991231_235959', 'a b_20991231_235959', 'a\\b_20991231_235959', 'a..b_20991231_235959', '\u0000_20991231_235959', 'é_20991231_235959', `${'x'.repeat(190)}_20991231_235959`, '%2e%2e', ''];
  /** Valid names without a time of their own: listed, never chosen as the latest, however recently written. */
  const UNTIMED_NAMES = ['latest', 'LATEST', 'zzz', 'backup', 'auto_2099123_235959', 'auto_20991231_2359590', 'auto_20991231-235959', 'auto_20991301_000000', 'auto_20990230_000000', 'auto_20991231_246060'];
  /** Paths no restore writes: never a file of a snapshot. */
  const UNRESTORABLE_PATHS = ['../x', '../../etc/passwd', 'a/../../x', 'a//b', './x', 'a/./b', 'a\\b', '\u0001', 'x\u007f', '\ud800', `${'s'.repeat(256)}`, `${'d/'.repeat(600)}f`, '/abs'];
  const BOOKKEEPING = ['.memsync-claim', '.memsync-signatures'];
  const ALLOWED_FILES = ['memory.json', 'sub/.memsync-manifest.json', '.memsync-manifest.json.tmp', '.MEMSYNC-MANIFEST.JSON', '日本.txt', 'a b/c'];

  const NAME_RULE = /^[A-Za-z0-9][A-Za-z0-9._-]{0,199}$/;

  interface Listing {
    objects: RemoteObject[];
    /** The latest complete snapshot memsync wrote, or undefined when there is none. */
    expectedLatest: string | undefined;
    legit: Map<string, number>;
    /** Names a download without a name may never fetch. */
    neverLatest: Set<string>;
    /** Planted incomplete snapshots: candidates only when nothing complete exists. */
    incomplete: Set<string>;
  }

  function hostileListing(fuzz: Fuzz, plantedKeys: number): Listing {
    const objects: RemoteObject[] = [];
    const absurd = (): number => fuzz.pick([Number.NaN, -1, 1e23, Number.POSITIVE_INFINITY, 0.5, fuzz.int(1e6)]);
    const object = (key: string, size: number, lastModifiedMs: number): void => void objects.push({ key, size, etag: `"${fuzz.bytes(16).toString('hex')}"`, lastModifiedMs });
    const legit = new Map<string, number>();
    let expectedLatest: string | undefined;
    let latestMs = -1;
    for (let n = fuzz.chance(0.15) ? 0 : fuzz.between(1, 6); n > 0; n -= 1) {
      const ms = Date.UTC(2025, fuzz.int(12), fuzz.between(1, 28), fuzz.int(24), fuzz.int(60), fuzz.int(60));
      const name = `auto_${new Date(ms).toISOString().replace(/[-:]/g, '').replace('T', '_').slice(0, 15)}`;
      if (legit.has(name)) continue;
      const files = fuzz.between(1, 3);
      legit.set(name, files);
      for (let f = 0; f < files; f += 1) object(`${name}/file-${f}.json`, fuzz.int(1e6), 1_700_000_000_000);
      object(`${name}/${fuzz.chance(0.5) ? '.memsync-manifest.json' : '.memsync-manifest.enc'}`, 300, 1_700_000_000_000);
      if (ms > latestMs) [latestMs, expectedLatest] = [ms, name];
    }
    const neverLatest = new Set<string>();
    const incomplete = new Set<string>();
    const farFuture = Date.UTC(2200, 0, 1);
    for (let n = 0; n < plantedKeys; n += 1) {
      const time = fuzz.pick(FUTURE);
      switch (fuzz.int(6)) {
        case 0: {
          const name = fuzz.chance(0.7) ? fuzz.pick(INVALID_NAMES) : fuzz.hostileText(30);
          if (NAME_RULE.test(name) && !name.includes('..')) break; // a random text that happens to be a valid name is not this category
          neverLatest.add(name);
          object(`${name}/${fuzz.pick([...ALLOWED_FILES, '.memsync-manifest.json'])}`, absurd(), farFuture);
          break;
        }
        case 1: {
          // Complete, even: a name without its own time is never the latest.
          const name = fuzz.pick(UNTIMED_NAMES);
          neverLatest.add(name);
          object(`${name}/${fuzz.pick([...ALLOWED_FILES, '.memsync-manifest.json', '.memsync-manifest.enc'])}`, absurd(), farFuture);
          break;
        }
        case 2: {
          const name = `void_${time}`;
          neverLatest.add(name);
          object(`${name}/${fuzz.pick([...UNRESTORABLE_PATHS, ...BOOKKEEPING, '', 'sub/'])}`, absurd(), farFuture);
          break;
        }
        case 3: {
          const name = `files_${time}`;
          incomplete.add(name);
          object(`${name}/${fuzz.pick(ALLOWED_FILES)}`, absurd(), farFuture);
          break;
        }
        case 4:
          // Keys without a snapshot: the bare name, a leading slash, a control character before the slash.
          object(fuzz.pick([`auto_${time}`, `/auto_${time}/x`, `auto_${time}\u0000/x`, `auto_${time}\\x`, fuzz.hostileText(80)]), absurd(), farFuture);
          break;
        default:
          // Whatever that path is, a snapshot without a manifest stays a candidate only when nothing is complete.
          object(`mixed_${time}/${fuzz.hostileText(60)}`, absurd(), Number.NaN);
          incomplete.add(`mixed_${time}`);
      }
    }
    // The order of a listing is the server's: shuffled.
    for (let i = objects.length - 1; i > 0; i -= 1) {
      const j = fuzz.int(i + 1);
      [objects[i], objects[j]] = [objects[j] as RemoteObject, objects[i] as RemoteObject];
    }
    return { objects, expectedLatest, legit, neverLatest, incomplete };
  }

  function listingProblem(listing: Listing): string | undefined {
    const index = buildRemoteIndex(listing.objects, 0);
    for (const name of index.snapshots.keys()) if (!NAME_RULE.test(name) || name.includes('..')) return `snapshot with an unsafe name ${JSON.stringify(name)}`;
    for (const [name, files] of listing.legit) {
      const snapshot = index.snapshots.get(name);
      if (snapshot?.complete !== true || snapshot.fileCount !== files) return `${name} is not complete with ${files} files: ${JSON.stringify(snapshot)}`;
    }
    for (const name of listing.neverLatest) {
      const snapshot = index.snapshots.get(name);
      if (name.startsWith('void_') && snapshot !== undefined && (snapshot.complete || snapshot.fileCount > 0)) return `${name} counts keys no restore writes`;
    }
    const latest = chooseLatestRestorable(index)?.name;
    if (listing.expectedLatest !== undefined && latest !== listing.expectedLatest) return `latest is ${JSON.stringify(latest)}, not ${listing.expectedLatest}`;
    if (listing.expectedLatest === undefined && latest !== undefined && !listing.incomplete.has(latest)) return `latest is ${JSON.stringify(latest)} with no snapshot memsync wrote`;
    if (latest !== undefined && listing.neverLatest.has(latest)) return `planted ${JSON.stringify(latest)} chosen as the latest`;
    const newer = remoteNewerThan(index, undefined).map((snapshot) => snapshot.name);
    const unsafe = newer.find((name) => !NAME_RULE.test(name));
    return unsafe === undefined ? undefined : `offers ${JSON.stringify(unsafe)} for download`;
  }

  it('never chooses a planted key as the latest snapshot, whatever the keys, sizes and times', async () => {
    const fuzz = new Fuzz(seed);
    await fuzzCases(300, (_caseIndex, fail) => {
      const listing = hostileListing(fuzz, fuzz.between(1, 300));
      let problem: string | undefined;
      try {
        problem = listingProblem(listing);
      } catch (error) {
        problem = `threw: ${unexpectedFailure(error, [])}`;
      }
      if (problem !== undefined) fail(listing.objects.map((o) => o.key).slice(0, 20), problem);
    });
  });

  it('groups a listing of 100,000 hostile keys without failing', () => {
    const fuzz = new Fuzz(seed);
    const listing = hostileListing(fuzz, 100_000);
    expect(listingProblem(listing), replay).toBeUndefined();
  });
});

describe('signatures stored with a snapshot', () => {
  const data = pseudoRandomBytes(7, 600 * 1024);
  const sha256 = createHash('sha256').update(data).digest('hex');
  const signature = createSignature(chunkBuffer(data), data.length, sha256);
  const valid = serializeSignature(signature);

  /** A parsed signature that does not tile its file as the chunker cuts: what the parser must never hand out. */
  function tilingProblem(parsed: Signature): string | undefined {
    let offset = 0;
    for (const [index, chunk] of parsed.chunks.entries()) {
      const last = index === parsed.chunks.length - 1;
      if (chunk.offset !== offset) return `chunk ${index} at ${chunk.offset}, not ${offset}`;
      if (chunk.length < (last ? 1 : MIN_CHUNK_BYTES) || chunk.length > MAX_CHUNK_BYTES) return `chunk ${index} of ${chunk.length} bytes`;
      if (!/^[0-9a-f]{32}$/.test(chunk.hash)) return `chunk ${index} hash ${chunk.hash}`;
      offset += chunk.length;
    }
    return offset === parsed.size && /^[0-9a-f]{64}$/.test(parsed.sha256) ? undefined : `chunks add up to ${offset} of ${parsed.size}`;
  }

  const absurdExpectations: ExpectedFile[] = [{}, { size: data.length, sha256 }, { size: Number.NaN }, { size: -1 }, { size: Number.POSITIVE_INFINITY }, { size: 1e300 }, { size: 0.5 }, { sha256: 'zz' }];

  it('refuses random bytes and forged, correctly sealed headers as integrity, or parses a valid tiling', async () => {
    const fuzz = new Fuzz(seed);
    await fuzzCases(3000, (caseIndex, fail) => {
      let bytes: Buffer;
      if (caseIndex % 3 === 0) {
        bytes = fuzz.bytes(fuzz.pick([0, 95, 96, 97, 116, fuzz.between(0, 4096)]));
      } else {
        // A forger recomputes the trailing checksum, so only the parser's own checks stand between.
        const count = fuzz.pick([0, 1, 2, signature.chunks.length, fuzz.between(0, 40), 0xffffffff]);
        const entries = caseIndex % 3 === 1 ? Math.min(count, 64) : fuzz.between(0, 40);
        const body = Buffer.alloc(64 + entries * 20);
        valid.copy(body, 0, 0, 64);
        body.writeUInt32BE(count, 60);
        body.writeBigUInt64BE(fuzz.pick([0n, 1n, BigInt(data.length), 2n ** 36n, 2n ** 53n + 1n, 2n ** 64n - 1n, BigInt(fuzz.int(2 ** 30))]), 20);
        if (fuzz.chance(0.2)) body[fuzz.int(64)] = fuzz.int(256);
        for (let at = 64; at < body.length; at += 20) {
          body.writeUInt32BE(fuzz.pick([0, 1, MIN_CHUNK_BYTES - 1, MIN_CHUNK_BYTES, MAX_CHUNK_BYTES, MAX_CHUNK_BYTES + 1, 0xffffffff, fuzz.int(2 ** 20)]), at);
          fuzz.bytes(16).copy(body, at + 4);
        }
        bytes = Buffer.concat([body, createHash('sha256').update(body).digest()]);
      }
      // Views into a larger buffer, as a body assembled from network chunks can be.
      const offset = fuzz.int(8);
      const backing = Buffer.concat([fuzz.bytes(offset), bytes, fuzz.bytes(fuzz.int(8))]);
      const input = new Uint8Array(backing.buffer, backing.byteOffset + offset, bytes.length);
      const expected = fuzz.pick(absurdExpectations);
      try {
        const parsed = parseSignature(input, expected);
        const problem = tilingProblem(parsed);
        if (problem !== undefined) fail(bytes, `parsed an invalid signature: ${problem}`);
      } catch (error) {
        const problem = unexpectedFailure(error, ['integrity']);
        if (problem !== undefined) fail({ expected, bytes: preview(bytes, 120) }, problem);
      }
    });
  });

  it('reads a bundle entry only when it is a valid signature of the file the manifest describes', async () => {
    const fuzz = new Fuzz(seed);
    const expected = { size: data.length, sha256 };
    const paths = ['memory.json', '__proto__', 'constructor', 'toString', 'hasOwnProperty', 'other.bin'];
    const entryValues = (): unknown =>
      fuzz.pick([
        valid.toString('base64'),
        valid.toString('base64url'),
        valid.subarray(0, fuzz.int(valid.length)).toString('base64'),
        fuzz.bytes(fuzz.between(0, 400)).toString('base64'),
        `${valid.toString('base64')}${fuzz.hostileText(8)}`,
        'A'.repeat(fuzz.pick([0, 4, 1_000_000])),
        null,
        42,
        [valid.toString('base64')],
        { __proto__: valid.toString('base64') },
      ]);
    await fuzzCases(1500, (_caseIndex, fail) => {
      const files: Record<string, unknown> = {};
      for (let n = fuzz.between(0, 4); n > 0; n -= 1) Object.defineProperty(files, fuzz.pick(paths), { value: entryValues(), enumerable: true, configurable: true, writable: true });
      const document: Record<string, unknown> = { format: fuzz.chance(0.85) ? 'memsync-signatures' : fuzz.pick(['memsync-manifest', '', null]), version: fuzz.chance(0.85) ? 1 : fuzz.pick([2, '1', 0]), files: fuzz.chance(0.9) ? files : fuzz.pick([[], null, 'x', 1]) };
      let text = JSON.stringify(document);
      if (fuzz.chance(0.15)) text = `{"__proto__": {"files": {"memory.json": "${valid.toString('base64')}"}}, ${text.slice(1)}`;
      if (fuzz.chance(0.1)) text = text.slice(0, fuzz.int(text.length));
      const path = fuzz.pick(paths);
      try {
        const found = signatureFromBundle(Buffer.from(text), path, expected);
        if (found === undefined) return;
        if (found.size !== expected.size || found.sha256 !== expected.sha256) fail(text, 'returned a signature of another content');
        const problem = tilingProblem(found);
        if (problem !== undefined) fail(text, `returned an invalid signature: ${problem}`);
        if (!Object.hasOwn(files, path) && !text.includes(`"${path}"`)) fail(text, `found ${path} where the bundle has no such entry`);
      } catch (error) {
        const problem = unexpectedFailure(error, ['integrity']);
        if (problem !== undefined) fail(preview(text, 200), problem);
      }
    });
    // The generator produces real bundles too: the valid one is still read.
    expect(signatureFromBundle(serializeSignatureBundle(new Map([['memory.json', signature]])), 'memory.json', expected)).toEqual(signature);
  });
});
