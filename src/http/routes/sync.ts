import type { FastifyInstance } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { AppError } from '../../errors.js';
import type { AgentStatus } from '../../status.js';
import type { ManualUploadResult, RestoreResult } from '../../operations.js';
import type { RestoreOutcome } from '../../restore/restorer.js';
import type { RemoteIndex } from '../../remote/remote-index.js';
import {
  disabledSchema,
  downloadQuery,
  errorSchema,
  restoreParams,
  restoreQuery,
  restoreResponse,
  snapshotsQuery,
  snapshotsResponse,
  statusResponse,
  uploadResponse,
} from '../schemas.js';
import { pageSnapshots } from '../pagination.js';

/** What the sync routes need; implemented by the composition root over the agent and operations. */
export interface SyncApi {
  upload(): Promise<ManualUploadResult>;
  describeDownload(name: string | undefined): Promise<string>;
  download(name: string | undefined): Promise<RestoreOutcome>;
  restore(name: string): Promise<RestoreResult>;
  status(): AgentStatus & { restoring: unknown[] };
  remoteIndex(maxAgeMs: number): Promise<RemoteIndex>;
  serviceConfigured: boolean;
}

const errors = { 400: errorSchema, 401: errorSchema, 404: errorSchema, 409: errorSchema, 502: errorSchema, 503: errorSchema.or(disabledSchema) };
/** Listing answers may be this stale; status never lists at all. */
const LISTING_MAX_AGE_MS = 30_000;

export function registerSyncRoutes(app: FastifyInstance, sync: SyncApi | undefined): void {
  const typed = app.withTypeProvider<ZodTypeProvider>();
  const security = [{ bearer: [] }];

  if (sync === undefined) {
    typed.all('/sync/*', { schema: { hide: true } }, async (_request, reply) =>
      reply.status(503).send({ enabled: false, message: 'cloud sync is disabled; set CLOUD_SYNC_ENABLED=true and the S3 settings to enable it' }),
    );
    return;
  }

  typed.post('/sync/upload', { schema: { summary: 'Sync now: upload every local snapshot not yet remote (or a fresh backup from the memory service)', security, response: { 200: uploadResponse, ...errors } } }, async () => {
    const result = await sync.upload();
    return { requested: result.requested ?? null, uploaded: result.uploaded, skipped: result.alreadyRemote, conflicts: result.conflicts, failed: result.failed, settling: result.settling };
  });

  typed.post('/sync/download', { schema: { summary: 'Download a remote snapshot (latest by time when no name) into the backup directory', security, querystring: downloadQuery, response: { 200: restoreResponse, ...errors } } }, async (request) => {
    const name = request.query.name ?? request.query.backup_name;
    if (!request.query.confirm) {
      throw new AppError('bad_input', `confirmation required: this would ${await sync.describeDownload(name)}; repeat with ?confirm=true`);
    }
    const outcome = await sync.download(name);
    return { ...outcome, applied: false, message: outcome.outcome === 'restored' ? `downloaded ${outcome.snapshot} into the backup directory` : `${outcome.snapshot} is already present locally with the same content` };
  });

  typed.post('/sync/restore/:name', { schema: { summary: 'Download a snapshot and, when the memory service is configured, ask it to apply it', security, params: restoreParams, querystring: restoreQuery, response: { 200: restoreResponse, ...errors } } }, async (request) => {
    const { name } = request.params;
    if (!request.query.confirm) {
      const then = sync.serviceConfigured ? 'then ask the memory service to restore its live state from it' : 'and leave it there for you to apply';
      throw new AppError('bad_input', `confirmation required: this would download ${name} into the backup directory ${then}; repeat with ?confirm=true`);
    }
    const result = await sync.restore(name);
    return { ...result.restore, applied: result.applied, message: result.message };
  });

  typed.get('/sync/status', { schema: { summary: 'Sync state from memory: last upload, errors, queue, local vs remote', security, response: { 200: statusResponse, ...errors } } }, async () => ({
    enabled: true as const,
    ...sync.status(),
  }));

  typed.get('/sync/snapshots', { schema: { summary: 'Remote snapshots, newest first by time, paginated', security, querystring: snapshotsQuery, response: { 200: snapshotsResponse, ...errors } } }, async (request) => {
    const index = await sync.remoteIndex(LISTING_MAX_AGE_MS);
    return pageSnapshots(index, request.query.limit, request.query.cursor);
  });
}
