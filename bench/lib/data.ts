// Bench data, written once per run and reused by every tool: snapshot folders laid out and named
// as the memory service writes them (`{prefix}_{YYYYMMDD}_{HHMMSS}`, metadata.json, config.json,
// index.faiss, mtimes copied from an older source as `cp -p` does).
import { randomFillSync } from 'node:crypto';
import { mkdir, open, utimes, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { backupName, SOURCE_MTIME } from '../../demo/backup-writer.js';
import { seededRandom } from '../../test/helpers/random.js';

const MIB = 1024 * 1024;
const CHUNK_BYTES = 8 * MIB;

/** Random bytes (incompressible, like a FAISS index), written in 8 MiB chunks: memory stays flat. */
export async function writeRandomFile(file: string, sizeBytes: number): Promise<void> {
  const handle = await open(file, 'w');
  try {
    const chunk = Buffer.allocUnsafe(Math.min(CHUNK_BYTES, Math.max(1, sizeBytes)));
    for (let written = 0; written < sizeBytes; ) {
      const n = Math.min(chunk.length, sizeBytes - written);
      randomFillSync(chunk, 0, n);
      await handle.write(chunk, 0, n);
      written += n;
    }
  } finally {
    await handle.close();
  }
  await utimes(file, SOURCE_MTIME, SOURCE_MTIME);
}

/** A metadata.json-like JSON document of exactly `sizeBytes`, streamed memory by memory. */
export async function writeMetadataFile(file: string, sizeBytes: number, seed: string): Promise<void> {
  const handle = await open(file, 'w');
  const head = '{"version":3,"memories":[\n';
  const tail = '\n]}\n';
  try {
    let written = 0;
    const write = async (text: string): Promise<void> => {
      await handle.write(text);
      written += Buffer.byteLength(text);
    };
    await write(head);
    let batch: string[] = [];
    let batchBytes = 0;
    for (let i = 0; ; i += 1) {
      const line = `${i === 0 ? '' : ',\n'}{"id":"${seed}-${i}","text":"memory ${i} of ${seed}: the user prefers ${['tea', 'coffee', 'water'][i % 3]} in the ${['morning', 'evening'][i % 2]}","vector_id":${i}}`;
      const lineBytes = Buffer.byteLength(line);
      if (written + batchBytes + lineBytes + tail.length > sizeBytes) break;
      batch.push(line);
      batchBytes += lineBytes;
      if (batchBytes > 1 << 20) {
        await write(batch.join(''));
        batch = [];
        batchBytes = 0;
      }
    }
    await write(batch.join(''));
    // Pad to the exact size with spaces JSON ignores.
    await write(' '.repeat(Math.max(0, sizeBytes - written - tail.length)));
    await write(tail);
  } finally {
    await handle.close();
  }
  await utimes(file, SOURCE_MTIME, SOURCE_MTIME);
}

async function writeSmallFile(file: string, bytes: Buffer): Promise<void> {
  await writeFile(file, bytes);
  await utimes(file, SOURCE_MTIME, SOURCE_MTIME);
}

function configJson(seed: string): Buffer {
  return Buffer.from(JSON.stringify({ embedding_model: 'all-MiniLM-L6-v2', dimension: 384, seed }, null, 2));
}

/** One large snapshot: index.faiss (random), metadata.json (JSON text), config.json. Returns its folder. */
export async function writeLargeSnapshot(parentDir: string, name: string, indexBytes: number, metadataBytes: number): Promise<string> {
  const dir = path.join(parentDir, name);
  await mkdir(dir, { recursive: true });
  await writeRandomFile(path.join(dir, 'index.faiss'), indexBytes);
  if (metadataBytes > 0) await writeMetadataFile(path.join(dir, 'metadata.json'), metadataBytes, name);
  await writeSmallFile(path.join(dir, 'config.json'), configJson(name));
  return dir;
}

export interface TreeSpec {
  count: number;
  /** Snapshot names: `${prefix}_${time}`, one second apart from `firstTime`. */
  prefix: string;
  firstTime: Date;
  files: readonly string[];
  minFileBytes: number;
  maxFileBytes: number;
  seed: number;
}

export interface Tree {
  names: string[];
  files: number;
  bytes: number;
}

/** `count` small snapshots side by side under `parentDir`. */
export async function writeTree(parentDir: string, spec: TreeSpec): Promise<Tree> {
  // Deterministic, so every run writes the same sizes.
  const random = seededRandom(spec.seed);
  const names: string[] = [];
  let bytes = 0;
  const buffer = Buffer.allocUnsafe(spec.maxFileBytes);
  for (let i = 0; i < spec.count; i += 1) {
    const name = backupName(spec.prefix, new Date(spec.firstTime.getTime() + i * 1000));
    const dir = path.join(parentDir, name);
    await mkdir(dir, { recursive: true });
    for (const file of spec.files) {
      const size = spec.minFileBytes + Math.floor(random() * (spec.maxFileBytes - spec.minFileBytes + 1));
      randomFillSync(buffer, 0, size);
      await writeSmallFile(path.join(dir, file), buffer.subarray(0, size));
      bytes += size;
    }
    names.push(name);
  }
  return { names, files: spec.count * spec.files.length, bytes };
}

export { backupName };
