// One run (/runs/{id}): its info, params, tags and latest metrics, a chart
// per metric (uPlot; step or time on x, EMA smoothing), live updates while
// the run is RUNNING (the server's event stream when it has one, else
// polling), and the artifact browser.
import { useEffect, useMemo, useState } from "preact/hooks";
import { ArtifactBrowser } from "../components/Artifacts";
import { ChartControls, MetricChart } from "../components/MetricChart";
import type { XMode } from "../components/MetricChart";
import { Badge, ErrorPanel } from "../components/ui";
import { formatDuration, formatShort } from "../format";
import { reloadProjects, useProject } from "../project";
import { linkClick, usePath } from "../router";
import type { KV, Point, Run as RunT, Series } from "../track";
import { durationMs, fetchSeries, followRun, getExperiment, getRun, runName, statusTone } from "../track";
import { formatValue } from "./Runs";

export const POLL_MS = 3000;
export const CHART_POINTS = 1000;
const CHART_KEY = "kiln.charts";

/** The chart settings (x axis, smoothing), shared by every chart and remembered. */
export function useChartSettings() {
  const saved = (() => {
    try {
      return JSON.parse(localStorage.getItem(CHART_KEY) ?? "{}") as { xMode?: XMode; smoothing?: number };
    } catch {
      return {};
    }
  })();
  const [xMode, setXMode] = useState<XMode>(saved.xMode === "time" ? "time" : "step");
  const [smoothing, setSmoothing] = useState(typeof saved.smoothing === "number" ? saved.smoothing : 0);
  useEffect(() => {
    try {
      localStorage.setItem(CHART_KEY, JSON.stringify({ xMode, smoothing }));
    } catch {
      // not remembered
    }
  }, [xMode, smoothing]);
  return { xMode, setXMode, smoothing, setSmoothing };
}

