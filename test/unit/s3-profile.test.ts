// S3 profiles: which one an endpoint gets, what each sets in the configuration, how a wrong name
// is reported, and what /sync/status says about the store.
import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { buildMemsync } from '../../src/app.js';
import { loadConfig, redactedConfig } from '../../src/config.js';
import { silentLogger } from '../../src/log.js';
import { MemoryRemoteStore } from '../../src/remote/memory-store.js';
import { detectS3Profile, resolveS3Profile } from '../../src/remote/s3-profile.js';
import { storeStatus } from '../../src/remote/s3-profile-status.js';
import { configProblems } from '../helpers/config-problems.js';
import { tempDir } from '../helpers/tmp.js';

const enabled = { CLOUD_SYNC_ENABLED: 'true', CLOUD_SYNC_BUCKET: 'my-memories' };

describe('detectS3Profile', () => {
  it.each([
    [undefined, 'aws'],
    ['https://s3.eu-west-1.amazonaws.com', 'aws'],
    ['https://s3.cn-north-1.amazonaws.com.cn', 'aws'],
    ['https://0123456789abcdef.r2.cloudflarestorage.com', 'r2'],
    ['https://0123456789abcdef.eu.r2.cloudflarestorage.com', 'r2'],
    ['https://s3.us-west-004.backblazeb2.com', 'b2'],
    ['https://storage.googleapis.com', 'gcs'],
    ['https://s3.eu-central-1.wasabisys.com', 'wasabi'],
    ['http://minio:9000', 'generic'],
    ['http://127.0.0.1:7480', 'generic'],
    // A host that only contains a known name is not that service.
    ['https://amazonaws.com.example.org', 'generic'],
    ['https://notbackblazeb2.com', 'generic'],
  ])('%s -> %s', (endpoint, profile) => {
    expect(detectS3Profile(endpoint)).toBe(profile);
  });

  it('says how the profile was chosen', () => {
    expect(resolveS3Profile(undefined, undefined).chosenBy).toBe('no endpoint');
    expect(resolveS3Profile(undefined, 'https://storage.googleapis.com').chosenBy).toBe('endpoint host');
    expect(resolveS3Profile('minio', 'https://storage.googleapis.com')).toMatchObject({ name: 'minio', chosenBy: 'CLOUD_SYNC_S3_PROFILE' });
  });
});

describe('CLOUD_SYNC_S3_PROFILE in the configuration', () => {
  it('refuses an unknown name, naming the variable and listing the known ones', () => {
    expect(configProblems({ ...enabled, CLOUD_SYNC_S3_PROFILE: 'digitalocean' })).toContain(
      'CLOUD_SYNC_S3_PROFILE="digitalocean": expected one of aws, minio, ceph, r2, b2, gcs, wasabi, generic',
    );
  });

  it.each([
    // [endpoint, profile variable, profile, parts in flight, path style, delta uploads]
    [undefined, undefined, 'aws', 4, false, true],
    ['https://s3.eu-west-1.amazonaws.com', undefined, 'aws', 4, false, true],
    ['https://acct.r2.cloudflarestorage.com', undefined, 'r2', 2, true, false],
    ['https://s3.us-west-004.backblazeb2.com', undefined, 'b2', 4, true, true],
    ['https://storage.googleapis.com', undefined, 'gcs', 4, true, false],
    ['https://s3.wasabisys.com', undefined, 'wasabi', 4, true, true],
    ['http://minio:9000', undefined, 'generic', 4, true, true],
    ['http://minio:9000', 'minio', 'minio', 4, true, true],
    ['https://r2.example.internal', 'r2', 'r2', 2, true, false],
  ])('endpoint %s with CLOUD_SYNC_S3_PROFILE=%s: %s, %i parts in flight, path style %s, delta %s', (endpoint, named, profile, parts, pathStyle, delta) => {
    const config = loadConfig({ ...enabled, ...(endpoint === undefined ? {} : { CLOUD_SYNC_ENDPOINT: endpoint }), ...(named === undefined ? {} : { CLOUD_SYNC_S3_PROFILE: named }) });
    expect(config.s3.profile.name).toBe(profile);
    expect(config.s3.profile.partsInFlight).toBe(parts);
    expect(config.s3.forcePathStyle).toBe(pathStyle);
    expect(config.deltaMinFileBytes !== undefined).toBe(delta);
  });

  it('lets CLOUD_SYNC_FORCE_PATH_STYLE override the profile either way', () => {
    expect(loadConfig({ ...enabled, CLOUD_SYNC_FORCE_PATH_STYLE: 'true' }).s3.forcePathStyle).toBe(true);
    expect(loadConfig({ ...enabled, CLOUD_SYNC_ENDPOINT: 'https://acct.r2.cloudflarestorage.com', CLOUD_SYNC_FORCE_PATH_STYLE: 'false' }).s3.forcePathStyle).toBe(false);
  });

  it('does not switch delta uploads off for other providers', () => {
    const fs = loadConfig({ CLOUD_SYNC_PROVIDER: 'fs', CLOUD_SYNC_BUCKET: '/mnt/backup-share', CLOUD_SYNC_ENDPOINT: 'https://storage.googleapis.com' });
    expect(fs.deltaMinFileBytes).toBeDefined();
  });

  it('puts the profile and what it changes in the configuration logged at start', () => {
    const config = loadConfig({ ...enabled, CLOUD_SYNC_ENDPOINT: 'https://acct.r2.cloudflarestorage.com' });
    expect(redactedConfig(config).s3Profile).toBe('r2 (from endpoint host): 2 parts in flight per file, equal part sizes, delta uploads off');
    const gcs = loadConfig({ ...enabled, CLOUD_SYNC_ENDPOINT: 'https://storage.googleapis.com' });
    expect(redactedConfig(gcs).s3Profile).toBe('gcs (from endpoint host): 4 parts in flight per file, no ranged copies, delta uploads off, create-only as x-goog-if-generation-match: 0');
  });
});

