import type { Chunk } from './chunker.js';

/**
 * Where a new version's chunks are found in the previous version: runs of the new file that
 * exist, byte for byte, at some offset of the base. A chunk hash names the chunk's bytes, not
 * its place, so a match is right however either file was cut; only the number of matches
 * depends on both being cut the same way.
 */

export interface CopySegment {
  kind: 'copy';
  targetStart: number;
  length: number;
  /** Offset in the base of the first byte. */
  sourceStart: number;
}

export interface SendSegment {
  kind: 'send';
  targetStart: number;
  length: number;
}

export type Segment = CopySegment | SendSegment;

/** Appends a range of the new file, joining it to the previous segment when both continue each other. */
function append(segments: Segment[], next: Segment): void {
  const last = segments.at(-1);
  if (last !== undefined && last.kind === next.kind && (last.kind === 'send' || (next.kind === 'copy' && last.sourceStart + last.length === next.sourceStart))) {
    last.length += next.length;
    return;
  }
  segments.push({ ...next });
}

/**
 * The new file as copy runs (ranges of the base) and send runs (bytes only the new file has),
 * in order, covering every new chunk. A run is extended while the next new chunk equals the base
 * chunk right after the previous match, so a repeated chunk (zero-filled pages, say) continues
 * the run it is in rather than jumping to its first occurrence; a new run starts at the first
 * base chunk with that hash.
 */
export function matchChunks(newChunks: readonly Chunk[], baseChunks: readonly Chunk[]): Segment[] {
  const firstByHash = new Map<string, number>();
  for (const [index, chunk] of baseChunks.entries()) if (!firstByHash.has(chunk.hash)) firstByHash.set(chunk.hash, index);

  const segments: Segment[] = [];
  let previousMatch = -1;
  for (const chunk of newChunks) {
    const following = previousMatch >= 0 ? baseChunks[previousMatch + 1] : undefined;
    const candidate = following?.hash === chunk.hash ? previousMatch + 1 : firstByHash.get(chunk.hash);
    const source = candidate === undefined ? undefined : baseChunks[candidate];
    if (candidate === undefined || source === undefined || source.length !== chunk.length) {
      append(segments, { kind: 'send', targetStart: chunk.offset, length: chunk.length });
      previousMatch = -1;
    } else {
      append(segments, { kind: 'copy', targetStart: chunk.offset, length: chunk.length, sourceStart: source.offset });
      previousMatch = candidate;
    }
  }
  return segments;
}
