/**
 * The part MD5s a file's digest pass took for its plain multipart layout, kept in memory for the
 * composition that usually follows within seconds: its copied parts cut on that layout are
 * checked against them instead of reading and hashing the copied bytes again. Not persisted:
 * a list is cheap to take again compared with a file's digest, and worth keeping only as long
 * as the upload it serves. Bounded to the most recent files.
 */

export interface PlainPartMd5s {
  /** The layout's part size: part k is bytes [k * partSizeBytes, (k + 1) * partSizeBytes). */
  partSizeBytes: number;
  /** Raw MD5 of each part, in order, the last (shorter) one included. */
  md5s: readonly Buffer[];
}

/** Files whose lists are kept: a snapshot has a few large files; a 1 GiB file's list is 2 KiB, an 80 GiB one's 160 KB. */
export const DEFAULT_KEPT_FILES = 16;

export class KeptPartMd5s {
  /** By content; Map order is insertion order, so the first key is the oldest. */
  private readonly byContent = new Map<string, PlainPartMd5s>();

  constructor(private readonly maxFiles = DEFAULT_KEPT_FILES) {}

  keep(sha256: string, sizeBytes: number, parts: PlainPartMd5s): void {
    // A list that does not cover the file exactly would name wrong ranges: never kept.
    if (parts.partSizeBytes < 1 || parts.md5s.length !== Math.max(1, Math.ceil(sizeBytes / parts.partSizeBytes))) return;
    const key = contentKey(sha256, sizeBytes);
    this.byContent.delete(key);
    this.byContent.set(key, { partSizeBytes: parts.partSizeBytes, md5s: [...parts.md5s] });
    for (const oldest of this.byContent.keys()) {
      if (this.byContent.size <= this.maxFiles) break;
      this.byContent.delete(oldest);
    }
  }

  get(sha256: string, sizeBytes: number): PlainPartMd5s | undefined {
    return this.byContent.get(contentKey(sha256, sizeBytes));
  }
}

function contentKey(sha256: string, sizeBytes: number): string {
  return `${sha256}/${sizeBytes}`;
}
