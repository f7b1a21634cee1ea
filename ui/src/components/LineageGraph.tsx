// A model version's lineage as a layered SVG graph: the version on the left,
// then the logged model, the run, and what the run used (datasets) and where
// it was logged (experiment). Unknown node types (added by later features)
// get a column of their own; missing pieces are drawn dashed. Runs link to
// their page.
import { linkClick } from "../router";
import type { Lineage, LineageNode } from "../registry";

const COLUMN: Record<string, number> = { model_version: 0, logged_model: 1, run: 2, dataset: 3, experiment: 3 };
const W = 190;
const H = 44;
const GAP_X = 70;
const GAP_Y = 16;

function runHref(n: LineageNode): string | null {
  return n.type === "run" && !n.missing ? `/runs/${encodeURIComponent(String(n.attrs?.["run_id"] ?? n.id.slice(4)))}` : null;
}

export function LineageGraph(props: { graph: Lineage }) {
  const cols = new Map<number, LineageNode[]>();
  for (const n of props.graph.nodes) {
    const c = COLUMN[n.type] ?? 4;
    cols.set(c, [...(cols.get(c) ?? []), n]);
  }
  const order = [...cols.keys()].sort((a, b) => a - b);
  const pos = new Map<string, { x: number; y: number }>();
  order.forEach((c, ci) => cols.get(c)!.forEach((n, i) => pos.set(n.id, { x: ci * (W + GAP_X), y: i * (H + GAP_Y) })));
  const width = order.length * (W + GAP_X) - GAP_X;
  const height = Math.max(...order.map((c) => cols.get(c)!.length)) * (H + GAP_Y) - GAP_Y;
  return (
    <svg
      class="lineage"
      width={width + 2}
      height={height + 2}
      viewBox={`-1 -1 ${width + 2} ${height + 2}`}
      role="img"
      aria-label="Lineage graph"
      data-testid="lineage-graph"
    >
      {props.graph.edges.map((e) => {
        const a = pos.get(e.from);
        const b = pos.get(e.to);
        if (!a || !b) return null;
        const [x1, y1, x2, y2] = a.x < b.x ? [a.x + W, a.y + H / 2, b.x, b.y + H / 2] : [a.x, a.y + H / 2, b.x + W, b.y + H / 2];
        return (
          <g key={`${e.from}>${e.to}`} data-testid="lineage-edge" data-type={e.type} data-from={e.from} data-to={e.to}>
            <line x1={x1} y1={y1} x2={x2} y2={y2} class="lineage-edge" />
            <text x={(x1 + x2) / 2} y={(y1 + y2) / 2 - 4} class="lineage-edge-label" text-anchor="middle">
              {e.type}
            </text>
          </g>
        );
      })}
      {props.graph.nodes.map((n) => {
        const p = pos.get(n.id)!;
        const href = runHref(n);
        const box = (
          <g data-testid="lineage-node" data-id={n.id} data-type={n.type} data-missing={String(!!n.missing)}>
            <rect x={p.x} y={p.y} width={W} height={H} rx={8} class={`lineage-node lineage-${n.type}${n.missing ? " lineage-missing" : ""}`} />
            <text x={p.x + 10} y={p.y + 17} class="lineage-type">
              {n.type.replace("_", " ")}
              {n.missing ? " (missing)" : ""}
            </text>
            <text x={p.x + 10} y={p.y + 34} class="lineage-label">
              {n.label.length > 26 ? n.label.slice(0, 25) + "…" : n.label}
            </text>
          </g>
        );
        return href ? (
          <a key={n.id} href={href} onClick={(e) => linkClick(e as unknown as MouseEvent, href)}>
            {box}
          </a>
        ) : (
          <g key={n.id}>{box}</g>
        );
      })}
    </svg>
  );
}
