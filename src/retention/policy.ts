import { compareNewestFirst } from '../snapshot/naming.js';

/**
 * Which remote snapshots a retention policy keeps. Pure: a function of the snapshots, the
 * policy and the protected names; the deleting happens in apply.ts.
 *
 * Semantics follow restic's `forget --keep-*`: `last=N` keeps the N newest snapshots; each
 * calendar rule keeps the newest snapshot of each of its N most recent buckets that hold a
 * snapshot (empty hours/days/weeks do not use up the count). A snapshot kept by any rule or
 * protected is kept. Buckets are computed in UTC because snapshot names carry UTC times;
 * weeks are ISO 8601 weeks (Monday first, week 1 holds the year's first Thursday).
 */

export const RULES = ['last', 'hourly', 'daily', 'weekly', 'monthly', 'yearly'] as const;
export type Rule = (typeof RULES)[number];

export type RetentionPolicy = Readonly<Partial<Record<Rule, number>>>;

export interface RetentionCandidate {
  name: string;
  timeMs: number;
  /** Only snapshots with memsync's manifest take part in the keep rules; the others are never deleted. */
  complete: boolean;
}

export type ProtectionReason = 'newest' | 'incomplete' | 'conflict' | 'restoring' | 'local';

export interface KeptSnapshot {
  name: string;
  /** e.g. ["last", "daily 2025-01-03"] or ["protected: conflict"]. */
  reasons: string[];
}

export interface DeletedSnapshot {
  name: string;
  timeMs: number;
  /** Why no rule kept it, one clause per rule, for the log line. */
  reason: string;
}

export interface RetentionDecision {
  keep: KeptSnapshot[];
  delete: DeletedSnapshot[];
}

/** A parse result: the policy, or one sentence saying what is wrong. */
export type ParsedPolicy = { ok: true; policy: RetentionPolicy } | { ok: false; problem: string };

const MAX_COUNT = 100_000;

/** Parses `last=10,hourly=24,daily=7,weekly=4,monthly=12` (any subset, any order, spaces allowed). */
export function parseRetentionPolicy(text: string): ParsedPolicy {
  const policy: Partial<Record<Rule, number>> = {};
  const parts = text.split(',').map((part) => part.trim());
  for (const part of parts) {
    const match = /^([a-z]+)\s*=\s*(\d+)$/i.exec(part);
    if (match === null) return { ok: false, problem: `"${part}" is not rule=count` };
    const rule = (match[1] ?? '').toLowerCase();
    if (!isRule(rule)) return { ok: false, problem: `unknown rule "${rule}" (known: ${RULES.join(', ')})` };
    if (policy[rule] !== undefined) return { ok: false, problem: `rule "${rule}" is given twice` };
    const count = Number(match[2]);
    if (count > MAX_COUNT) return { ok: false, problem: `${rule}=${count} is above ${MAX_COUNT}` };
    policy[rule] = count;
  }
  // A policy that keeps nothing would delete every snapshot but the protected ones: surely a typo.
  if (!RULES.some((rule) => (policy[rule] ?? 0) > 0)) return { ok: false, problem: 'it keeps nothing: at least one count must be above 0' };
  return { ok: true, policy };
}

/** The canonical text of a policy (rules in a fixed order), as shown in status and logs. */
export function formatPolicy(policy: RetentionPolicy): string {
  return RULES.filter((rule) => policy[rule] !== undefined)
    .map((rule) => `${rule}=${policy[rule] ?? 0}`)
    .join(',');
}

function isRule(name: string): name is Rule {
  return (RULES as readonly string[]).includes(name);
}

const pad = (n: number, width = 2): string => String(n).padStart(width, '0');

/** The ISO 8601 week-numbering year and week of a UTC time. */
export function isoWeek(timeMs: number): { year: number; week: number } {
  const date = new Date(timeMs);
  const midnight = Date.UTC(date.getUTCFullYear(), date.getUTCMonth(), date.getUTCDate());
  const mondayBased = (date.getUTCDay() + 6) % 7;
  // The week belongs to the year of its Thursday.
  const thursday = new Date(midnight + (3 - mondayBased) * 86_400_000);
  const year = thursday.getUTCFullYear();
  const dayOfYear = Math.round((thursday.getTime() - Date.UTC(year, 0, 1)) / 86_400_000);
  return { year, week: Math.floor(dayOfYear / 7) + 1 };
}

/** The bucket a snapshot falls into for a calendar rule, as a readable UTC label. */
export function bucketOf(rule: Exclude<Rule, 'last'>, timeMs: number): string {
  const d = new Date(timeMs);
  const day = `${d.getUTCFullYear()}-${pad(d.getUTCMonth() + 1)}-${pad(d.getUTCDate())}`;
  switch (rule) {
    case 'hourly':
      return `${day}T${pad(d.getUTCHours())}`;
    case 'daily':
      return day;
    case 'weekly': {
      const { year, week } = isoWeek(timeMs);
      return `${year}-W${pad(week)}`;
    }
    case 'monthly':
      return `${d.getUTCFullYear()}-${pad(d.getUTCMonth() + 1)}`;
    case 'yearly':
      return String(d.getUTCFullYear());
  }
}

interface RuleCursor {
  rule: Rule;
  remaining: number;
  lastBucket: string | undefined;
  lastKept: string | undefined;
}

/**
 * Decides what the policy keeps and deletes. `protectedNames` maps names that must stay
 * whatever the rules say (conflicts, restores in progress, snapshots present locally) to
 * why. Protection never uses up a rule's count: the rules see every complete snapshot.
 */
export function decideRetention(
  snapshots: readonly RetentionCandidate[],
  policy: RetentionPolicy,
  protectedNames: ReadonlyMap<string, ProtectionReason> = new Map(),
): RetentionDecision {
  const complete = snapshots.filter((s) => s.complete).sort(compareNewestFirst);
  const cursors: RuleCursor[] = RULES.filter((rule) => (policy[rule] ?? 0) > 0).map((rule) => ({
    rule,
    remaining: policy[rule] ?? 0,
    lastBucket: undefined,
    lastKept: undefined,
  }));
  const keep: KeptSnapshot[] = [];
  const deleted: DeletedSnapshot[] = [];

  complete.forEach((snapshot, index) => {
    const reasons: string[] = [];
    const misses: string[] = [];
    for (const cursor of cursors) {
      const label = cursor.rule === 'last' ? undefined : bucketOf(cursor.rule, snapshot.timeMs);
      if (label !== undefined && label === cursor.lastBucket) {
        misses.push(`${cursor.rule}: ${label} kept by ${cursor.lastKept ?? '?'}`);
      } else if (cursor.remaining === 0) {
        misses.push(`${cursor.rule}: beyond ${policy[cursor.rule] ?? 0}`);
      } else {
        reasons.push(label === undefined ? 'last' : `${cursor.rule} ${label}`);
        cursor.remaining -= 1;
        cursor.lastBucket = label;
        cursor.lastKept = snapshot.name;
      }
    }
    // Every rule with a count keeps the newest; said explicitly so no policy can drop it.
    if (index === 0) reasons.push('protected: newest');
    const protection = protectedNames.get(snapshot.name);
    if (protection !== undefined) reasons.push(`protected: ${protection}`);
    if (reasons.length > 0) keep.push({ name: snapshot.name, reasons });
    else deleted.push({ name: snapshot.name, timeMs: snapshot.timeMs, reason: misses.join('; ') });
  });

  for (const snapshot of snapshots) {
    if (!snapshot.complete) keep.push({ name: snapshot.name, reasons: ['protected: incomplete'] });
  }
  return { keep, delete: deleted };
}
