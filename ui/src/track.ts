// Experiment tracking: the MLflow REST API as the dashboard uses it, on the
// session cookie, in the current project (sent as X-Kiln-Project), plus
// Kiln's chart endpoints (downsampled series, live events) with fallbacks to
// plain MLflow calls on servers that do not have them yet.
import { ApiError, toApiError } from "./api";
import { authJSON } from "./auth";

export interface KV {
  key: string;
  value: string;
}

export interface Experiment {
  experiment_id: string;
  name: string;
  artifact_location?: string;
  lifecycle_stage?: string;
  last_update_time?: number;
  creation_time?: number;
  tags?: KV[];
}

export interface RunInfo {
  run_id: string;
  run_uuid?: string;
  run_name?: string;
  experiment_id: string;
  user_id?: string;
  status?: string;
  start_time?: number;
  end_time?: number;
  artifact_uri?: string;
  lifecycle_stage?: string;
}

export interface Metric {
  key: string;
  /** A number, or "NaN" / "Infinity" as protobuf JSON writes them. */
  value: number | string;
  timestamp: number;
  step: number;
}

export interface Run {
  info: RunInfo;
  data: { metrics?: Metric[]; params?: KV[]; tags?: KV[] };
}

export interface Point {
  step: number;
  timestamp: number;
  value: number;
}

export type ViewType = "ACTIVE_ONLY" | "DELETED_ONLY" | "ALL";

const ML = "/api/2.0/mlflow/";

function projectHeaders(projectId: string | null): Record<string, string> | undefined {
  return projectId ? { "X-Kiln-Project": projectId } : undefined;
}

function query(params: Record<string, string | number | undefined>): string {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== "") q.set(k, String(v));
  const s = q.toString();
  return s ? `?${s}` : "";
}

/** An MLflow REST call in a project. */
export function mlflow<T>(
  projectId: string | null,
  method: "GET" | "POST",
  path: string,
  body?: unknown,
  signal?: AbortSignal,
): Promise<T> {
  return authJSON<T>(method, ML + path, body, signal, projectHeaders(projectId));
}

export function numeric(v: number | string): number {
  if (typeof v === "number") return v;
  if (v === "NaN") return NaN;
  if (v === "Infinity") return Infinity;
  if (v === "-Infinity") return -Infinity;
  const n = Number(v);
  return Number.isFinite(n) ? n : NaN;
}

/** True when the server has no such route (an older server): callers fall back. */
export function isMissingEndpoint(e: unknown): boolean {
  return e instanceof ApiError && (e.errorCode === "ENDPOINT_NOT_FOUND" || e.status === 405);
}

// ---- experiments ---------------------------------------------------------

export async function searchExperiments(
  projectId: string,
  opts: { viewType: ViewType; filter?: string; pageToken?: string | undefined; maxResults?: number },
  signal?: AbortSignal,
): Promise<{ experiments: Experiment[]; next_page_token?: string | undefined }> {
  const body: Record<string, unknown> = { max_results: opts.maxResults ?? 100, view_type: opts.viewType };
  if (opts.filter) body.filter = opts.filter;
  if (opts.pageToken) body.page_token = opts.pageToken;
  const r = await mlflow<{ experiments?: Experiment[]; next_page_token?: string }>(
    projectId,
    "POST",
    "experiments/search",
    body,
    signal,
  );
  return { experiments: r.experiments ?? [], next_page_token: r.next_page_token };
}

export async function getExperiment(projectId: string, id: string, signal?: AbortSignal): Promise<Experiment> {
  const r = await mlflow<{ experiment: Experiment }>(projectId, "GET", `experiments/get${query({ experiment_id: id })}`, undefined, signal);
  return r.experiment;
}

// ---- runs ----------------------------------------------------------------

export async function searchRuns(
  projectId: string,
  opts: {
    experimentIds: string[];
    filter?: string;
    orderBy?: string[];
    viewType?: ViewType;
    pageToken?: string | undefined;
    maxResults?: number;
  },
  signal?: AbortSignal,
): Promise<{ runs: Run[]; next_page_token?: string | undefined }> {
  const body: Record<string, unknown> = {
    experiment_ids: opts.experimentIds,
    max_results: opts.maxResults ?? 50,
    run_view_type: opts.viewType ?? "ACTIVE_ONLY",
  };
  if (opts.filter && opts.filter.trim()) body.filter = opts.filter;
  if (opts.orderBy?.length) body.order_by = opts.orderBy;
  if (opts.pageToken) body.page_token = opts.pageToken;
  const r = await mlflow<{ runs?: Run[]; next_page_token?: string }>(projectId, "POST", "runs/search", body, signal);
  return { runs: r.runs ?? [], next_page_token: r.next_page_token };
}

export async function getRun(projectId: string, runId: string, signal?: AbortSignal): Promise<Run> {
  const r = await mlflow<{ run: Run }>(projectId, "GET", `runs/get${query({ run_id: runId })}`, undefined, signal);
  return r.run;
}

