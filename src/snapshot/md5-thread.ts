// The body of an MD5 worker thread (see md5-offload.ts). Node runs this file as it is, from
// src/ (type stripping) or from dist/, so it imports only Node's own modules and uses only
// syntax that erases to JavaScript.
import { createHash, type Hash } from 'node:crypto';
import { parentPort, workerData } from 'node:worker_threads';

export interface Md5ThreadSetup {
  slots: SharedArrayBuffer[];
  /** 0: no per-part MD5s (a single-request object). */
  partSizeBytes: number;
  wholeMd5: boolean;
}

/** main -> thread: bytes [0, length) of a slot are the next bytes of the file; or the file ended. */
export type Md5ThreadRequest = { slot: number; length: number } | { end: true };
/** thread -> main: a slot may be reused; or the digests of the whole file. */
export type Md5ThreadReply = { freed: number } | { md5: string; partMd5s: Uint8Array[] };

function run(port: NonNullable<typeof parentPort>, setup: Md5ThreadSetup): void {
  const slots = setup.slots.map((buffer) => new Uint8Array(buffer));
  const whole: Hash | undefined = setup.wholeMd5 ? createHash('md5') : undefined;
  const partMd5s: Uint8Array[] = [];
  let part: Hash = createHash('md5');
  let inPart = 0;

  port.on('message', (request: Md5ThreadRequest) => {
    if ('end' in request) {
      if (setup.partSizeBytes > 0 && (inPart > 0 || partMd5s.length === 0)) partMd5s.push(part.digest());
      port.postMessage({ md5: whole === undefined ? '' : whole.digest('hex'), partMd5s } satisfies Md5ThreadReply);
      return;
    }
    const bytes = slots[request.slot]!.subarray(0, request.length);
    whole?.update(bytes);
    for (let offset = 0; setup.partSizeBytes > 0 && offset < bytes.length; ) {
      const take = Math.min(setup.partSizeBytes - inPart, bytes.length - offset);
      part.update(bytes.subarray(offset, offset + take));
      inPart += take;
      offset += take;
      if (inPart === setup.partSizeBytes) {
        partMd5s.push(part.digest());
        part = createHash('md5');
        inPart = 0;
      }
    }
    port.postMessage({ freed: request.slot } satisfies Md5ThreadReply);
  });
}

if (parentPort !== null) run(parentPort, workerData as Md5ThreadSetup);
