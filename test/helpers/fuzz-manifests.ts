import { serializeManifest, type Manifest } from '../../src/snapshot/manifest.js';
import type { Fuzz } from './fuzz.js';

/**
 * Manifests as a hostile bucket writer would plant them: a valid one, then damaged in its
 * structure (wrong types, absurd numbers, deep nesting, long or strange strings, extra and
 * prototype keys, duplicated entries) and in its bytes (flipped bits, cuts, repeated slices).
 */

type Json = null | boolean | number | string | Json[] | { [key: string]: Json };
type JsonObject = { [key: string]: Json };

/** JSON.stringify cannot write these (1e400, -0, duplicate keys): a marker string is replaced by the raw text afterwards. */
class RawValues {
  private readonly texts: string[] = [];

  marker(rawJson: string): string {
    this.texts.push(rawJson);
    return `@@RAW${this.texts.length - 1}@@`;
  }

  apply(text: string): string {
    return text.replace(/"@@RAW(\d+)@@"/g, (_all, index: string) => this.texts[Number(index)] ?? 'null');
  }
}

const ABSURD_NUMBERS = ['1e308', '1e400', '-1e400', '-1', '-0', '0.5', '1e-400', '9007199254740992', '9007199254740993', '18446744073709551616', '1E2', '123456789012345678901234567890', '0x10', 'NaN', 'Infinity', '00', '+1'];
const WRONG_TYPES: Json[] = [null, true, false, 0, -1, '', 'x', [], {}, [1, 2], { a: 1 }, ['memory.json'], { path: 'memory.json' }];
const HOSTILE_PATHS = ['../x', '../../etc/passwd', '/etc/passwd', 'a/../../b', 'a//b', '.', '..', '', 'a\\b', 'C:\\x', 'a/./b', '.memsync-manifest.json', '.memsync-claim', 'x/', `${'s'.repeat(256)}/f`, 'a\u0000b', 'a\nb', '\ud800', 'a/\u007f', 'latest'];
const PROTO_INSERTS = ['"__proto__": {"polluted": "yes", "path": "x", "size": 1}', '"constructor": {"prototype": {"polluted": "yes"}}', '"__proto__": null', '"__proto__": []', '"prototype": {"polluted": "yes"}'];

function objectSlots(doc: JsonObject): JsonObject[] {
  const slots: JsonObject[] = [doc];
  if (Array.isArray(doc.files)) for (const entry of doc.files) if (entry !== null && typeof entry === 'object' && !Array.isArray(entry)) slots.push(entry);
  return slots;
}

function deepNesting(fuzz: Fuzz): string {
  const depth = fuzz.pick([10, 1000, 20_000, fuzz.chance(0.1) ? 100_000 : 50]);
  return fuzz.chance(0.5) ? `${'['.repeat(depth)}${']'.repeat(depth)}` : `${'{"a":'.repeat(depth)}1${'}'.repeat(depth)}`;
}

function longString(fuzz: Fuzz): string {
  const length = fuzz.pick([200, 201, 255, 256, 1024, 1025, 65_536, fuzz.chance(0.1) ? 1_000_000 : 4096]);
  return fuzz.chance(0.5) ? 'a'.repeat(length) : fuzz.hostileText(64).repeat(Math.ceil(length / 64) + 1).slice(0, length);
}

