import { BandwidthLimiter, type BandwidthLimiters } from './bandwidth-bucket.js';

/**
 * CLOUD_SYNC_BANDWIDTH_LIMIT: a rate for both directions ("20MiB"), or upload and download apart
 * ("20MiB:100MiB"). Binary units (KiB, MiB, GiB) and decimal ones (KB, MB, GB), with "/s"
 * tolerated; a bare number is bytes per second; 0 means no limit in that direction.
 */

export interface BandwidthLimit {
  /** Bytes per second; undefined: no limit. */
  upBytesPerSecond: number | undefined;
  downBytesPerSecond: number | undefined;
}

/**
 * The lowest limit accepted. Each transfer moves 16 KiB slices in turn, and a request that moves
 * no byte for the store's 30 s idle timeout fails: below this, sixteen parts in flight (four
 * files of four parts) could each wait that long.
 */
export const MIN_BANDWIDTH_BYTES_PER_SECOND = 64 * 1024;

const UNITS: Record<string, number> = {
  b: 1,
  kib: 1024,
  mib: 1024 ** 2,
  gib: 1024 ** 3,
  kb: 1000,
  mb: 1000 ** 2,
  gb: 1000 ** 3,
};

const RATE = /^(\d+(?:\.\d+)?)\s*([a-z]*)(?:\/s)?$/i;

export type ParsedBandwidth = { ok: true; limit: BandwidthLimit } | { ok: false; problem: string };

function parseRate(text: string): number | string {
  const match = RATE.exec(text.trim());
  if (match === null) return `"${text.trim()}" is not a rate`;
  const unit = (match[2] ?? '').toLowerCase();
  const factor = unit === '' ? 1 : UNITS[unit];
  if (factor === undefined) return `unknown unit "${match[2] ?? ''}"`;
  const bytes = Math.floor(Number(match[1]) * factor);
  if (bytes === 0) return 0;
  if (bytes < MIN_BANDWIDTH_BYTES_PER_SECOND) return `${text.trim()} is below the lowest limit, 64KiB`;
  return bytes;
}

export function parseBandwidthLimit(text: string): ParsedBandwidth {
  const sides = text.split(':');
  if (sides.length > 2) return { ok: false, problem: 'at most two rates, upload:download' };
  const rates = sides.map(parseRate);
  const problem = rates.find((rate): rate is string => typeof rate === 'string');
  if (problem !== undefined) return { ok: false, problem };
  const [up = 0, down = up] = rates as number[];
  return { ok: true, limit: { upBytesPerSecond: up === 0 ? undefined : up, downBytesPerSecond: down === 0 ? undefined : down } };
}

/** "20 MiB/s" style, for logs and the status. */
export function formatRate(bytesPerSecond: number | undefined): string {
  if (bytesPerSecond === undefined) return 'unlimited';
  for (const [unit, factor] of [['GiB', 1024 ** 3], ['MiB', 1024 ** 2], ['KiB', 1024]] as const) {
    if (bytesPerSecond >= factor) return `${Number((bytesPerSecond / factor).toFixed(2))} ${unit}/s`;
  }
  return `${bytesPerSecond} B/s`;
}

/** The limiters for a limit, shared by every transfer of one store (that is, of the process). */
export function bandwidthLimiters(limit: BandwidthLimit | undefined): BandwidthLimiters {
  return {
    up: limit?.upBytesPerSecond === undefined ? undefined : new BandwidthLimiter(limit.upBytesPerSecond),
    down: limit?.downBytesPerSecond === undefined ? undefined : new BandwidthLimiter(limit.downBytesPerSecond),
  };
}
