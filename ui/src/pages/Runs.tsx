// Runs of one experiment (/experiments/{id}): MLflow's runs/search with the
// filter grammar (the server's message, with its position, shown under the
// box), server-side ordering by clicking a metric, param or attribute
// header, a column chooser remembered per experiment in localStorage, row
// selection for the compare view, and paging with page tokens.
import { useCallback, useEffect, useMemo, useState } from "preact/hooks";
import { ApiError } from "../api";
import { Badge, ErrorPanel } from "../components/ui";
import { formatDuration, formatShort } from "../format";
import { reloadProjects, useProject } from "../project";
import { linkClick, usePath } from "../router";
import type { Experiment, Run, ViewType } from "../track";
import { durationMs, errorPosition, getExperiment, numeric, quoteKey, runName, searchRuns, statusTone } from "../track";

/** A chosen column: "m:<metric key>", "p:<param key>" or "t:<tag key>". */
type Col = string;

interface Sort {
  /** The order_by identifier, e.g. metrics.`acc` or attributes.start_time. */
  id: string;
  desc: boolean;
}

const PAGE_SIZES = [25, 50, 100];
const COLS_KEY = "kiln.runs.columns.";

function colId(c: Col): string {
  const kind = c.slice(0, 1);
  const key = c.slice(2);
  return `${kind === "m" ? "metrics" : kind === "p" ? "params" : "tags"}.${quoteKey(key)}`;
}

function loadCols(expId: string): Col[] | null {
  try {
    const v = localStorage.getItem(COLS_KEY + expId);
    const a = v ? (JSON.parse(v) as unknown) : null;
    return Array.isArray(a) ? a.filter((x): x is string => typeof x === "string") : null;
  } catch {
    return null;
  }
}

function saveCols(expId: string, cols: Col[]): void {
  try {
    localStorage.setItem(COLS_KEY + expId, JSON.stringify(cols));
  } catch {
    // storage unavailable: the choice lasts for this page
  }
}

export function formatValue(v: number | string | undefined): string {
  if (v === undefined) return "—";
  const n = numeric(v);
  if (Number.isNaN(n)) return "NaN";
  if (!Number.isFinite(n)) return n > 0 ? "∞" : "−∞";
  if (Number.isInteger(n) && Math.abs(n) < 1e15) return String(n);
  const a = Math.abs(n);
  if (a !== 0 && (a < 1e-4 || a >= 1e9)) return n.toExponential(4);
  return String(Number(n.toPrecision(6)));
}

/** The filter with a caret under the character the server named. */
function FilterError(props: { error: ApiError; filter: string }) {
  const pos = props.error.message.startsWith("filter") ? errorPosition(props.error.message) : null;
  const chars = Array.from(props.filter);
  return (
    <div class="inline-error filter-error" role="alert" data-testid="runs-filter-error" data-position={pos ?? ""}>
      <div data-testid="runs-filter-error-message">
        {props.error.message}
        <code> {props.error.errorCode}</code>
      </div>
      {pos !== null && pos >= 1 && pos <= chars.length + 1 && (
        <pre class="filter-caret" aria-hidden="true">
          {props.filter.replace(/\n/g, " ")}
          {"\n"}
          {" ".repeat(pos - 1)}^
        </pre>
      )}
    </div>
  );
}

