import { fileKey } from '../snapshot/manifest.js';
import type { CopySource } from './copy-plan.js';
import type { DeltaTransfer } from './delta-transfer.js';
import type { ServerSideCopier } from './server-side-copy.js';
import type { SnapshotFiles } from './snapshot-files.js';
import type { FileTransfer, TransferContext, TransferInput, TransferResult } from './transfer.js';
import { fileBody } from './upload-body.js';

/**
 * The transfers that let the server copy bytes the bucket already holds, tried before an upload:
 * each returns undefined (send the file) when it cannot, and logs why itself.
 */

/** A verified server-side copy of an identical object (server-side-copy.ts); built per snapshot with its files' sources. */
export class CopyTransfer implements FileTransfer {
  /** `sources`: where each file to be written could be copied from, by path (ServerSideCopier.sourcesFor). */
  constructor(
    private readonly copier: ServerSideCopier,
    private readonly sources: ReadonlyMap<string, CopySource[]>,
  ) {}

  /** Whether any file of the snapshot may be copied (a copy is not create-only: see unlisted-upload.ts). */
  get copiesAny(): boolean {
    return this.sources.size > 0;
  }

  async attempt(input: TransferInput, { stat, signal, log, writing }: TransferContext): Promise<TransferResult | undefined> {
    const sources = this.sources.get(input.file.path);
    if (sources === undefined || input.digest === undefined) return undefined;
    writing?.(fileKey(stat.name, input.file.path));
    const storedEtag = await this.copier.copy(fileKey(stat.name, input.file.path), input.digest, sources, signal, log);
    if (storedEtag === undefined) return undefined;
    return { kind: 'copied', storedEtag, bytesSent: 0, bytesCopied: input.file.size, bytesDelta: 0 };
  }
}

/** The file composed from its previous version (delta-transfer.ts). */
export class ComposeTransfer implements FileTransfer {
  constructor(
    private readonly delta: DeltaTransfer,
    private readonly files: SnapshotFiles,
  ) {}

  async attempt(input: TransferInput, { stat, signal, log, writing }: TransferContext): Promise<TransferResult | undefined> {
    if (input.digest === undefined || !this.delta.considers(input.file.size)) return undefined;
    const file = await this.files.open(stat, input.file);
    writing?.(fileKey(stat.name, input.file.path));
    try {
      const body = fileBody(file, this.files.absolutePath(stat, input.file));
      const composed = await this.delta.compose(stat.name, fileKey(stat.name, input.file.path), { path: input.file.path, digest: input.digest, body }, signal, log);
      if (composed === undefined) return undefined;
      return { kind: 'composed', storedEtag: composed.etag, bytesSent: composed.bytesSent, bytesCopied: 0, bytesDelta: composed.bytesDelta };
    } finally {
      await file.close();
    }
  }
}