/** A key as written in a filter or order_by: always backtick-quoted (a backtick inside is doubled). */
export function quoteKey(key: string): string {
  return "`" + key.replace(/`/g, "``") + "`";
}

export function runName(r: RunInfo): string {
  return r.run_name || r.run_id.slice(0, 8);
}

export function durationMs(r: RunInfo, now = Date.now()): number | null {
  if (!r.start_time) return null;
  const end = r.end_time || (r.status === "RUNNING" ? now : 0);
  return end ? Math.max(0, end - r.start_time) : null;
}

export function statusTone(status: string | undefined): "ok" | "warn" | "bad" | "neutral" {
  switch (status) {
    case "FINISHED":
      return "ok";
    case "RUNNING":
    case "SCHEDULED":
      return "warn";
    case "FAILED":
    case "KILLED":
      return "bad";
    default:
      return "neutral";
  }
}

/** The 1-based character position in a filter error message ("at position 13"), if any. */
export function errorPosition(message: string): number | null {
  const m = /at position (\d+)/.exec(message);
  return m ? Number(m[1]) : null;
}

// ---- metric series -------------------------------------------------------

/** Whether the server has the downsampled-series endpoint (unknown until the first try). */
let sampledAvailable: boolean | null = null;

function parsePoints(body: unknown): Point[] {
  const b = (body ?? {}) as Record<string, unknown>;
  // Columnar: {steps:[], timestamps:[], values:[]}
  if (Array.isArray(b.steps) && Array.isArray(b.values)) {
    const steps = b.steps as number[];
    const values = b.values as (number | string)[];
    const ts = (Array.isArray(b.timestamps) ? b.timestamps : []) as number[];
    return steps.map((s, i) => ({ step: Number(s), timestamp: Number(ts[i] ?? 0), value: numeric(values[i]!) }));
  }
  const list = (Array.isArray(b.metrics) ? b.metrics : Array.isArray(b.points) ? b.points : []) as unknown[];
  return list.map((p) => {
    if (Array.isArray(p)) return { step: Number(p[0]), timestamp: Number(p[1]), value: numeric(p[2] as number) };
    const o = p as Metric;
    return { step: Number(o.step ?? 0), timestamp: Number(o.timestamp ?? 0), value: numeric(o.value) };
  });
}

/**
 * Min/max per bucket: keeps every peak and trough of a long series in at
 * most about `max` points (the client-side stand-in for the server's sampled
 * endpoint).
 */
export function downsample(points: Point[], max: number): Point[] {
  if (points.length <= max || max < 4) return points;
  const buckets = Math.floor(max / 2);
  const size = points.length / buckets;
  const out: Point[] = [];
  for (let b = 0; b < buckets; b++) {
    const lo = Math.floor(b * size);
    const hi = Math.min(points.length, Math.floor((b + 1) * size));
    let mn = lo;
    let mx = lo;
    for (let i = lo; i < hi; i++) {
      const v = points[i]!.value;
      if (v < points[mn]!.value) mn = i;
      if (v > points[mx]!.value) mx = i;
    }
    if (mn === mx) out.push(points[mn]!);
    else if (mn < mx) out.push(points[mn]!, points[mx]!);
    else out.push(points[mx]!, points[mn]!);
  }
  return out;
}

export interface Series {
  points: Point[];
  /** True when the points are a downsampled view of a longer history. */
  sampled: boolean;
  /** How the points were fetched, for the chart's data attributes. */
  source: "sampled" | "history";
}

/** The full history through metrics/get-history, page by page. */
export async function fetchHistory(projectId: string, runId: string, key: string, signal?: AbortSignal): Promise<Point[]> {
  const out: Point[] = [];
  let token: string | undefined;
  for (let page = 0; page < 1000; page++) {
    const q = query({ run_id: runId, metric_key: key, max_results: 25000, page_token: token });
    const r = await mlflow<{ metrics?: Metric[]; next_page_token?: string }>(projectId, "GET", `metrics/get-history${q}`, undefined, signal);
    out.push(...parsePoints(r));
    token = r.next_page_token;
    if (!token) break;
  }
  out.sort((a, b) => a.step - b.step || a.timestamp - b.timestamp);
  return out;
}

/** A chart-sized series: the server's downsampled endpoint when it has one, else the history. */
export async function fetchSeries(
  projectId: string,
  runId: string,
  key: string,
  maxPoints = 1000,
  signal?: AbortSignal,
): Promise<Series> {
  if (sampledAvailable !== false) {
    const path = `/api/v1/runs/${encodeURIComponent(runId)}/metrics/${encodeURIComponent(key)}/sampled${query({ max_points: maxPoints, points: maxPoints })}`;
    try {
      const body = await authJSON<unknown>("GET", path, undefined, signal, projectHeaders(projectId));
      sampledAvailable = true;
      const pts = parsePoints(body);
      const b = (body ?? {}) as { sampled?: unknown; total_points?: unknown };
      const sampled = typeof b.sampled === "boolean" ? b.sampled : Number(b.total_points ?? pts.length) > pts.length;
      return { points: pts, sampled, source: "sampled" };
    } catch (e) {
      if (!isMissingEndpoint(e)) throw e;
      sampledAvailable = false;
    }
  }
  const all = await fetchHistory(projectId, runId, key, signal);
  const pts = downsample(all, maxPoints);
  return { points: pts, sampled: pts.length < all.length, source: "history" };
}

// ---- live updates --------------------------------------------------------

let eventsAvailable: boolean | null = null;

/**
 * Follows a run's Server-Sent Events (new metric points, status changes).
 * Resolves false at once when the server has no events endpoint, so the
 * caller polls instead; otherwise calls onPoint/onStatus until aborted.
 */
export async function followRun(
  projectId: string,
  runId: string,
  handlers: {
    onPoint: (key: string, p: Point) => void;
    onStatus?: (status: string) => void;
    /** The server dropped events (the client fell behind): reload the series. */
    onOverflow?: () => void;
  },
  signal: AbortSignal,
): Promise<boolean> {
  if (eventsAvailable === false) return false;
  const path = `/api/v1/runs/${encodeURIComponent(runId)}/events`;
  let res: Response;
  try {
    // fetch rather than EventSource: it can send X-Kiln-Project.
    res = await fetch(path, {
      headers: { Accept: "text/event-stream", "X-Kiln-Project": projectId },
      credentials: "same-origin",
      cache: "no-store",
      signal,
    });
  } catch {
    return false;
  }
  const type = res.headers.get("content-type") ?? "";
  if (!res.ok || !type.includes("text/event-stream") || !res.body) {
    if (res.status === 404 || res.status === 405) eventsAvailable = false;
    void res.body?.cancel().catch(() => {});
    return false;
  }
  eventsAvailable = true;
  const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
  let buf = "";
  const dispatch = (data: string) => {
    let v: unknown;
    try {
      v = JSON.parse(data);
    } catch {
      return;
    }
    const o = (v ?? {}) as Record<string, unknown>;
    if (typeof o.status === "string" && handlers.onStatus) handlers.onStatus(o.status);
    const info = o.info as { status?: unknown } | undefined;
    if (info && typeof info.status === "string" && handlers.onStatus) handlers.onStatus(info.status);
    const metrics = Array.isArray(o.metrics) ? (o.metrics as Metric[]) : typeof o.key === "string" && "value" in o ? [o as unknown as Metric] : [];
    for (const m of metrics) {
      if (typeof m.key !== "string") continue;
      handlers.onPoint(m.key, { step: Number(m.step ?? 0), timestamp: Number(m.timestamp ?? 0), value: numeric(m.value) });
    }
  };
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buf += value;
      let sep;
      while ((sep = buf.search(/\r?\n\r?\n/)) >= 0) {
        const block = buf.slice(0, sep);
        buf = buf.slice(sep).replace(/^\r?\n\r?\n/, "");
        let event = "message";
        const data: string[] = [];
        for (const line of block.split(/\r?\n/)) {
          if (line.startsWith(":")) continue;
          const i = line.indexOf(":");
          const field = i < 0 ? line : line.slice(0, i);
          const val = i < 0 ? "" : line.slice(i + 1).replace(/^ /, "");
          if (field === "event") event = val;
          else if (field === "data") data.push(val);
        }
        if (event === "overflow") handlers.onOverflow?.();
        else if (data.length && event !== "ping") dispatch(data.join("\n"));
      }
    }
  } catch {
    // aborted or the connection dropped: the caller decides what next
  }
  return true;
}