function ColumnChooser(props: {
  metrics: string[];
  params: string[];
  tags: string[];
  chosen: Col[];
  onChange: (cols: Col[]) => void;
  onClose: () => void;
}) {
  const toggle = (c: Col) =>
    props.onChange(props.chosen.includes(c) ? props.chosen.filter((x) => x !== c) : [...props.chosen, c]);
  const group = (title: string, prefix: string, keys: string[]) =>
    keys.length > 0 && (
      <fieldset class="col-group">
        <legend>{title}</legend>
        {keys.map((k) => {
          const c = `${prefix}:${k}`;
          return (
            <label class="check" key={c}>
              <input type="checkbox" checked={props.chosen.includes(c)} onChange={() => toggle(c)} data-testid="column-option" data-column={c} />
              {k}
            </label>
          );
        })}
      </fieldset>
    );
  return (
    <div class="card column-chooser" data-testid="column-chooser">
      <div class="section-head">
        <strong>Columns</strong>
        <div class="page-actions">
          <button type="button" class="btn btn-small btn-ghost" onClick={() => props.onChange([])}>
            None
          </button>
          <button
            type="button"
            class="btn btn-small btn-ghost"
            onClick={() => props.onChange([...props.metrics.map((k) => `m:${k}`), ...props.params.map((k) => `p:${k}`)])}
          >
            All metrics and params
          </button>
          <button type="button" class="btn btn-small" onClick={props.onClose} data-testid="column-chooser-close">
            Done
          </button>
        </div>
      </div>
      {group("Metrics", "m", props.metrics)}
      {group("Params", "p", props.params)}
      {group("Tags", "t", props.tags)}
      {props.metrics.length + props.params.length + props.tags.length === 0 && <p class="muted">No keys logged yet.</p>}
    </div>
  );
}

function SortHeader(props: {
  label: string;
  id: string;
  sort: Sort | null;
  onSort: (s: Sort | null) => void;
  title?: string;
  num?: boolean;
}) {
  const active = props.sort?.id === props.id;
  const next = () => {
    // metrics sort best-first by default: descending, then ascending, then off.
    if (!active) props.onSort({ id: props.id, desc: true });
    else if (props.sort!.desc) props.onSort({ id: props.id, desc: false });
    else props.onSort(null);
  };
  return (
    <th aria-sort={active ? (props.sort!.desc ? "descending" : "ascending") : undefined} title={props.title} class={props.num ? "num" : undefined}>
      <button type="button" class="th-sort" onClick={next} data-testid="sort-header" data-sort-id={props.id}>
        {props.label}
        <span class="sort-mark" aria-hidden="true">
          {active ? (props.sort!.desc ? "▼" : "▲") : ""}
        </span>
      </button>
    </th>
  );
}

