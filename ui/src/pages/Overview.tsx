// Overview page: the server's identity (version, commit, store) and its
// liveness (/healthz) and readiness (/readyz), refreshed on demand.
import { useCallback, useEffect, useRef, useState } from "preact/hooks";
import { fetchHealth, fetchReadiness, fetchServerInfo } from "../api";
import type { Readiness, ServerInfo } from "../api";
import { Badge, Card, ErrorPanel } from "../components/ui";
import { formatClock, formatDuration, formatTimestamp, shortCommit } from "../format";

type Health = "ok" | "down" | "unknown";

interface State {
  loading: boolean;
  info: ServerInfo | null;
  health: Health;
  healthDetail: string;
  readiness: Readiness | null;
  readinessError: string;
  error: unknown;
  checkedAt: Date | null;
  refreshCount: number;
}

const initial: State = {
  loading: true,
  info: null,
  health: "unknown",
  healthDetail: "",
  readiness: null,
  readinessError: "",
  error: null,
  checkedAt: null,
  refreshCount: 0,
};

function reason(r: PromiseRejectedResult): string {
  return r.reason instanceof Error ? r.reason.message : String(r.reason);
}

export function Overview() {
  const [s, setS] = useState<State>(initial);
  const inflight = useRef<AbortController | null>(null);

  const load = useCallback(async () => {
    inflight.current?.abort();
    const ctl = new AbortController();
    inflight.current = ctl;
    setS((p) => ({ ...p, loading: true }));

    const [info, health, ready] = await Promise.allSettled([
      fetchServerInfo(ctl.signal),
      fetchHealth(ctl.signal),
      fetchReadiness(ctl.signal),
    ]);
    if (ctl.signal.aborted) return; // a newer refresh owns the state

    setS((p) => {
      const next: State = { ...p, loading: false, checkedAt: new Date(), refreshCount: p.refreshCount + 1 };
      if (info.status === "fulfilled") {
        next.info = info.value;
        next.error = null;
      } else {
        next.error = info.reason; // keep the last known info visible, marked stale
      }
      if (health.status === "fulfilled" && health.value.status === "ok") {
        next.health = "ok";
        next.healthDetail = "";
      } else {
        next.health = "down";
        next.healthDetail =
          health.status === "rejected" ? reason(health) : `status "${String(health.value.status)}"`;
      }
      if (ready.status === "fulfilled") {
        next.readiness = ready.value;
        next.readinessError = "";
      } else {
        next.readiness = null;
        next.readinessError = reason(ready);
      }
      return next;
    });
  }, []);

  useEffect(() => {
    void load();
    return () => inflight.current?.abort();
  }, [load]);

  const { info, readiness } = s;
  const stale = s.error !== null && info !== null;

  return (
    <div class="page" data-testid="overview-page">
      <div class="page-header">
        <div>
          <h1 class="page-title">Overview</h1>
          <p class="page-subtitle">Server identity, liveness and readiness.</p>
        </div>
        <div class="page-actions">
          <span class="muted" data-testid="last-refreshed" data-refresh-count={s.refreshCount}>
            {s.checkedAt ? `Checked at ${formatClock(s.checkedAt)}` : "Checking…"}
          </span>
          <button
            type="button"
            class="btn"
            data-testid="refresh-button"
            onClick={() => void load()}
            disabled={s.loading}
            aria-busy={s.loading}
          >
            {s.loading ? "Refreshing…" : "Refresh"}
          </button>
        </div>
      </div>

      {s.error !== null && <ErrorPanel error={s.error} stale={stale} onRetry={() => void load()} />}

      <div class="grid">
        <Card title="Health" testid="health-card">
          <div class="stat">
            {s.health === "unknown" ? (
              <Badge tone="neutral" testid="health-badge">
                checking
              </Badge>
            ) : (
              <Badge tone={s.health === "ok" ? "ok" : "bad"} testid="health-badge">
                {s.health}
              </Badge>
            )}
          </div>
          <p class="stat-note">{s.healthDetail || "Liveness probe: GET /healthz"}</p>
        </Card>

        <Card title="Readiness" testid="readiness-card">
          <div class="stat">
            {readiness === null ? (
              <Badge tone={s.readinessError ? "bad" : "neutral"} testid="readiness-badge">
                {s.readinessError ? "unknown" : "checking"}
              </Badge>
            ) : readiness.ready ? (
              <Badge tone="ok" testid="readiness-badge">
                ready
              </Badge>
            ) : (
              <Badge tone="warn" testid="readiness-badge">
                not ready
              </Badge>
            )}
          </div>
          <p class="stat-note" data-testid="readiness-detail">
            {readiness && !readiness.ready ? (
              <>
                <code>{readiness.error_code}</code> {readiness.message}
              </>
            ) : (
              s.readinessError || "Readiness probe: GET /readyz"
            )}
          </p>
        </Card>

        <Card title="Version" testid="version-card">
          <div class={`stat stat-big${stale ? " stale" : ""}`} data-testid="server-version">
            {info ? info.version : "—"}
          </div>
          <p class="stat-note">
            {info ? info.name : "kiln"} · commit{" "}
            <code data-testid="server-commit" title={info?.commit}>
              {info ? shortCommit(info.commit) : "—"}
            </code>
          </p>
        </Card>

        <Card title="Uptime" testid="uptime-card">
          <div
            class={`stat stat-big${stale ? " stale" : ""}`}
            data-testid="server-uptime"
            data-uptime-s={info ? String(info.uptime_s) : ""}
            title={info ? `${info.uptime_s} s` : undefined}
          >
            {info ? formatDuration(info.uptime_s) : "—"}
          </div>
          <p class="stat-note" data-testid="started-at">
            {info ? `Started ${formatTimestamp(info.started_at_ms)}` : "Start time unknown"}
          </p>
        </Card>

        <Card title="Metadata store" testid="store-card">
          <div class={`stat stat-big${stale ? " stale" : ""}`} data-testid="store-driver">
            {info ? info.store.driver : "—"}
          </div>
          <p class="stat-note">
            Migrations applied: <span data-testid="store-migrations">{info ? info.store.migrations : "—"}</span>
          </p>
        </Card>
      </div>
    </div>
  );
}