// ---- artifacts -----------------------------------------------------------

export interface FileInfo {
  path: string;
  is_dir?: boolean;
  file_size?: number;
}

export async function listArtifacts(
  projectId: string,
  runId: string,
  path: string,
  signal?: AbortSignal,
): Promise<{ files: FileInfo[]; root_uri?: string | undefined }> {
  const r = await mlflow<{ files?: FileInfo[]; root_uri?: string }>(
    projectId,
    "GET",
    `artifacts/list${query({ run_id: runId, path })}`,
    undefined,
    signal,
  );
  return { files: r.files ?? [], root_uri: r.root_uri };
}

/** Where an artifact's bytes are served: the artifact proxy for mlflow-artifacts:/ URIs. */
export function artifactURL(run: RunInfo, path: string): string {
  const uri = run.artifact_uri ?? "";
  const m = /^mlflow-artifacts:\/*(.*)$/.exec(uri);
  const encoded = path.split("/").map(encodeURIComponent).join("/");
  if (m) return `/api/2.0/mlflow-artifacts/artifacts/${m[1]!.replace(/\/+$/, "")}/${encoded}`;
  return `/get-artifact${query({ path, run_uuid: run.run_id })}`;
}

/** Fetches an artifact's bytes (at most `limit` of them are read for previews). */
export async function fetchArtifact(projectId: string, url: string, signal?: AbortSignal): Promise<Blob> {
  const init: RequestInit = { headers: { "X-Kiln-Project": projectId }, credentials: "same-origin" };
  if (signal) init.signal = signal;
  const r = await fetch(url, init);
  if (!r.ok) {
    const text = await r.text();
    let body: unknown;
    try {
      body = JSON.parse(text);
    } catch {
      body = undefined;
    }
    throw toApiError(url, { status: r.status, ok: false, body, headers: r.headers });
  }
  return r.blob();
}
