// Formatting helpers for durations and timestamps shown in the dashboard.

export function formatDuration(seconds: number): string {
  if (!Number.isFinite(seconds) || seconds < 0) return "—";
  const s = Math.floor(seconds);
  const d = Math.floor(s / 86400);
  const h = Math.floor((s % 86400) / 3600);
  const m = Math.floor((s % 3600) / 60);
  const sec = s % 60;
  if (d > 0) return `${d}d ${h}h ${m}m`;
  if (h > 0) return `${h}h ${m}m ${sec}s`;
  if (m > 0) return `${m}m ${sec}s`;
  return `${sec}s`;
}

export function formatTimestamp(ms: number): string {
  if (!Number.isFinite(ms) || ms <= 0) return "—";
  return new Date(ms).toLocaleString();
}

export function formatClock(d: Date): string {
  return d.toLocaleTimeString();
}

/** Git SHAs are shown abbreviated; anything else (e.g. "unknown") as is. */
export function shortCommit(commit: string): string {
  return /^[0-9a-f]{13,40}$/i.test(commit) ? commit.slice(0, 12) : commit;
}

/** Compact local date and time for tables: "2026-05-04 13:07" (with seconds: "…:07:42"). */
export function formatShort(ms: number, seconds = false): string {
  if (!Number.isFinite(ms) || ms <= 0) return "—";
  const d = new Date(ms);
  const p = (n: number) => String(n).padStart(2, "0");
  const t = `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())} ${p(d.getHours())}:${p(d.getMinutes())}`;
  return seconds ? `${t}:${p(d.getSeconds())}` : t;
}
