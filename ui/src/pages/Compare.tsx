// Compare runs (/compare?runs=a,b,...): one overlaid chart per metric key,
// the params side by side with the rows that differ highlighted, latest
// metrics, and a parallel-coordinates plot of params and metrics. An optional
// labels=x,y,... (aligned with runs) names the columns, e.g. the model
// versions whose source runs these are.
import { useEffect, useMemo, useState } from "preact/hooks";
import { ChartControls, MetricChart, colorAt } from "../components/MetricChart";
import { ParallelCoords } from "../components/ParallelCoords";
import type { PCDim } from "../components/ParallelCoords";
import { Badge, ErrorPanel } from "../components/ui";
import { reloadProjects, useProject } from "../project";
import { linkClick, usePath } from "../router";
import type { Run, Series } from "../track";
import { fetchSeries, getRun, numeric, runName, statusTone } from "../track";
import { CHART_POINTS, useChartSettings } from "./Run";
import { formatValue } from "./Runs";

export function compareIds(search: string): string[] {
  const raw = new URLSearchParams(search).get("runs") ?? "";
  return [...new Set(raw.split(",").map((s) => s.trim()).filter(Boolean))];
}

/** run id -> its column label from labels=..., when given. */
export function compareLabels(search: string): Map<string, string> {
  const q = new URLSearchParams(search);
  const ids = (q.get("runs") ?? "").split(",").map((s) => s.trim());
  const labels = (q.get("labels") ?? "").split(",").map((s) => s.trim());
  const out = new Map<string, string>();
  ids.forEach((id, i) => {
    if (id && labels[i] && !out.has(id)) out.set(id, labels[i]!);
  });
  return out;
}

