import { randomUUID } from 'node:crypto';
import { z } from 'zod';

/** What memsync remembers across restarts, for the status endpoint and for recognising its own uploads. */

const uploadRecord = z.object({
  snapshot: z.string(),
  atMs: z.number(),
  bytes: z.number(),
  bytesSent: z.number(),
  /** Whole files created by server-side copy. */
  bytesCopied: z.number().default(0),
  /** Bytes of files composed server-side from ranges of their previous version. */
  bytesDelta: z.number().default(0),
  durationMs: z.number(),
});
const errorRecord = z.object({ atMs: z.number(), message: z.string(), kind: z.string(), snapshot: z.string().optional() });
const fileDifference = z.object({
  path: z.string(),
  local: z.object({ size: z.number(), sha256: z.string() }).optional(),
  remote: z.object({ size: z.number(), sha256: z.string() }).optional(),
});
const conflictRecord = z.object({
  snapshot: z.string(),
  detectedAtMs: z.number(),
  operation: z.enum(['upload', 'restore']),
  localDigest: z.string(),
  remoteDigest: z.string(),
  files: z.array(fileDifference),
});

const counters = z.object({
  snapshotsUploaded: z.number().default(0),
  snapshotsAlreadyRemote: z.number().default(0),
  filesUploaded: z.number().default(0),
  filesAlreadyRemote: z.number().default(0),
  bytesUploaded: z.number().default(0),
  bytesCopied: z.number().default(0),
  bytesDelta: z.number().default(0),
  uploadFailures: z.number().default(0),
  conflicts: z.number().default(0),
  prunedBeforeUpload: z.number().default(0),
  restores: z.number().default(0),
  sweeps: z.number().default(0),
});

export const agentStateSchema = z.object({
  version: z.literal(1),
  /** Marks objects this agent wrote, so it may finish its own interrupted uploads but never touch another's. */
  agentId: z.string(),
  lastSuccess: uploadRecord.optional(),
  lastError: errorRecord.optional(),
  lastSweep: z.object({ atMs: z.number(), durationMs: z.number(), queued: z.number() }).optional(),
  conflicts: z.record(z.string(), conflictRecord),
  counters,
});

export type AgentState = z.infer<typeof agentStateSchema>;
export type UploadRecord = z.infer<typeof uploadRecord>;
export type ErrorRecord = z.infer<typeof errorRecord>;
export type ConflictRecord = z.infer<typeof conflictRecord>;
export type Counters = z.infer<typeof counters>;

export function freshAgentState(): AgentState {
  return { version: 1, agentId: randomUUID(), conflicts: {}, counters: counters.parse({}) };
}
