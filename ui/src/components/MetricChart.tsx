// A metric chart on uPlot: one or more series over steps or wall-clock time,
// with optional EMA smoothing (the raw line stays, faded, under the smoothed
// one). The wrapper exposes what uPlot was given as data attributes
// (data-points: points across the raw series, data-y-max, data-series,
// data-x-mode, data-source, data-sampled), so
// tests and users can check a chart without reading pixels.
import { useEffect, useRef } from "preact/hooks";
import uPlot from "uplot";
import "uplot/dist/uPlot.min.css";
import type { Point } from "../track";

export type XMode = "step" | "time";

export interface ChartSeries {
  label: string;
  points: Point[];
  /** Defaults to the palette color for the series' index. */
  color?: string;
}

export const PALETTE = ["#ea580c", "#2563eb", "#16a34a", "#9333ea", "#db2777", "#0891b2", "#ca8a04", "#4b5563", "#dc2626", "#65a30d"];

export function colorAt(i: number): string {
  return PALETTE[i % PALETTE.length]!;
}

/** Exponential moving average over finite values (NaN/inf pass through unsmoothed). */
export function ema(values: (number | null)[], weight: number): (number | null)[] {
  if (weight <= 0) return values;
  let last: number | null = null;
  return values.map((v) => {
    if (v === null || !Number.isFinite(v)) return v;
    last = last === null ? v : last * weight + (1 - weight) * v;
    return last;
  });
}

function withAlpha(hex: string, alpha: number): string {
  const n = parseInt(hex.slice(1), 16);
  return `rgba(${(n >> 16) & 255}, ${(n >> 8) & 255}, ${n & 255}, ${alpha})`;
}

/** uPlot's aligned data: one x array (the union of every series' x), a y array per series. */
export function align(series: ChartSeries[], xMode: XMode): { xs: number[]; ys: (number | null)[][] } {
  const xOf = (p: Point) => (xMode === "step" ? p.step : p.timestamp / 1000);
  const all = new Set<number>();
  for (const s of series) for (const p of s.points) all.add(xOf(p));
  const xs = [...all].sort((a, b) => a - b);
  const index = new Map(xs.map((x, i) => [x, i]));
  const ys = series.map((s) => {
    const y: (number | null)[] = new Array(xs.length).fill(null);
    // Several points on one step (retries, different timestamps): the last one wins.
    for (const p of s.points) y[index.get(xOf(p))!] = Number.isFinite(p.value) ? p.value : null;
    return y;
  });
  return { xs, ys };
}

function cssVar(name: string, fallback: string): string {
  const v = getComputedStyle(document.documentElement).getPropertyValue(name).trim();
  return v || fallback;
}

