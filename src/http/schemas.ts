import { z } from 'zod';
import { MAX_SNAPSHOT_NAME_LENGTH, isSnapshotName } from '../snapshot/naming.js';

/** Request and response shapes; they validate, type the handlers and produce the OpenAPI document. */

export const snapshotName = z
  .string()
  .max(MAX_SNAPSHOT_NAME_LENGTH)
  .refine(isSnapshotName, 'invalid snapshot name: letters, digits, ".", "_" and "-", starting with a letter or digit, without ".."');

const confirmFlag = z
  .enum(['true', 'false', '1', '0', 'yes', 'no'])
  .optional()
  .transform((v) => v === 'true' || v === '1' || v === 'yes');

export const errorSchema = z.object({
  error: z.string(),
  message: z.string(),
  hint: z.string().optional(),
  details: z.record(z.string(), z.unknown()).optional(),
});

export const disabledSchema = z.object({ enabled: z.literal(false), message: z.string() });

export const uploadResponse = z.object({
  requested: z.string().nullable(),
  uploaded: z.array(z.string()),
  skipped: z.array(z.string()),
  conflicts: z.array(z.string()),
  failed: z.array(z.string()),
  settling: z.array(z.string()),
});

export const downloadQuery = z.object({
  confirm: confirmFlag,
  name: snapshotName.optional(),
  backup_name: snapshotName.optional(),
});

export const restoreParams = z.object({ name: snapshotName });
export const restoreQuery = z.object({ confirm: confirmFlag });

export const restoreResponse = z.object({
  snapshot: z.string(),
  outcome: z.enum(['restored', 'already-present']),
  files: z.number(),
  bytes: z.number(),
  verification: z.enum(['sha256', 'etag', 'size-only']).optional(),
  durationMs: z.number().optional(),
  applied: z.boolean(),
  message: z.string(),
});

export const snapshotsQuery = z.object({
  limit: z.coerce.number().int().min(1).max(1000).default(100),
  cursor: z.string().max(400).optional(),
});

export const snapshotItem = z.object({
  name: z.string(),
  time: z.string(),
  files: z.number(),
  bytes: z.number(),
  complete: z.boolean(),
  verified: z.boolean(),
  /** Files and manifest encrypted client-side: restoring it needs the key it was uploaded with. */
  encrypted: z.boolean(),
});

export const snapshotsResponse = z.object({
  snapshots: z.array(snapshotItem),
  nextCursor: z.string().nullable(),
  total: z.number(),
  listedAt: z.string().nullable(),
});

export const statusResponse = z.object({ enabled: z.literal(true) }).catchall(z.unknown());

export const healthResponse = z.object({ status: z.literal('ok') });
const readinessCheck = z.enum(['config', 'watcher', 'remote', 'state', 'localFiles']);
export type ReadinessCheck = z.infer<typeof readinessCheck>;

/** `exclude` names checks that still show in the answer but do not decide it (repeatable). */
export const readyQuery = z.object({
  exclude: z
    .union([readinessCheck, z.array(readinessCheck)])
    .optional()
    .transform((v): ReadinessCheck[] => (v === undefined ? [] : Array.isArray(v) ? v : [v])),
});

export const readyResponse = z.object({
  ready: z.boolean(),
  enabled: z.boolean(),
  checks: z.object({ config: z.boolean(), watcher: z.boolean(), remote: z.boolean(), state: z.boolean(), localFiles: z.boolean() }),
  /** Only when the request excluded checks: the plain /readyz answer keeps its documented shape. */
  excluded: z.array(readinessCheck).optional(),
});