function KVTable(props: { rows: KV[]; testid: string; empty: string }) {
  if (props.rows.length === 0) return <p class="muted">{props.empty}</p>;
  return (
    <div class="table-wrap">
      <table class="table kv-table" data-testid={props.testid}>
        <tbody>
          {props.rows.map((r) => (
            <tr key={r.key} data-testid={`${props.testid}-row`} data-key={r.key}>
              <th scope="row">{r.key}</th>
              <td class="kv-value">{r.value}</td>
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}

/** Merges new points into a series (same step and timestamp: replaced), kept in step order. */
function merge(points: Point[], add: Point[]): Point[] {
  const seen = new Map(points.map((p, i) => [`${p.step}:${p.timestamp}`, i]));
  const out = points.slice();
  for (const p of add) {
    const i = seen.get(`${p.step}:${p.timestamp}`);
    if (i === undefined) out.push(p);
    else out[i] = p;
  }
  out.sort((a, b) => a.step - b.step || a.timestamp - b.timestamp);
  return out;
}

export function Run() {
  const path = usePath();
  const runId = decodeURIComponent(path.replace(/^\/runs\/+/, "").replace(/\/+$/, ""));
  const pv = useProject();
  const pid = pv.currentId;
  const [run, setRun] = useState<RunT | null>(null);
  const [error, setError] = useState<unknown>(null);
  const [series, setSeries] = useState<Record<string, Series>>({});
  const [seriesError, setSeriesError] = useState<unknown>(null);
  const [live, setLive] = useState<"off" | "events" | "polling">("off");
  const charts = useChartSettings();
  const [tick, setTick] = useState(0);
  const [expName, setExpName] = useState<string | null>(null);

  const status = run?.info.status;
  const running = status === "RUNNING";
  const keys = useMemo(() => [...new Set((run?.data.metrics ?? []).map((m) => m.key))].sort(), [run]);
  const keysSig = keys.join("\u0000");

  // The run itself.
  useEffect(() => {
    if (!pid) return;
    const ac = new AbortController();
    setRun(null);
    setSeries({});
    getRun(pid, runId, ac.signal)
      .then((r) => {
        setRun(r);
        setError(null);
      })
      .catch((e) => !ac.signal.aborted && setError(e));
    return () => ac.abort();
  }, [pid, runId]);

  // The experiment's name for the breadcrumb (its id until then).
  const expId = run?.info.experiment_id;
  useEffect(() => {
    setExpName(null);
    if (!pid || !expId) return;
    const ac = new AbortController();
    getExperiment(pid, expId, ac.signal)
      .then((e) => setExpName(e.name))
      .catch(() => {});
    return () => ac.abort();
  }, [pid, expId]);

  // Every metric's chart series, again on each poll tick.
  useEffect(() => {
    if (!pid || keys.length === 0) return;
    const ac = new AbortController();
    Promise.all(keys.map((k) => fetchSeries(pid, runId, k, CHART_POINTS, ac.signal).then((s) => [k, s] as const)))
      .then((pairs) => {
        if (ac.signal.aborted) return;
        setSeries(Object.fromEntries(pairs));
        setSeriesError(null);
      })
      .catch((e) => !ac.signal.aborted && setSeriesError(e));
    return () => ac.abort();
  }, [pid, runId, keysSig, tick]);

  // Live updates while the run is running: events when the server has them, else polling.
  useEffect(() => {
    if (!pid || !running) {
      setLive("off");
      return;
    }
    const ac = new AbortController();
    let timer: number | undefined;
    const poll = () => {
      timer = window.setTimeout(async () => {
        try {
          const r = await getRun(pid, runId, ac.signal);
          if (ac.signal.aborted) return;
          setRun(r);
          setTick((t) => t + 1);
        } catch {
          // a missed poll is retried on the next one
        }
        if (!ac.signal.aborted) poll();
      }, POLL_MS);
    };
    void (async () => {
      setLive("events");
      await followRun(
        pid,
        runId,
        {
          onPoint: (key, p) =>
            setSeries((s) => {
              const old = s[key];
              if (!old) {
                // a new key: runs/get brings it into the key list, and its series
                setTick((t) => t + 1);
                return s;
              }
              return { ...s, [key]: { ...old, points: merge(old.points, [p]) } };
            }),
          onOverflow: () => setTick((t) => t + 1),
          onStatus: (st) => {
            setRun((r) => (r && r.info.status !== st ? { ...r, info: { ...r.info, status: st } } : r));
            if (st !== "RUNNING") void getRun(pid, runId).then(setRun).catch(() => {});
          },
        },
        ac.signal,
      );
      if (ac.signal.aborted) return;
      // No event stream on this server, or it ended (server restart): poll.
      setLive("polling");
      poll();
    })();
    return () => {
      ac.abort();
      if (timer !== undefined) clearTimeout(timer);
    };
  }, [pid, runId, running]);

  if (!pid) {
    return (
      <div class="page page-wide" data-testid="run-page">
        {pv.error !== null ? <ErrorPanel error={pv.error} onRetry={() => void reloadProjects()} /> : <p class="muted">Loading…</p>}
      </div>
    );
  }
  if (error) {
    return (
      <div class="page" data-testid="run-page">
        <ErrorPanel error={error} />
      </div>
    );
  }
  if (!run) {
    return (
      <div class="page" data-testid="run-page">
        <p class="muted">Loading…</p>
      </div>
    );
  }

  const info = run.info;
  const expHref = `/experiments/${encodeURIComponent(info.experiment_id)}`;
  const d = durationMs(info);
  const tags = run.data.tags ?? [];
  const userTags = tags.filter((t) => !t.key.startsWith("mlflow."));
  const systemTags = tags.filter((t) => t.key.startsWith("mlflow."));
  const parent = tags.find((t) => t.key === "mlflow.parentRunId")?.value;
  const latest = [...(run.data.metrics ?? [])].sort((a, b) => a.key.localeCompare(b.key));
  const params = [...(run.data.params ?? [])].sort((a, b) => a.key.localeCompare(b.key));

  return (
    <div class="page page-wide" data-testid="run-page" data-run-id={info.run_id} data-status={info.status} data-live={live}>
      <div class="page-header">
        <div>
          <p class="crumbs">
            <a href="/experiments" onClick={(e) => linkClick(e, "/experiments")}>
              Experiments
            </a>{" "}
            /{" "}
            <a href={expHref} onClick={(e) => linkClick(e, expHref)} data-testid="run-experiment-link">
              {expName ?? info.experiment_id}
            </a>{" "}
            /
          </p>
          <h1 class="page-title" data-testid="run-name">
            {runName(info)}
          </h1>
          <p class="page-subtitle">
            <code data-testid="run-id">{info.run_id}</code>
          </p>
        </div>
        <div class="page-actions">
          {live !== "off" && (
            <span class="live" data-testid="run-live" title={live === "events" ? "Following the run's event stream" : `Refreshing every ${POLL_MS / 1000} s`}>
              live
            </span>
          )}
          <Badge tone={statusTone(info.status)} testid="run-status">
            {info.status ?? "—"}
          </Badge>
        </div>
      </div>

      <div class="grid run-facts">
        <div class="card">
          <h2 class="card-title">Started</h2>
          <div class="stat">{formatShort(info.start_time ?? 0, true)}</div>
        </div>
        <div class="card">
          <h2 class="card-title">Duration</h2>
          <div class="stat" data-testid="run-duration">
            {d === null ? "—" : formatDuration(d / 1000)}
          </div>
        </div>
        <div class="card">
          <h2 class="card-title">User</h2>
          <div class="stat">{info.user_id ?? "—"}</div>
        </div>
        <div class="card">
          <h2 class="card-title">Lifecycle</h2>
          <div class="stat">
            {info.lifecycle_stage ?? "active"}
            {parent && (
              <>
                {" · parent "}
                <a href={`/runs/${parent}`} onClick={(e) => linkClick(e, `/runs/${parent}`)}>
                  {parent.slice(0, 8)}
                </a>
              </>
            )}
          </div>
        </div>
      </div>

      <section class="section" aria-labelledby="metrics-title">
        <div class="section-head">
          <h2 class="section-title" id="metrics-title">
            Metrics
          </h2>
          {keys.length > 0 && (
            <ChartControls xMode={charts.xMode} smoothing={charts.smoothing} onXMode={charts.setXMode} onSmoothing={charts.setSmoothing} />
          )}
        </div>
        {seriesError !== null && <ErrorPanel error={seriesError} onRetry={() => setTick((t) => t + 1)} />}
        {keys.length === 0 ? (
          <p class="muted" data-testid="run-no-metrics">
            No metrics logged.
          </p>
        ) : (
          <div class="charts" data-testid="run-charts">
            {keys.map((k) =>
              series[k] ? (
                <MetricChart
                  key={k}
                  title={k}
                  series={[{ label: k, points: series[k]!.points }]}
                  xMode={charts.xMode}
                  smoothing={charts.smoothing}
                  sampled={series[k]!.sampled}
                  source={series[k]!.source}
                />
              ) : (
                <figure key={k} class="chart chart-loading">
                  <figcaption class="chart-title">{k}</figcaption>
                  <p class="muted">Loading…</p>
                </figure>
              ),
            )}
          </div>
        )}
        {latest.length > 0 && (
          <div class="table-wrap latest">
            <table class="table" data-testid="run-metrics">
              <thead>
                <tr>
                  <th>Metric</th>
                  <th>Latest</th>
                  <th>Step</th>
                  <th>Logged</th>
                </tr>
              </thead>
              <tbody>
                {latest.map((m) => (
                  <tr key={m.key} data-testid="run-metrics-row" data-key={m.key}>
                    <td class="strong">{m.key}</td>
                    <td class="num">{formatValue(m.value)}</td>
                    <td class="num">{m.step}</td>
                    <td class="nowrap">{formatShort(m.timestamp, true)}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
        )}
      </section>

      <div class="two-col">
        <section class="section" aria-labelledby="params-title">
          <h2 class="section-title" id="params-title">
            Params
          </h2>
          <KVTable rows={params} testid="run-params" empty="No params logged." />
        </section>
        <section class="section" aria-labelledby="tags-title">
          <h2 class="section-title" id="tags-title">
            Tags
          </h2>
          <KVTable rows={userTags} testid="run-tags" empty="No tags." />
          {systemTags.length > 0 && (
            <details class="system-tags">
              <summary class="muted">{systemTags.length} system tags</summary>
              <KVTable rows={systemTags} testid="run-system-tags" empty="" />
            </details>
          )}
        </section>
      </div>

      <section class="section" aria-labelledby="artifacts-title">
        <h2 class="section-title" id="artifacts-title">
          Artifacts
        </h2>
        <ArtifactBrowser projectId={pid} run={info} />
      </section>
    </div>
  );
}
