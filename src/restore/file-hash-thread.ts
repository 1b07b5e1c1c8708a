// The body of a file-hashing thread (see file-hasher.ts). Node runs this file as it is, from
// src/ (type stripping) or from dist/, so it imports only Node's own modules and uses only
// syntax that erases to JavaScript.
import { createHash, type Hash } from 'node:crypto';
import { readSync } from 'node:fs';
import { parentPort, workerData } from 'node:worker_threads';

export interface FileHashSetup {
  /** An open descriptor of the file; the owner keeps it open until this thread has ended. */
  fd: number;
  /** Whole-file MD5 as well as the SHA-256 (an object checked by its plain ETag). */
  md5: boolean;
  /** Part sizes whose multipart ETags to compute (an object checked by a multipart ETag). */
  partSizes: number[];
  readBytes: number;
}

/** owner -> thread: bytes [0, upTo) of the file are written and may be hashed; or the file is complete at `end` bytes. */
export type FileHashRequest = { upTo: number } | { end: number };
/** thread -> owner: the digests of the whole file, or why it could not be read. */
export type FileHashReply = { sha256: string; md5: string; partEtags: string[]; size: number } | { failed: string };

/** MD5 per part of `partSize`, as an S3 multipart upload with that part size reports it. */
class PartEtag {
  private readonly digests: Buffer[] = [];
  private part: Hash = createHash('md5');
  private inPart = 0;
  private readonly partSize: number;

  constructor(partSize: number) {
    this.partSize = partSize;
  }

  update(bytes: Uint8Array): void {
    for (let offset = 0; offset < bytes.length; ) {
      const take = Math.min(this.partSize - this.inPart, bytes.length - offset);
      this.part.update(bytes.subarray(offset, offset + take));
      this.inPart += take;
      offset += take;
      if (this.inPart === this.partSize) {
        this.digests.push(this.part.digest());
        this.part = createHash('md5');
        this.inPart = 0;
      }
    }
  }

  etag(): string {
    if (this.inPart > 0 || this.digests.length === 0) this.digests.push(this.part.digest());
    return `${createHash('md5').update(Buffer.concat(this.digests)).digest('hex')}-${this.digests.length}`;
  }
}

function run(port: NonNullable<typeof parentPort>, setup: FileHashSetup): void {
  const sha256 = createHash('sha256');
  const md5: Hash | undefined = setup.md5 ? createHash('md5') : undefined;
  const parts = setup.partSizes.map((size) => new PartEtag(size));
  const buffer = Buffer.allocUnsafe(setup.readBytes);
  let hashed = 0;

  // Reads are synchronous: this thread has nothing else to do, and messages wait in order meanwhile.
  const hashUpTo = (upTo: number): void => {
    while (hashed < upTo) {
      const bytesRead = readSync(setup.fd, buffer, 0, Math.min(buffer.length, upTo - hashed), hashed);
      if (bytesRead === 0) throw new Error(`the file ends at ${hashed} bytes, before the ${upTo} written`);
      const bytes = buffer.subarray(0, bytesRead);
      sha256.update(bytes);
      md5?.update(bytes);
      for (const part of parts) part.update(bytes);
      hashed += bytesRead;
    }
  };

  let failed = false;
  port.on('message', (request: FileHashRequest) => {
    if (failed) return;
    try {
      if ('upTo' in request) {
        hashUpTo(request.upTo);
        return;
      }
      hashUpTo(request.end);
      // One byte past the end shows whether the file holds more than was written for it.
      const past = readSync(setup.fd, buffer, 0, 1, request.end);
      const size = request.end + past;
      port.postMessage({ sha256: sha256.digest('hex'), md5: md5?.digest('hex') ?? '', partEtags: parts.map((part) => part.etag()), size } satisfies FileHashReply);
    } catch (error) {
      failed = true;
      port.postMessage({ failed: error instanceof Error ? error.message : String(error) } satisfies FileHashReply);
    }
  });
}

if (parentPort !== null) run(parentPort, workerData as FileHashSetup);