export function Runs() {
  const path = usePath();
  const expId = decodeURIComponent(path.replace(/^\/experiments\/+/, "").replace(/\/+$/, ""));
  const pv = useProject();
  const pid = pv.currentId;
  const initial = new URLSearchParams(window.location.search);

  const [exp, setExp] = useState<Experiment | null>(null);
  const [expError, setExpError] = useState<unknown>(null);
  const [filterText, setFilterText] = useState(initial.get("filter") ?? "");
  const [filter, setFilter] = useState(initial.get("filter") ?? "");
  const [sort, setSort] = useState<Sort | null>(() => {
    const o = initial.get("order_by");
    const m = o ? /^(.*) (ASC|DESC)$/.exec(o) : null;
    return m ? { id: m[1]!, desc: m[2] === "DESC" } : null;
  });
  const [viewType, setViewType] = useState<ViewType>("ACTIVE_ONLY");
  const [pageSize, setPageSize] = useState(50);
  const [tokens, setTokens] = useState<string[]>([""]);
  const [pageIndex, setPageIndex] = useState(0);
  const [rows, setRows] = useState<Run[] | null>(null);
  const [next, setNext] = useState<string | undefined>();
  const [error, setError] = useState<unknown>(null);
  const [selected, setSelected] = useState<string[]>([]);
  const [keys, setKeys] = useState<{ m: Set<string>; p: Set<string>; t: Set<string> }>({ m: new Set(), p: new Set(), t: new Set() });
  const [cols, setCols] = useState<Col[] | null>(() => loadCols(expId));
  const [chooser, setChooser] = useState(false);
  const [loading, setLoading] = useState(false);

  // Another experiment: its own remembered columns and keys.
  useEffect(() => {
    setCols(loadCols(expId));
    setKeys({ m: new Set(), p: new Set(), t: new Set() });
    setSelected([]);
  }, [expId]);

  useEffect(() => {
    if (!pid) return;
    const ac = new AbortController();
    getExperiment(pid, expId, ac.signal)
      .then((e) => {
        setExp(e);
        setExpError(null);
      })
      .catch((e) => !ac.signal.aborted && setExpError(e));
    return () => ac.abort();
  }, [pid, expId]);

  // A new query starts again on the first page.
  useEffect(() => {
    setTokens([""]);
    setPageIndex(0);
  }, [pid, expId, filter, sort?.id, sort?.desc, viewType, pageSize]);

  // The filter and order live in the address, so a view can be shared.
  useEffect(() => {
    const q = new URLSearchParams();
    if (filter.trim()) q.set("filter", filter);
    if (sort) q.set("order_by", `${sort.id} ${sort.desc ? "DESC" : "ASC"}`);
    const s = q.toString();
    const url = window.location.pathname + (s ? `?${s}` : "");
    if (url !== window.location.pathname + window.location.search) window.history.replaceState(null, "", url);
  }, [filter, sort]);

  const token = tokens[pageIndex] ?? "";
  const load = useCallback(
    async (signal?: AbortSignal) => {
      if (!pid) return;
      setLoading(true);
      try {
        const r = await searchRuns(
          pid,
          {
            experimentIds: [expId],
            filter,
            orderBy: sort ? [`${sort.id} ${sort.desc ? "DESC" : "ASC"}`] : [],
            viewType,
            pageToken: token || undefined,
            maxResults: pageSize,
          },
          signal,
        );
        if (signal?.aborted) return;
        setRows(r.runs);
        setNext(r.next_page_token);
        setError(null);
        setKeys((old) => {
          const m = new Set(old.m);
          const p = new Set(old.p);
          const t = new Set(old.t);
          for (const run of r.runs) {
            run.data.metrics?.forEach((x) => m.add(x.key));
            run.data.params?.forEach((x) => p.add(x.key));
            run.data.tags?.forEach((x) => !x.key.startsWith("mlflow.") && t.add(x.key));
          }
          return m.size === old.m.size && p.size === old.p.size && t.size === old.t.size ? old : { m, p, t };
        });
      } catch (e) {
        if (signal?.aborted) return;
        setError(e);
        setRows(null);
      } finally {
        if (!signal?.aborted) setLoading(false);
      }
    },
    [pid, expId, filter, sort?.id, sort?.desc, viewType, token, pageSize],
  );

  useEffect(() => {
    const ac = new AbortController();
    void load(ac.signal);
    return () => ac.abort();
  }, [load]);

  const sorted = (s: Set<string>) => [...s].sort((a, b) => a.localeCompare(b));
  const metricKeys = useMemo(() => sorted(keys.m), [keys]);
  const paramKeys = useMemo(() => sorted(keys.p), [keys]);
  const tagKeys = useMemo(() => sorted(keys.t), [keys]);
  // Until the user chooses, show the first few metrics and params.
  const shown: Col[] = cols ?? [...metricKeys.slice(0, 6).map((k) => `m:${k}`), ...paramKeys.slice(0, 6).map((k) => `p:${k}`)];
  const chooseCols = (c: Col[]) => {
    setCols(c);
    saveCols(expId, c);
  };

  const filterError = error instanceof ApiError && error.status === 400 && /^(filter|order_by)/.test(error.message) ? error : null;
  const apply = (e: Event) => {
    e.preventDefault();
    setFilter(filterText);
    if (filterText === filter) void load();
  };
  const toggle = (id: string) => setSelected((s) => (s.includes(id) ? s.filter((x) => x !== id) : [...s, id]));
  const pageIds = rows?.map((r) => r.info.run_id) ?? [];
  const allOnPage = pageIds.length > 0 && pageIds.every((id) => selected.includes(id));
  const compareHref = `/compare?runs=${selected.map(encodeURIComponent).join(",")}`;

  if (!pid) {
    return (
      <div class="page page-wide" data-testid="runs-page">
        {pv.error !== null ? <ErrorPanel error={pv.error} onRetry={() => void reloadProjects()} /> : <p class="muted">Loading…</p>}
      </div>
    );
  }

  return (
    <div class="page page-wide" data-testid="runs-page" data-experiment-id={expId}>
      <div class="page-header">
        <div>
          <p class="crumbs">
            <a href="/experiments" onClick={(e) => linkClick(e, "/experiments")}>
              Experiments
            </a>{" "}
            /
          </p>
          <h1 class="page-title" data-testid="runs-experiment-name">
            {exp?.name ?? expId}
          </h1>
          <p class="page-subtitle">
            Experiment <code>{expId}</code>
            {exp?.lifecycle_stage === "deleted" && <span class="chip"> deleted</span>}
          </p>
        </div>
        <div class="page-actions">
          <span class="muted" data-testid="runs-selected-count">
            {selected.length} selected
          </span>
          {selected.length > 0 && (
            <button type="button" class="btn btn-small btn-ghost" onClick={() => setSelected([])}>
              Clear
            </button>
          )}
          <a
            class={`btn${selected.length < 2 ? " btn-disabled" : ""}`}
            href={compareHref}
            aria-disabled={selected.length < 2}
            onClick={(e) => {
              if (selected.length < 2) e.preventDefault();
              else linkClick(e, compareHref);
            }}
            data-testid="runs-compare"
          >
            Compare{selected.length >= 2 ? ` (${selected.length})` : ""}
          </a>
        </div>
      </div>
      {expError !== null && <ErrorPanel error={expError} />}

      <form class="runs-filter" onSubmit={apply} data-testid="runs-filter-form">
        <label class="field field-grow">
          <span>
            Filter{" "}
            <span class="muted">(MLflow's search syntax, plus OR, NOT and parentheses; Enter applies)</span>
          </span>
          <input
            value={filterText}
            spellcheck={false}
            placeholder="metrics.acc > 0.9 AND params.lr = '0.01'"
            onInput={(e) => setFilterText(e.currentTarget.value)}
            class={filterError ? "invalid" : undefined}
            aria-invalid={filterError ? true : undefined}
            data-testid="runs-filter"
          />
        </label>
        <label class="field">
          <span>Show</span>
          <select value={viewType} onChange={(e) => setViewType(e.currentTarget.value as ViewType)} data-testid="runs-view-type">
            <option value="ACTIVE_ONLY">Active</option>
            <option value="DELETED_ONLY">Deleted</option>
            <option value="ALL">All</option>
          </select>
        </label>
        <button type="submit" class="btn" data-testid="runs-filter-apply">
          Apply
        </button>
        {filter && (
          <button
            type="button"
            class="btn btn-ghost"
            onClick={() => {
              setFilterText("");
              setFilter("");
            }}
            data-testid="runs-filter-clear"
          >
            Clear
          </button>
        )}
        <button type="button" class="btn btn-ghost" onClick={() => setChooser((v) => !v)} data-testid="columns-button">
          Columns
        </button>
      </form>
      {filterError && <FilterError error={filterError} filter={filter} />}
      {chooser && (
        <ColumnChooser
          metrics={metricKeys}
          params={paramKeys}
          tags={tagKeys}
          chosen={shown}
          onChange={chooseCols}
          onClose={() => setChooser(false)}
        />
      )}
      {error !== null && !filterError && <ErrorPanel error={error} onRetry={() => void load()} />}

      <div class={`table-wrap${loading ? " loading" : ""}`}>
        <table class="table runs-table" data-testid="runs-table" data-loading={String(loading)}>
          <thead>
            <tr>
              <th class="check-col">
                <input
                  type="checkbox"
                  aria-label="Select every run on this page"
                  checked={allOnPage}
                  onChange={() =>
                    setSelected((s) => (allOnPage ? s.filter((id) => !pageIds.includes(id)) : [...s, ...pageIds.filter((id) => !s.includes(id))]))
                  }
                  data-testid="runs-select-all"
                />
              </th>
              <SortHeader label="Run" id="attributes.run_name" sort={sort} onSort={setSort} />
              <SortHeader label="Status" id="attributes.status" sort={sort} onSort={setSort} />
              <SortHeader label="Started" id="attributes.start_time" sort={sort} onSort={setSort} />
              <th>Duration</th>
              <SortHeader label="User" id="attributes.user_id" sort={sort} onSort={setSort} />
              {shown.map((c) => (
                <SortHeader
                  key={c}
                  label={c.slice(2)}
                  id={colId(c)}
                  sort={sort}
                  onSort={setSort}
                  title={`${c[0] === "m" ? "metric" : c[0] === "p" ? "param" : "tag"} ${c.slice(2)}`}
                  num={c[0] === "m"}
                />
              ))}
            </tr>
          </thead>
          <tbody>
            {rows?.map((r) => {
              const id = r.info.run_id;
              const href = `/runs/${encodeURIComponent(id)}`;
              const metrics = new Map((r.data.metrics ?? []).map((m) => [m.key, m.value]));
              const params = new Map((r.data.params ?? []).map((p) => [p.key, p.value]));
              const tags = new Map((r.data.tags ?? []).map((p) => [p.key, p.value]));
              const d = durationMs(r.info);
              return (
                <tr key={id} data-testid="run-row" data-run-id={id} class={selected.includes(id) ? "selected" : undefined}>
                  <td class="check-col">
                    <input
                      type="checkbox"
                      aria-label={`Select ${runName(r.info)}`}
                      checked={selected.includes(id)}
                      onChange={() => toggle(id)}
                      data-testid="run-select"
                    />
                  </td>
                  <td class="strong">
                    <a href={href} onClick={(e) => linkClick(e, href)} data-testid="run-link">
                      {runName(r.info)}
                    </a>
                  </td>
                  <td>
                    <Badge tone={statusTone(r.info.status)} testid="run-status">
                      {r.info.status ?? "—"}
                    </Badge>
                  </td>
                  <td class="nowrap">{formatShort(r.info.start_time ?? 0)}</td>
                  <td class="nowrap" data-testid="run-duration">
                    {d === null ? "—" : formatDuration(d / 1000)}
                  </td>
                  <td>{r.info.user_id ?? "—"}</td>
                  {shown.map((c) => {
                    const k = c.slice(2);
                    const v = c[0] === "m" ? formatValue(metrics.get(k)) : (c[0] === "p" ? params : tags).get(k) ?? "—";
                    return (
                      <td key={c} class={c[0] === "m" ? "num" : undefined} data-column={c}>
                        {v}
                      </td>
                    );
                  })}
                </tr>
              );
            })}
          </tbody>
        </table>
        {rows !== null && rows.length === 0 && (
          <p class="empty" data-testid="runs-empty">
            {filter.trim() ? "No runs match the filter." : "No runs in this experiment yet."}
          </p>
        )}
        {rows === null && error === null && <p class="empty">Loading…</p>}
      </div>
      <div class="pager" data-testid="runs-pager">
        <label class="field pager-size">
          <span>Per page</span>
          <select value={pageSize} onChange={(e) => setPageSize(Number(e.currentTarget.value))} data-testid="runs-page-size">
            {PAGE_SIZES.map((n) => (
              <option key={n} value={n}>
                {n}
              </option>
            ))}
          </select>
        </label>
        <span class="muted" data-testid="runs-page-index">
          Page {pageIndex + 1}
        </span>
        <button
          type="button"
          class="btn btn-small btn-ghost"
          disabled={pageIndex === 0}
          onClick={() => setPageIndex((i) => Math.max(0, i - 1))}
          data-testid="runs-prev"
        >
          Previous
        </button>
        <button
          type="button"
          class="btn btn-small btn-ghost"
          disabled={!next}
          onClick={() => {
            if (!next) return;
            setTokens((t) => [...t.slice(0, pageIndex + 1), next]);
            setPageIndex((i) => i + 1);
          }}
          data-testid="runs-next"
        >
          Next
        </button>
      </div>
    </div>
  );
}