describe('storeStatus', () => {
  it('reports the profile, how it was chosen, what it sets and what the probe found', () => {
    const config = loadConfig({ ...enabled, CLOUD_SYNC_ENDPOINT: 'https://storage.googleapis.com' });
    expect(storeStatus(config, 'honoured')).toEqual({
      provider: 's3',
      profile: 'gcs',
      chosenBy: 'endpoint host',
      partsInFlight: 4,
      equalPartSizes: false,
      rangedCopies: false,
      pathStyle: true,
      payloadSigning: 'UNSIGNED-PAYLOAD',
      checksums: 'WHEN_REQUIRED',
      createOnlyHeader: 'x-goog-if-generation-match: 0',
      deltaUploads: false,
      probed: { conditionalWrites: 'honoured' },
    });
    expect(storeStatus(loadConfig(enabled), undefined)).toMatchObject({ profile: 'aws', chosenBy: 'no endpoint', probed: { conditionalWrites: 'unknown' } });
  });

  it('reports only the provider and the probe for stores that are not S3', () => {
    const config = loadConfig({ CLOUD_SYNC_PROVIDER: 'fs', CLOUD_SYNC_BUCKET: '/mnt/backup-share' });
    expect(storeStatus(config, 'honoured')).toEqual({ provider: 'fs', probed: { conditionalWrites: 'honoured' } });
  });
});

describe('/sync/status', () => {
  it('has a store object with the profile and the start-up probe answer', async () => {
    const root = await tempDir('memsync-s3-profile-status');
    const backupDir = path.join(root, 'backups');
    await mkdir(backupDir);
    const config = loadConfig({ ...enabled, CLOUD_SYNC_ENDPOINT: 'https://acct.r2.cloudflarestorage.com', CLOUD_SYNC_BACKUP_DIR: backupDir, CLOUD_SYNC_STATE_DIR: path.join(root, 'state') });
    const memsync = await buildMemsync(config, silentLogger, { store: new MemoryRemoteStore() });
    try {
      await memsync.start({ listen: false });
      const status = await memsync.server.inject({ url: '/sync/status' });
      expect(status.json()).toMatchObject({
        store: { provider: 's3', profile: 'r2', chosenBy: 'endpoint host', partsInFlight: 2, equalPartSizes: true, deltaUploads: false, probed: { conditionalWrites: 'honoured' } },
      });
    } finally {
      await memsync.stop();
    }
  });
});
