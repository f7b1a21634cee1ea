// Parallel coordinates in plain SVG: one vertical axis per param or metric,
// one line per run. Numeric dimensions get a linear scale (min at the
// bottom); others are categorical, their values spread evenly in sorted order.
// A run without a value on an axis has its line broken there.

export interface PCDim {
  /** "param" or "metric", shown above the name. */
  kind: string;
  name: string;
  /** One value per run (same order as runs); undefined when missing. */
  values: (string | number | undefined)[];
}

export interface PCRun {
  id: string;
  label: string;
  color: string;
}

function fmt(v: number): string {
  if (Number.isInteger(v)) return String(v);
  return String(Number(v.toPrecision(4)));
}

function trim(s: string, n = 14): string {
  return s.length > n ? s.slice(0, n - 1) + "…" : s;
}

export function ParallelCoords(props: { dims: PCDim[]; runs: PCRun[] }) {
  const { dims, runs } = props;
  if (dims.length < 2) return <p class="muted" data-testid="parallel-coords-empty">Parallel coordinates need at least two params or metrics.</p>;
  const top = 44;
  const bottom = 30;
  const h = 300;
  const gap = 140;
  const left = 70;
  const w = left * 2 + gap * (dims.length - 1);
  const plotH = h - top - bottom;

  const scales = dims.map((d) => {
    const present = d.values.filter((v): v is string | number => v !== undefined);
    const nums = present.map((v) => (typeof v === "number" ? v : Number(v)));
    const numeric = present.length > 0 && nums.every((n) => Number.isFinite(n)) && present.every((v) => typeof v === "number" || String(v).trim() !== "");
    if (numeric) {
      const lo = Math.min(...nums);
      const hi = Math.max(...nums);
      const y = (v: string | number) => {
        const n = Number(v);
        return hi === lo ? top + plotH / 2 : top + plotH - ((n - lo) / (hi - lo)) * plotH;
      };
      return { numeric, y, ticks: hi === lo ? [{ v: fmt(lo), y: top + plotH / 2 }] : [{ v: fmt(hi), y: top }, { v: fmt(lo), y: top + plotH }] };
    }
    const cats = [...new Set(present.map(String))].sort((a, b) => a.localeCompare(b));
    const y = (v: string | number) => {
      const i = cats.indexOf(String(v));
      return cats.length === 1 ? top + plotH / 2 : top + plotH - (i / (cats.length - 1)) * plotH;
    };
    return { numeric, y, ticks: cats.map((c) => ({ v: trim(c), y: y(c) })) };
  });

  return (
    <div class="pc-wrap">
      <svg
        class="parallel-coords"
        viewBox={`0 0 ${w} ${h}`}
        width={w}
        height={h}
        role="img"
        aria-label="Parallel coordinates of params and metrics"
        data-testid="parallel-coords"
        data-dims={dims.length}
        data-runs={runs.length}
      >
        {dims.map((d, i) => {
          const x = left + i * gap;
          return (
            <g key={`${d.kind}:${d.name}`} data-testid="pc-axis" data-dim={`${d.kind}:${d.name}`}>
              <line x1={x} x2={x} y1={top} y2={top + plotH} class="pc-axis" />
              <text x={x} y={12} class="pc-kind" text-anchor="middle">
                {d.kind}
              </text>
              <text x={x} y={28} class="pc-name" text-anchor="middle">
                <title>{d.name}</title>
                {trim(d.name, 18)}
              </text>
              {scales[i]!.ticks.map((t) => (
                <text key={t.v + t.y} x={x - 6} y={t.y + 4} class="pc-tick" text-anchor="end">
                  {t.v}
                </text>
              ))}
            </g>
          );
        })}
        {runs.map((r, ri) => {
          let dpath = "";
          let pen = false;
          dims.forEach((d, i) => {
            const v = d.values[ri];
            if (v === undefined) {
              pen = false;
              return;
            }
            const x = left + i * gap;
            const y = scales[i]!.y(v);
            dpath += `${pen ? "L" : "M"}${x.toFixed(1)},${y.toFixed(1)} `;
            pen = true;
          });
          return (
            <path key={r.id} d={dpath.trim()} stroke={r.color} class="pc-line" data-testid="pc-line" data-run-id={r.id}>
              <title>{r.label}</title>
            </path>
          );
        })}
      </svg>
    </div>
  );
}
