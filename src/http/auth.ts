import { createHash, timingSafeEqual } from 'node:crypto';
import { AppError } from '../errors.js';

/**
 * Bearer-token check in constant time. Both sides are hashed first so that the comparison
 * length never depends on the secret's length.
 */
export function makeTokenCheck(token: string | undefined): (authorization: string | undefined) => void {
  if (token === undefined) return () => undefined;
  const expected = createHash('sha256').update(token).digest();
  return (authorization) => {
    const presented = /^Bearer (.+)$/i.exec(authorization ?? '')?.[1] ?? '';
    const actual = createHash('sha256').update(presented).digest();
    if (presented.length === 0 || !timingSafeEqual(actual, expected)) {
      throw new AppError('unauthenticated', 'missing or wrong API token', { hint: 'send Authorization: Bearer <CLOUD_SYNC_API_TOKEN>' });
    }
  };
}
