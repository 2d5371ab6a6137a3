/**
 * Which checkpoints a retention policy keeps and which it prunes, in the spirit of Timeshift / Back
 * In Time / borg prune: keep the last N, and the newest checkpoint of each of the last N hours, days,
 * ISO weeks and months (local time); protected (pinned, or not made by this schedule) are never
 * pruned; then a storage quota prunes the oldest remaining ones. Pure: no store, no clock, no I/O;
 * the scheduler applies the plan with store.remove.
 */

import type { RetentionPolicy } from './types';

export interface RetentionItem {
  id: number;
  createdAt: number;
  /** Bytes this checkpoint stored (its share of the quota). */
  bytes: number;
  /** Pinned, or not ours to prune (e.g. a manual checkpoint): always kept, but counts toward the quota. */
  protected: boolean;
  /** Items of one group (target) keep their newest regardless of the quota; default: all one group. */
  group?: string | number;
}

export type KeepReason = 'protected' | 'last' | 'hourly' | 'daily' | 'weekly' | 'monthly' | 'no-rules' | 'newest';

export interface RetentionPlan {
  keep: { id: number; reasons: KeepReason[] }[];
  prune: { id: number; reason: 'policy' | 'quota' }[];
  totalBytes: number;
  keptBytes: number;
  /** The quota is still exceeded after pruning everything the plan may prune. */
  overQuota: boolean;
}

function pad(n: number): string {
  return String(n).padStart(2, '0');
}

/** ISO 8601 week (year-week) of a local date. */
function isoWeek(d: Date): string {
  const t = new Date(d.getFullYear(), d.getMonth(), d.getDate());
  const day = (t.getDay() + 6) % 7; // Monday = 0
  t.setDate(t.getDate() - day + 3); // Thursday of this week decides the year
  const firstThursday = new Date(t.getFullYear(), 0, 4);
  const week = 1 + Math.round(((t.getTime() - firstThursday.getTime()) / 86_400_000 - 3 + ((firstThursday.getDay() + 6) % 7)) / 7);
  return `${t.getFullYear()}-W${pad(week)}`;
}

const bucketOf: Record<'hourly' | 'daily' | 'weekly' | 'monthly', (d: Date) => string> = {
  hourly: (d) => `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}T${pad(d.getHours())}`,
  daily: (d) => `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}`,
  weekly: isoWeek,
  monthly: (d) => `${d.getFullYear()}-${pad(d.getMonth() + 1)}`,
};

export function hasKeepRules(p: RetentionPolicy): boolean {
  return Boolean(p.keepLast || p.hourly || p.daily || p.weekly || p.monthly);
}

function newestFirst(items: readonly RetentionItem[]): RetentionItem[] {
  return [...items].sort((a, b) => b.createdAt - a.createdAt || b.id - a.id);
}

/** The plan for one schedule's checkpoints. */
export function planRetention(items: readonly RetentionItem[], policy: RetentionPolicy): RetentionPlan {
  const sorted = newestFirst(items);
  const reasons = new Map<number, KeepReason[]>();
  const keep = (id: number, r: KeepReason) => {
    const list = reasons.get(id);
    if (list) list.push(r);
    else reasons.set(id, [r]);
  };
  const prunable = sorted.filter((i) => !i.protected);
  for (const i of sorted) if (i.protected) keep(i.id, 'protected');

  if (!hasKeepRules(policy)) {
    for (const i of prunable) keep(i.id, 'no-rules');
  } else {
    // The newest is the parent of the next incremental and the state the user last saw: never pruned by rules.
    if (prunable[0]) keep(prunable[0].id, 'newest');
    prunable.slice(0, policy.keepLast ?? 0).forEach((i) => keep(i.id, 'last'));
    for (const rule of ['hourly', 'daily', 'weekly', 'monthly'] as const) {
      const n = policy[rule] ?? 0;
      const seen = new Set<string>();
      for (const i of prunable) {
        if (seen.size >= n) break;
        const b = bucketOf[rule](new Date(i.createdAt));
        if (seen.has(b)) continue;
        seen.add(b);
        keep(i.id, rule);
      }
    }
  }

  const prune: RetentionPlan['prune'] = prunable.filter((i) => !reasons.has(i.id)).map((i) => ({ id: i.id, reason: 'policy' as const }));
  const totalBytes = sorted.reduce((s, i) => s + i.bytes, 0);
  const quota = applyQuota(sorted.filter((i) => reasons.has(i.id)), policy.quotaBytes);
  for (const id of quota.prune) {
    reasons.delete(id);
    prune.push({ id, reason: 'quota' });
  }
  const kept = sorted.filter((i) => reasons.has(i.id));
  return {
    keep: kept.map((i) => ({ id: i.id, reasons: reasons.get(i.id)! })),
    prune,
    totalBytes,
    keptBytes: kept.reduce((s, i) => s + i.bytes, 0),
    overQuota: quota.overQuota,
  };
}

/**
 * Oldest-first pruning of unprotected items until their bytes fit the quota; the newest item of each
 * group is never taken (a target always keeps its latest checkpoint). Used per target and, over every
 * scheduled target of the store, for the global quota.
 */
export function applyQuota(items: readonly RetentionItem[], quotaBytes: number | undefined): { prune: number[]; overQuota: boolean } {
  if (!quotaBytes || quotaBytes <= 0) return { prune: [], overQuota: false };
  const sorted = newestFirst(items);
  let total = sorted.reduce((s, i) => s + i.bytes, 0);
  if (total <= quotaBytes) return { prune: [], overQuota: false };
  const newestOfGroup = new Set<number>();
  const seenGroups = new Set<string | number>();
  for (const i of sorted) {
    const g = i.group ?? '';
    if (!seenGroups.has(g)) {
      seenGroups.add(g);
      newestOfGroup.add(i.id);
    }
  }
  const prune: number[] = [];
  for (const i of [...sorted].reverse()) {
    if (total <= quotaBytes) break;
    if (i.protected || newestOfGroup.has(i.id)) continue;
    prune.push(i.id);
    total -= i.bytes;
  }
  return { prune, overQuota: total > quotaBytes };
}
