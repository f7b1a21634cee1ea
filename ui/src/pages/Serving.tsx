// Serving page: the models the server has loaded for the current project,
// polled every 2 s — backend, state (with the reason when it failed or is
// degraded), memory, queue depth, requests per second (the difference
// between two polls) and when each was last used. Editors unload a model.
import { useCallback, useEffect, useRef, useState } from "preact/hooks";
import { NoProject } from "../components/NoProject";
import type { Tone } from "../components/ui";
import { Badge, ErrorPanel, InlineError } from "../components/ui";
import { useProject } from "../project";
import { linkClick } from "../router";
import type { LoadedModel, ModelState } from "../serving";
import { servingModels, unloadModel } from "../serving";

export const POLL_MS = 2000;

const TONE: Record<ModelState, Tone> = {
  READY: "ok",
  LOADING: "neutral",
  UNLOADING: "neutral",
  DEGRADED: "warn",
  FAILED: "bad",
};

function key(m: LoadedModel): string {
  return `${m.name}\u0000${m.version}`;
}

export function formatBytes(n: number | undefined): string {
  if (n === undefined || !Number.isFinite(n) || n <= 0) return "—";
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let v = n;
  let u = 0;
  while (v >= 1024 && u < units.length - 1) {
    v /= 1024;
    u++;
  }
  return u === 0 ? `${v} B` : `${v.toFixed(1)} ${units[u]}`;
}

/** "3 s ago", "5 min ago", ...; timestamps are epoch milliseconds. */
export function ago(ms: number | undefined, now: number): string {
  if (!ms || !Number.isFinite(ms) || ms <= 0) return "never";
  const s = Math.max(0, Math.round((now - ms) / 1000));
  if (s < 60) return `${s} s ago`;
  if (s < 3600) return `${Math.floor(s / 60)} min ago`;
  if (s < 86400) return `${Math.floor(s / 3600)} h ago`;
  return `${Math.floor(s / 86400)} d ago`;
}

interface Sample {
  requests: number;
  at: number;
}