export function Compare() {
  usePath();
  const ids = compareIds(window.location.search);
  const labels = compareLabels(window.location.search);
  const label = (r: Run) => {
    const l = labels.get(r.info.run_id);
    const name = runName(r.info);
    return l ? l + " · " + name : name;
  };
  const idsSig = ids.join(",");
  const pv = useProject();
  const pid = pv.currentId;
  const charts = useChartSettings();
  const [runs, setRuns] = useState<Run[] | null>(null);
  const [error, setError] = useState<unknown>(null);
  const [series, setSeries] = useState<Record<string, Record<string, Series>>>({});
  const [onlyDiff, setOnlyDiff] = useState(false);

  useEffect(() => {
    if (!pid || ids.length === 0) return;
    const ac = new AbortController();
    setRuns(null);
    Promise.all(ids.map((id) => getRun(pid, id, ac.signal)))
      .then((r) => {
        setRuns(r);
        setError(null);
      })
      .catch((e) => !ac.signal.aborted && setError(e));
    return () => ac.abort();
  }, [pid, idsSig]);

  const metricKeys = useMemo(
    () => [...new Set((runs ?? []).flatMap((r) => (r.data.metrics ?? []).map((m) => m.key)))].sort(),
    [runs],
  );
  const paramKeys = useMemo(
    () => [...new Set((runs ?? []).flatMap((r) => (r.data.params ?? []).map((m) => m.key)))].sort(),
    [runs],
  );

  useEffect(() => {
    if (!pid || !runs) return;
    const ac = new AbortController();
    setSeries({});
    for (const key of metricKeys) {
      const have = runs.filter((r) => (r.data.metrics ?? []).some((m) => m.key === key));
      Promise.all(have.map((r) => fetchSeries(pid, r.info.run_id, key, CHART_POINTS, ac.signal).then((s) => [r.info.run_id, s] as const)))
        .then((pairs) => !ac.signal.aborted && setSeries((old) => ({ ...old, [key]: Object.fromEntries(pairs) })))
        .catch((e) => !ac.signal.aborted && setError(e));
    }
    return () => ac.abort();
  }, [pid, runs, metricKeys]);

  const header = (
    <div class="page-header">
      <div>
        <h1 class="page-title">Compare runs</h1>
        <p class="page-subtitle">{ids.length} runs</p>
      </div>
    </div>
  );

  if (!pid) {
    return (
      <div class="page page-wide" data-testid="compare-page">
        {header}
        {pv.error !== null ? <ErrorPanel error={pv.error} onRetry={() => void reloadProjects()} /> : <p class="muted">Loading…</p>}
      </div>
    );
  }
  if (ids.length < 2) {
    return (
      <div class="page" data-testid="compare-page">
        {header}
        <div class="notice" data-testid="compare-need-two">
          <strong>Choose at least two runs to compare.</strong>
          <p>
            Select runs in an experiment's runs table, then press Compare.{" "}
            <a href="/experiments" onClick={(e) => linkClick(e, "/experiments")}>
              Experiments
            </a>
          </p>
        </div>
      </div>
    );
  }
  if (error) {
    return (
      <div class="page" data-testid="compare-page">
        {header}
        <ErrorPanel error={error} />
      </div>
    );
  }
  if (!runs) {
    return (
      <div class="page" data-testid="compare-page">
        {header}
        <p class="muted">Loading…</p>
      </div>
    );
  }

  const paramOf = runs.map((r) => new Map((r.data.params ?? []).map((p) => [p.key, p.value])));
  const metricOf = runs.map((r) => new Map((r.data.metrics ?? []).map((m) => [m.key, m.value])));
  const differs = (key: string) => {
    const vals = paramOf.map((m) => m.get(key));
    return vals.some((v) => v !== vals[0]);
  };
  const diffCount = paramKeys.filter(differs).length;
  const shownParams = onlyDiff ? paramKeys.filter(differs) : paramKeys;

  // Parallel coordinates: the params that differ (all of them when none do), then the metrics.
  const pcParams = diffCount > 0 ? paramKeys.filter(differs) : paramKeys;
  const dims: PCDim[] = [
    ...pcParams.slice(0, 8).map((k) => ({ kind: "param", name: k, values: paramOf.map((m) => m.get(k)) })),
    ...metricKeys.slice(0, 8).map((k) => ({
      kind: "metric",
      name: k,
      values: metricOf.map((m) => {
        const v = m.get(k);
        if (v === undefined) return undefined;
        const n = numeric(v);
        return Number.isFinite(n) ? n : undefined;
      }),
    })),
  ];

  return (
    <div class="page page-wide" data-testid="compare-page" data-runs={runs.length}>
      {header}
      <div class="compare-runs" data-testid="compare-runs">
        {runs.map((r, i) => {
          const href = `/runs/${encodeURIComponent(r.info.run_id)}`;
          return (
            <span key={r.info.run_id} class="compare-run" data-testid="compare-run" data-run-id={r.info.run_id}>
              <span class="swatch" style={{ background: colorAt(i) }} aria-hidden="true" />
              <a href={href} onClick={(e) => linkClick(e, href)}>
                {label(r)}
              </a>
              <Badge tone={statusTone(r.info.status)}>{r.info.status ?? "—"}</Badge>
            </span>
          );
        })}
      </div>

      <section class="section" aria-labelledby="cmp-metrics-title">
        <div class="section-head">
          <h2 class="section-title" id="cmp-metrics-title">
            Metrics
          </h2>
          {metricKeys.length > 0 && (
            <ChartControls xMode={charts.xMode} smoothing={charts.smoothing} onXMode={charts.setXMode} onSmoothing={charts.setSmoothing} />
          )}
        </div>
        {metricKeys.length === 0 && <p class="muted">None of these runs logged metrics.</p>}
        <div class="charts">
          {metricKeys.map((k) => {
            const s = series[k];
            if (!s) {
              return (
                <figure key={k} class="chart chart-loading">
                  <figcaption class="chart-title">{k}</figcaption>
                  <p class="muted">Loading…</p>
                </figure>
              );
            }
            // Keep each run's color: a run without this key still takes its slot's color.
            const list = runs
              .map((r, i) => ({ r, i }))
              .filter(({ r }) => s[r.info.run_id])
              .map(({ r, i }) => ({ label: label(r), points: s[r.info.run_id]!.points, color: colorAt(i) }));
            return (
              <MetricChart
                key={k}
                title={k}
                series={list}
                xMode={charts.xMode}
                smoothing={charts.smoothing}
                sampled={Object.values(s).some((x) => x.sampled)}
                testid="compare-chart"
              />
            );
          })}
        </div>
      </section>

      <section class="section" aria-labelledby="cmp-params-title">
        <div class="section-head">
          <div>
            <h2 class="section-title" id="cmp-params-title">
              Params
            </h2>
            <p class="muted" data-testid="compare-diff-count">
              {diffCount} of {paramKeys.length} differ
            </p>
          </div>
          <label class="check">
            <input type="checkbox" checked={onlyDiff} onChange={() => setOnlyDiff((v) => !v)} data-testid="compare-only-diff" />
            Only differences
          </label>
        </div>
        <div class="table-wrap">
          <table class="table diff-table" data-testid="compare-params">
            <thead>
              <tr>
                <th>Param</th>
                {runs.map((r, i) => (
                  <th key={r.info.run_id}>
                    <span class="swatch" style={{ background: colorAt(i) }} aria-hidden="true" /> {label(r)}
                  </th>
                ))}
              </tr>
            </thead>
            <tbody>
              {shownParams.map((k) => {
                const d = differs(k);
                return (
                  <tr key={k} class={d ? "diff" : undefined} data-testid="compare-param-row" data-key={k} data-differs={String(d)}>
                    <th scope="row">{k}</th>
                    {paramOf.map((m, i) => (
                      <td key={i} data-testid="compare-param-value">
                        {m.get(k) ?? <span class="muted">—</span>}
                      </td>
                    ))}
                  </tr>
                );
              })}
            </tbody>
          </table>
          {shownParams.length === 0 && <p class="empty">{paramKeys.length ? "No params differ." : "No params logged."}</p>}
        </div>
      </section>

      {metricKeys.length > 0 && (
        <section class="section" aria-labelledby="cmp-latest-title">
          <h2 class="section-title" id="cmp-latest-title">
            Latest metrics
          </h2>
          <div class="table-wrap">
            <table class="table diff-table" data-testid="compare-metrics">
              <thead>
                <tr>
                  <th>Metric</th>
                  {runs.map((r) => (
                    <th key={r.info.run_id}>{label(r)}</th>
                  ))}
                </tr>
              </thead>
              <tbody>
                {metricKeys.map((k) => (
                  <tr key={k} data-testid="compare-metric-row" data-key={k}>
                    <th scope="row">{k}</th>
                    {metricOf.map((m, i) => (
                      <td key={i} class="num">
                        {formatValue(m.get(k))}
                      </td>
                    ))}
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
        </section>
      )}

      <section class="section" aria-labelledby="cmp-pc-title">
        <h2 class="section-title" id="cmp-pc-title">
          Parallel coordinates
        </h2>
        <ParallelCoords dims={dims} runs={runs.map((r, i) => ({ id: r.info.run_id, label: label(r), color: colorAt(i) }))} />
      </section>
    </div>
  );
}