export function MetricChart(props: {
  title: string;
  series: ChartSeries[];
  xMode: XMode;
  smoothing: number;
  height?: number;
  testid?: string;
  sampled?: boolean;
  /** Where the points came from ("sampled" endpoint or "history"), shown as data-source. */
  source?: string;
}) {
  const wrap = useRef<HTMLDivElement>(null);
  const plot = useRef<uPlot | null>(null);
  const { series, xMode, smoothing } = props;
  const smooth = smoothing > 0;
  const structure = `${xMode}|${smooth}|${series.map((s) => `${s.label}:${s.color ?? ""}`).join("\u0000")}`;

  const build = () => {
    const { xs, ys } = align(series, xMode);
    const data: (number | null)[][] = [xs];
    for (const y of ys) {
      data.push(y);
      if (smooth) data.push(ema(y, smoothing));
    }
    return data as uPlot.AlignedData;
  };

  const expose = (u: uPlot) => {
    const el = wrap.current;
    if (!el) return;
    let points = 0;
    let max = -Infinity;
    const step = smooth ? 2 : 1;
    for (let i = 1; i < u.data.length; i += step)
      for (const v of u.data[i]!)
        if (v !== null && v !== undefined) {
          points++;
          if (v > max) max = v;
        }
    el.dataset.points = String(points);
    el.dataset.yMax = points ? String(max) : "";
    el.dataset.xs = String(u.data[0]!.length);
    el.dataset.series = String(series.length);
  };

  useEffect(() => {
    const el = wrap.current;
    if (!el) return;
    const text = cssVar("--muted", "#667085");
    const grid = cssVar("--border", "#e3e6eb");
    const axis = { stroke: text, grid: { stroke: grid, width: 1 }, ticks: { stroke: grid, width: 1 } };
    const uSeries: uPlot.Series[] = [{ label: xMode === "step" ? "step" : "time" }];
    series.forEach((s, i) => {
      const c = s.color ?? colorAt(i);
      uSeries.push({
        label: smooth ? `${s.label} (raw)` : s.label,
        stroke: smooth ? withAlpha(c, 0.25) : c,
        width: smooth ? 1 : 1.5,
        spanGaps: true,
        // Dots only where a line cannot show the data (a handful of points).
        points: { show: s.points.length <= 30, size: 6, fill: smooth ? withAlpha(c, 0.25) : c },
      });
      if (smooth) {
        uSeries.push({ label: s.label, stroke: c, width: 1.75, spanGaps: true, points: { show: s.points.length <= 30, size: 6, fill: c } });
      }
    });
    const opts: uPlot.Options = {
      width: Math.max(200, el.clientWidth),
      height: props.height ?? 220,
      scales: {
        x: {
          time: xMode === "time",
          // One x value (a single point, or every run's final step): widen it so it shows.
          // (uPlot itself widens a single time value to 1000 days.)
          range: (u, min, max) => {
            const xs = u.data[0];
            const pad = xMode === "time" ? 60 : 1;
            if (xs && xs.length > 0 && xs[0] === xs[xs.length - 1]) return [xs[0]! - pad, xs[0]! + pad];
            return min === max ? [min - pad, max + pad] : [min, max];
          },
        },
      },
      series: uSeries,
      axes: [axis, { ...axis, size: 56 }],
      legend: { show: series.length > 1 || smooth, live: true },
      cursor: { drag: { x: true, y: false } },
    };
    const u = new uPlot(opts, build(), el.querySelector<HTMLElement>(".chart-canvas")!);
    plot.current = u;
    expose(u);
    const ro = new ResizeObserver(() => {
      const w = Math.max(200, el.clientWidth);
      if (Math.abs(w - u.width) > 1) u.setSize({ width: w, height: u.height });
    });
    ro.observe(el);
    return () => {
      ro.disconnect();
      u.destroy();
      plot.current = null;
    };
  }, [structure]);

  // New points (live updates, a smoothing change): same plot, new data.
  useEffect(() => {
    const u = plot.current;
    if (!u) return;
    u.setData(build());
    expose(u);
  }, [series, smoothing]);

  return (
    <figure class="chart" data-testid={props.testid ?? "metric-chart"} data-key={props.title} data-x-mode={xMode} data-source={props.source} data-sampled={String(!!props.sampled)} ref={wrap}>
      <figcaption class="chart-title">
        <span>{props.title}</span>
        {props.sampled && (
          <span class="muted" title="A downsampled view that keeps every peak and trough" data-testid="chart-downsampled">
            downsampled
          </span>
        )}
      </figcaption>
      <div class="chart-canvas" />
    </figure>
  );
}

/** The x-axis toggle and the smoothing slider shared by the run and compare pages. */
export function ChartControls(props: {
  xMode: XMode;
  smoothing: number;
  onXMode: (m: XMode) => void;
  onSmoothing: (w: number) => void;
}) {
  return (
    <div class="chart-controls" data-testid="chart-controls">
      <div class="segmented" role="group" aria-label="X axis">
        {(["step", "time"] as XMode[]).map((m) => (
          <button
            key={m}
            type="button"
            class={props.xMode === m ? "active" : undefined}
            aria-pressed={props.xMode === m}
            onClick={() => props.onXMode(m)}
            data-testid={`x-mode-${m}`}
          >
            {m === "step" ? "Step" : "Time"}
          </button>
        ))}
      </div>
      <label class="smoothing">
        <span>Smoothing</span>
        <input
          type="range"
          min={0}
          max={0.99}
          step={0.01}
          value={props.smoothing}
          onInput={(e) => props.onSmoothing(Number(e.currentTarget.value))}
          data-testid="smoothing"
        />
        <code>{props.smoothing.toFixed(2)}</code>
      </label>
    </div>
  );
}