export function Serving() {
  const pv = useProject();
  const pid = pv.currentId;
  const canWrite = pv.role === "editor" || pv.role === "admin";
  const [models, setModels] = useState<LoadedModel[] | null>(null);
  const [rates, setRates] = useState<Record<string, number>>({});
  const [loadError, setLoadError] = useState<unknown>(null);
  const [actionError, setActionError] = useState<unknown>(null);
  const [busy, setBusy] = useState<string | null>(null);
  const [now, setNow] = useState(Date.now());
  const last = useRef<Map<string, Sample>>(new Map());

  const poll = useCallback(
    async (signal?: AbortSignal) => {
      if (!pid) return;
      try {
        const got = await servingModels(pid, signal);
        const at = performance.now();
        const next = new Map<string, Sample>();
        const r: Record<string, number> = {};
        for (const m of got) {
          const k = key(m);
          const requests = m.requests ?? 0;
          const prev = last.current.get(k);
          /* a rate needs two polls; a reload (fewer requests than before) starts over */
          if (prev && at > prev.at && requests >= prev.requests) r[k] = ((requests - prev.requests) * 1000) / (at - prev.at);
          next.set(k, { requests, at });
        }
        last.current = next;
        setModels(got);
        setRates(r);
        setNow(Date.now());
        setLoadError(null);
      } catch (e) {
        if (!(e instanceof DOMException && e.name === "AbortError")) setLoadError(e);
      }
    },
    [pid],
  );

  useEffect(() => {
    setModels(null);
    last.current = new Map();
    const ac = new AbortController();
    void poll(ac.signal);
    const t = window.setInterval(() => void poll(ac.signal), POLL_MS);
    return () => {
      ac.abort();
      window.clearInterval(t);
    };
  }, [poll]);

  if (!pid) {
    return (
      <div class="page" data-testid="serving-page">
        <h1 class="page-title">Serving</h1>
        <NoProject pv={pv} hint="Models are served per project: join one to see its loaded models." />
      </div>
    );
  }

  const unload = async (m: LoadedModel) => {
    setActionError(null);
    setBusy(key(m));
    try {
      await unloadModel(pid, m.name, m.version);
      await poll();
    } catch (e) {
      setActionError(e);
    } finally {
      setBusy(null);
    }
  };

  return (
    <div class="page" data-testid="serving-page">
      <div class="page-header">
        <div>
          <h1 class="page-title">Serving</h1>
          <p class="page-subtitle">
            Models loaded for {pv.current ? `project “${pv.current.name}”` : "this project"}, refreshed every{" "}
            {POLL_MS / 1000} s. A model loads on
            its first prediction (or <code>kiln serving load</code>); idle ones are evicted when memory runs short.
          </p>
        </div>
      </div>
      {loadError !== null && <ErrorPanel error={loadError} onRetry={() => void poll()} stale={models !== null} />}
      <InlineError error={actionError} testid="serving-action-error" />
      <div class="table-wrap">
        <table class="table" data-testid="serving-table">
          <thead>
            <tr>
              <th>Model</th>
              <th>Backend</th>
              <th>State</th>
              <th class="num">Memory</th>
              <th class="num">Queue</th>
              <th class="num">Requests/s</th>
              <th class="num">Requests</th>
              <th>Last used</th>
              {canWrite && <th class="actions-col" aria-label="Actions" />}
            </tr>
          </thead>
          <tbody>
            {models?.map((m) => {
              const k = key(m);
              const href = `/models/${encodeURIComponent(m.name)}?version=${encodeURIComponent(m.version)}`;
              const rate = rates[k];
              return (
                <tr key={k} data-testid="serving-row" data-name={m.name} data-version={m.version} data-state={m.state}>
                  <td class="strong">
                    <a href={href} onClick={(e) => linkClick(e, href)} data-testid="serving-model-link">
                      {m.name}
                    </a>{" "}
                    <span class="muted">v{m.version}</span>
                  </td>
                  <td>
                    {m.backend ?? "—"}
                    {m.format && <span class="muted small"> · {m.format}</span>}
                  </td>
                  <td>
                    <Badge tone={TONE[m.state] ?? "neutral"} testid="serving-state">
                      {m.state}
                    </Badge>
                    {m.reason && (
                      <p class="small serving-reason" data-testid="serving-reason">
                        {m.reason}
                      </p>
                    )}
                  </td>
                  <td class="num" data-testid="serving-memory">
                    {formatBytes(m.memory_bytes)}
                  </td>
                  <td class="num" data-testid="serving-queue">
                    {m.queue_depth ?? 0}
                  </td>
                  <td class="num" data-testid="serving-rate">
                    {rate === undefined ? "—" : rate < 10 ? rate.toFixed(1) : Math.round(rate)}
                  </td>
                  <td class="num" data-testid="serving-requests">
                    {m.requests ?? 0}
                    {(m.errors ?? 0) > 0 && <span class="muted small"> ({m.errors} failed)</span>}
                  </td>
                  <td class="nowrap" data-testid="serving-last-used">
                    {ago(m.last_used_at, now)}
                  </td>
                  {canWrite && (
                    <td class="actions-col">
                      <button
                        type="button"
                        class="btn btn-small btn-ghost"
                        disabled={busy === k || m.state === "UNLOADING"}
                        onClick={() => void unload(m)}
                        data-testid="serving-unload"
                      >
                        Unload
                      </button>
                    </td>
                  )}
                </tr>
              );
            })}
          </tbody>
        </table>
        {models !== null && models.length === 0 && (
          <p class="empty" data-testid="serving-empty">
            No models are loaded. Send one a prediction ("Try it" on a model's page) to load it.
          </p>
        )}
        {models === null && loadError === null && <p class="empty">Loading…</p>}
      </div>
    </div>
  );
}
