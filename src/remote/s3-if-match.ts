import { httpStatusOf } from './s3-errors.js';

/**
 * The form of the ETag a server compares in an If-Match PUT. RFC 7232 quotes it, and AWS S3 takes
 * that; Ceph RGW 16 compares the bare digest and answers 412 to the quoted form. Until one form
 * has succeeded on this server, a 412 to the quoted form may be about the form: the bare one is
 * tried next. Both carry the same condition, so at most one of them writes.
 */
export class IfMatchForm {
  private quoted: boolean | undefined;

  /** Runs `send` with the If-Match value for `etag` (as the store reported it), in the form this server takes. */
  async send(etag: string, send: (ifMatch: string) => Promise<void>): Promise<void> {
    const bare = etag.replace(/"/g, '');
    const forms = this.quoted === undefined ? [true, false] : [this.quoted];
    let firstRefusal: unknown;
    for (const quoted of forms) {
      try {
        await send(quoted ? `"${bare}"` : bare);
        this.quoted = quoted;
        return;
      } catch (error) {
        const status = httpStatusOf(error);
        if (firstRefusal === undefined && status === 412) {
          firstRefusal = error;
          continue;
        }
        // Refused in the bare form too (412), or that form found malformed (400): the first answer stands.
        throw firstRefusal !== undefined && (status === 412 || status === 400) ? firstRefusal : error;
      }
    }
    throw firstRefusal;
  }
}
