import { MIN_BILLED_DAYS, type StorageClassName } from './remote/s3-storage-settings.js';
import { decideRetention, formatPolicy, type RetentionPolicy } from './retention/policy.js';

/**
 * Whether a retention policy deletes snapshots younger than the storage class bills for: such a
 * snapshot costs its whole minimum duration anyway. How young a deleted snapshot can be depends on
 * how often backups come, which memsync does not decide, so the policy is played out on hourly
 * and on daily backups with the same rules retention applies. Pure.
 */

const HOUR_MS = 3_600_000;
const DAY_MS = 24 * HOUR_MS;

export const ASSUMED_BACKUP_INTERVALS: readonly { label: string; intervalMs: number }[] = [
  { label: 'hourly', intervalMs: HOUR_MS },
  { label: 'daily', intervalMs: DAY_MS },
];

/** The age of the youngest snapshot the policy deletes when backups come every `intervalMs`, within `horizonMs`; undefined: none that young. */
export function youngestDeletedAgeMs(policy: RetentionPolicy, intervalMs: number, horizonMs: number, nowMs: number): number | undefined {
  const count = Math.floor(horizonMs / intervalMs);
  const snapshots = Array.from({ length: count }, (_, index) => ({ name: `s${String(index).padStart(8, '0')}`, timeMs: nowMs - index * intervalMs, complete: true }));
  const ages = decideRetention(snapshots, policy).delete.map((snapshot) => nowMs - snapshot.timeMs);
  return ages.length === 0 ? undefined : Math.min(...ages);
}

/** The warning to log at start, or undefined when the policy keeps every snapshot for the class's minimum. */
export function storageClassRetentionWarning(storageClass: StorageClassName | undefined, policy: RetentionPolicy | undefined, nowMs: number): string | undefined {
  if (storageClass === undefined || policy === undefined) return undefined;
  const minDays = MIN_BILLED_DAYS[storageClass];
  if (minDays === undefined) return undefined;
  const findings = ASSUMED_BACKUP_INTERVALS.flatMap(({ label, intervalMs }) => {
    const ageMs = youngestDeletedAgeMs(policy, intervalMs, minDays * DAY_MS, nowMs);
    return ageMs === undefined ? [] : [`with ${label} backups it deletes snapshots ${formatAge(ageMs)} old`];
  });
  if (findings.length === 0) return undefined;
  return `CLOUD_SYNC_STORAGE_CLASS=${storageClass} bills every object for at least ${minDays} days, but CLOUD_SYNC_RETENTION=${formatPolicy(policy)} deletes younger snapshots (${findings.join('; ')}): each pays its ${minDays} days anyway`;
}

function formatAge(ageMs: number): string {
  if (ageMs < DAY_MS) return `${Math.round(ageMs / HOUR_MS)} h`;
  const days = ageMs / DAY_MS;
  return `${Number(days.toFixed(1))} days`;
}