/** One structured change; returns its name, for failure messages. */
function mutateStructure(fuzz: Fuzz, doc: JsonObject, raws: RawValues): string {
  const slot = fuzz.pick(objectSlots(doc));
  const keys = Object.keys(slot);
  const key = keys.length > 0 && fuzz.chance(0.85) ? fuzz.pick(keys) : fuzz.hostileText(12);
  const entries = Array.isArray(doc.files) ? doc.files : undefined;
  switch (fuzz.int(12)) {
    case 0:
      slot[key] = fuzz.pick(WRONG_TYPES);
      return `wrong type at ${key}`;
    case 1:
      slot[fuzz.chance(0.7) && 'size' in slot ? 'size' : key] = raws.marker(fuzz.pick(ABSURD_NUMBERS));
      return 'absurd number';
    case 2:
      slot[key] = raws.marker(deepNesting(fuzz));
      return `deep nesting at ${key}`;
    case 3:
      slot[fuzz.chance(0.6) && 'path' in slot ? 'path' : key] = longString(fuzz);
      return 'long string';
    case 4:
      slot[fuzz.pick(['path', 'snapshot', 'sha256', 'kind', key])] = fuzz.hostileText(40);
      return 'hostile text';
    case 5:
      slot[fuzz.hostileText(16)] = fuzz.pick(WRONG_TYPES);
      return 'extra key';
    case 6: {
      // Raw, so that JSON.parse sees the key itself (an object literal would set the prototype instead).
      const inserted = fuzz.pick(PROTO_INSERTS);
      slot[key] = raws.marker(`${JSON.stringify(slot[key] ?? null)}, ${inserted}`);
      return `prototype key ${inserted}`;
    }
    case 7:
      if (entries !== undefined && entries.length > 0) {
        const copy = JSON.parse(JSON.stringify(fuzz.pick(entries))) as Json;
        if (fuzz.chance(0.5) && copy !== null && typeof copy === 'object' && !Array.isArray(copy)) copy.sha256 = 'f'.repeat(64);
        entries.splice(fuzz.int(entries.length + 1), 0, copy);
      }
      return 'duplicated entry';
    case 8:
      if (entries !== undefined && entries.length > 0) {
        const entry = fuzz.pick(entries);
        if (entry !== null && typeof entry === 'object' && !Array.isArray(entry)) {
          const path = fuzz.pick(HOSTILE_PATHS);
          // A file and the directory of another, or a hostile path outright.
          entry.path = fuzz.chance(0.3) && typeof entry.path === 'string' ? `${entry.path}/inner` : path;
        }
      }
      return 'hostile path';
    case 9: {
      const change = fuzz.int(6);
      if (change === 0) doc.kind = 'file';
      else if (change === 1) doc.snapshot = fuzz.pick(['auto_20991231_235959', 'latest', '../auto_20250101_000000', 'auto_20250101_000000 ', 'AUTO_20250101_000000']);
      else if (change === 2) doc.version = fuzz.pick([2, 0, '1', raws.marker('1.0'), raws.marker('1e0')]);
      else if (change === 3) doc.format = fuzz.pick(['memsync-manifest ', 'MEMSYNC-MANIFEST', 'memsync-signatures']);
      else if (change === 4) doc.files = [];
      else doc.files = raws.marker(`[${Array.from({ length: fuzz.between(100, 3000) }, (_, i) => `{"path":"f${i}","size":${i},"sha256":"${'0'.repeat(64)}"}`).join(',')}]`);
      return `header change ${change}`;
    }
    case 10:
      // Duplicate keys: JSON.parse keeps the last one.
      slot[key] = raws.marker(`${JSON.stringify(slot[key] ?? null)}, ${JSON.stringify(key)}: ${JSON.stringify(fuzz.pick(WRONG_TYPES))}`);
      return `duplicate key ${key}`;
    default:
      delete slot[key];
      return `missing ${key}`;
  }
}

function mutateBytes(fuzz: Fuzz, bytes: Buffer): { bytes: Buffer; name: string } {
  if (bytes.length === 0) return { bytes: fuzz.bytes(fuzz.between(0, 64)), name: 'random bytes' };
  switch (fuzz.int(5)) {
    case 0: {
      const out = Buffer.from(bytes);
      for (let n = fuzz.between(1, 8); n > 0; n -= 1) {
        const at = fuzz.int(out.length);
        out[at] = (out[at] as number) ^ (1 << fuzz.int(8));
      }
      return { bytes: out, name: 'bit flips' };
    }
    case 1:
      return { bytes: bytes.subarray(0, fuzz.int(bytes.length)), name: 'truncated' };
    case 2: {
      const start = fuzz.int(bytes.length);
      const end = start + fuzz.int(bytes.length - start + 1);
      const at = fuzz.int(bytes.length + 1);
      return { bytes: Buffer.concat([bytes.subarray(0, at), bytes.subarray(start, end), bytes.subarray(at)]), name: 'repeated slice' };
    }
    case 3: {
      const at = fuzz.int(bytes.length + 1);
      return { bytes: Buffer.concat([bytes.subarray(0, at), fuzz.bytes(fuzz.between(1, 32)), bytes.subarray(at)]), name: 'inserted bytes' };
    }
    default:
      return { bytes: Buffer.concat([bytes, Buffer.from(fuzz.chance(0.5) ? fuzz.hostileText(32) : '\n{}')]), name: 'trailing junk' };
  }
}

/** A damaged copy of `base` and the names of what was done to it. */
export function hostileManifest(fuzz: Fuzz, base: Manifest): { bytes: Buffer; mutations: string[] } {
  const doc = JSON.parse(serializeManifest(base).toString('utf8')) as JsonObject;
  const raws = new RawValues();
  const mutations: string[] = [];
  const structural = fuzz.chance(0.85) ? fuzz.between(1, 3) : 0;
  for (let n = 0; n < structural; n += 1) mutations.push(mutateStructure(fuzz, doc, raws));
  let bytes: Buffer = Buffer.from(raws.apply(JSON.stringify(doc, null, fuzz.chance(0.5) ? 2 : undefined)), 'utf8');
  if (structural === 0 || fuzz.chance(0.25)) {
    for (let n = fuzz.between(1, 2); n > 0; n -= 1) {
      const changed = mutateBytes(fuzz, bytes);
      bytes = changed.bytes;
      mutations.push(changed.name);
    }
  }
  return { bytes, mutations };
}
