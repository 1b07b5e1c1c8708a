import { S3Client } from '@aws-sdk/client-s3';
import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config.js';
import { bandwidthLimiters, formatRate, parseBandwidthLimit } from '../../src/remote/bandwidth-limit.js';
import { limitBandwidth } from '../../src/remote/throttle-middleware.js';

const MIB = 1024 * 1024;

describe('parseBandwidthLimit', () => {
  it.each([
    ['20MiB', 20 * MIB, 20 * MIB],
    ['20MiB/s', 20 * MIB, 20 * MIB],
    ['20 mib', 20 * MIB, 20 * MIB],
    ['20MiB:100MiB', 20 * MIB, 100 * MIB],
    ['10MB', 10_000_000, 10_000_000],
    ['1.5GiB', 1.5 * 1024 * MIB, 1.5 * 1024 * MIB],
    ['512KiB:0', 512 * 1024, undefined],
    ['0:1GB', undefined, 1_000_000_000],
    ['0', undefined, undefined],
    ['1000000', 1_000_000, 1_000_000],
  ])('%s', (text, up, down) => {
    expect(parseBandwidthLimit(text)).toEqual({ ok: true, limit: { upBytesPerSecond: up, downBytesPerSecond: down } });
  });

  it.each(['20 mebibytes', 'fast', '1:2:3', '-5MiB', '10KiB', '20MiB:'])('refuses %s', (text) => {
    expect(parseBandwidthLimit(text).ok).toBe(false);
  });

  it('formats rates for the log', () => {
    expect(formatRate(16 * MIB)).toBe('16 MiB/s');
    expect(formatRate(undefined)).toBe('unlimited');
  });
});

describe('CLOUD_SYNC_BANDWIDTH_LIMIT', () => {
  it('names the variable when the value is malformed', () => {
    expect(() => loadConfig({ CLOUD_SYNC_BANDWIDTH_LIMIT: '20 mebibytes' })).toThrow(/CLOUD_SYNC_BANDWIDTH_LIMIT="20 mebibytes": expected a rate like 20MiB/);
  });

  it('reaches the S3 settings', () => {
    expect(loadConfig({ CLOUD_SYNC_BANDWIDTH_LIMIT: '16MiB:64MiB' }).s3.bandwidthLimit).toEqual({ upBytesPerSecond: 16 * MIB, downBytesPerSecond: 64 * MIB });
  });

  it('unset: no limit, and no throttling wrapper in the S3 client', () => {
    const limit = loadConfig({}).s3.bandwidthLimit;
    expect(limit).toEqual({ upBytesPerSecond: undefined, downBytesPerSecond: undefined });
    const client = new S3Client({ region: 'us-east-1' });
    expect(limitBandwidth(client, bandwidthLimiters(limit))).toBe(false);
    expect(client.middlewareStack.identify().some((entry) => entry.includes('memsyncBandwidthLimit'))).toBe(false);
    expect(limitBandwidth(client, bandwidthLimiters({ upBytesPerSecond: MIB, downBytesPerSecond: undefined }))).toBe(true);
    expect(client.middlewareStack.identify().some((entry) => entry.includes('memsyncBandwidthLimit'))).toBe(true);
    client.destroy();
  });
});
