// Serving: a model version's V2 metadata (its signature), predictions on the
// JSON endpoint with the timings the "Try it" panel shows, the project's
// loaded models, and the request snippets (curl, Python) for the same call.
import { toApiError } from "./api";
import { authJSON, authRequest } from "./auth";

export interface TensorMeta {
  name: string;
  datatype: string;
  /** -1 is a variable dimension. */
  shape: number[];
}

export interface ModelMetadata {
  name: string;
  versions?: string[];
  platform?: string;
  inputs: TensorMeta[];
  outputs: TensorMeta[];
  /** Feature names of input 0 (tabular models). */
  columns?: string[];
  /** Class labels (classifiers). */
  classes?: (string | number)[];
}

export type ModelState = "LOADING" | "READY" | "FAILED" | "DEGRADED" | "UNLOADING";

export interface LoadedModel {
  name: string;
  version: string;
  format?: string;
  backend?: string;
  state: ModelState;
  reason?: string;
  memory_bytes?: number;
  loaded_at?: number;
  last_used_at?: number;
  requests?: number;
  errors?: number;
  queue_depth?: number;
  settings?: Record<string, unknown>;
}

function versionPath(name: string, version: string): string {
  return `/api/v1/models/${encodeURIComponent(name)}/versions/${encodeURIComponent(version)}`;
}

export function modelMetadata(pid: string, name: string, version: string, signal?: AbortSignal): Promise<ModelMetadata> {
  return authJSON<ModelMetadata>(
    "GET",
    `/v2/models/${encodeURIComponent(name)}/versions/${encodeURIComponent(version)}`,
    undefined,
    signal,
    { "X-Kiln-Project": pid },
  );
}

export function predictPath(name: string, version: string): string {
  return `${versionPath(name, version)}/predict`;
}

export interface ServerTiming {
  queue?: number;
  compute?: number;
  total?: number;
}

/** `queue;dur=0.01, compute;dur=0.05, total;dur=0.1` → milliseconds by name. */
export function parseServerTiming(h: string | null): ServerTiming {
  const out: Record<string, number> = {};
  for (const part of (h ?? "").split(",")) {
    const [metric, ...params] = part.trim().split(";");
    const dur = params.map((p) => p.trim()).find((p) => p.startsWith("dur="));
    const v = dur ? Number(dur.slice(4)) : NaN;
    if (metric && Number.isFinite(v)) out[metric.trim()] = v;
  }
  return out;
}

export interface PredictAnswer {
  predictions: unknown;
  /** The version that answered (X-Kiln-Model-Version). */
  version: string | null;
  /** Milliseconds from sending to having the whole answer, in the browser. */
  latencyMs: number;
  timing: ServerTiming;
}

/** POSTs an MLflow scoring payload; non-2xx answers throw ApiError with the server's message. */
export async function predict(pid: string, name: string, version: string, body: unknown): Promise<PredictAnswer> {
  const path = predictPath(name, version);
  const t0 = performance.now();
  const r = await authRequest("POST", path, body, { "X-Kiln-Project": pid });
  const latencyMs = performance.now() - t0;
  if (!r.ok) throw toApiError(path, r);
  const b = (r.body ?? {}) as { predictions?: unknown };
  return {
    predictions: b.predictions,
    version: r.headers.get("X-Kiln-Model-Version"),
    latencyMs,
    timing: parseServerTiming(r.headers.get("Server-Timing")),
  };
}

export async function servingModels(pid: string, signal?: AbortSignal): Promise<LoadedModel[]> {
  const r = await authJSON<{ models?: LoadedModel[] }>("GET", "/api/v1/serving/models", undefined, signal, {
    "X-Kiln-Project": pid,
  });
  return r.models ?? [];
}

export function unloadModel(pid: string, name: string, version: string): Promise<unknown> {
  return authJSON("POST", `${versionPath(name, version)}/unload`, undefined, undefined, { "X-Kiln-Project": pid });
}

// ---- the form's input -------------------------------------------------------

/** A tabular model: one input of [rows, n] numbers (named columns or not), n small enough for a form. */
export function tabularWidth(m: ModelMetadata): number {
  if (m.inputs.length !== 1) return 0;
  const i = m.inputs[0]!;
  if (m.columns && m.columns.length > 0) return m.columns.length;
  if (i.shape.length === 2 && i.shape[1]! > 0 && i.shape[1]! <= 200 && i.datatype !== "BYTES") return i.shape[1]!;
  return 0;
}

function zero(datatype: string): unknown {
  if (datatype === "BYTES") return "";
  if (datatype === "BOOL") return false;
  return 0;
}

/** A sample value of a tensor's shape (variable dimensions as 1, unknown rank as one row of one value). */
export function sampleTensor(t: TensorMeta): unknown {
  const shape = t.shape.length > 0 ? t.shape.map((d) => (d > 0 ? Math.min(d, 64) : 1)) : [1, 1];
  const build = (k: number): unknown => (k === shape.length ? zero(t.datatype) : Array.from({ length: shape[k]! }, () => build(k + 1)));
  return build(0);
}

/** A form field's text as JSON: a number when it reads as one, null when empty (missing), else the text. */
export function cellValue(text: string): unknown {
  const s = text.trim();
  if (s === "") return null;
  const n = Number(s);
  return Number.isFinite(n) ? n : text;
}

/** Probability rows named by class: [[0.1, 0.9]] → [{"no": 0.1, "yes": 0.9}]. */
export function nameClasses(predictions: unknown, classes: (string | number)[] | undefined): unknown {
  if (!classes || classes.length === 0 || !Array.isArray(predictions)) return predictions;
  return predictions.map((row) =>
    Array.isArray(row) && row.length === classes.length && row.every((x) => typeof x === "number")
      ? Object.fromEntries(classes.map((c, k) => [String(c), row[k]]))
      : row,
  );
}

// ---- snippets ---------------------------------------------------------------

/** A shell word in single quotes ('\'' for a quote inside). */
function shellQuote(s: string): string {
  return `'${s.replace(/'/g, `'\\''`)}'`;
}

export function curlSnippet(origin: string, pid: string, name: string, version: string, body: unknown): string {
  return [
    `curl -sS -X POST ${shellQuote(origin + predictPath(name, version))} \\`,
    `  -H "Authorization: Bearer $KILN_API_KEY" \\`,
    `  -H ${shellQuote("X-Kiln-Project: " + pid)} \\`,
    `  -H 'Content-Type: application/json' \\`,
    `  -d ${shellQuote(JSON.stringify(body))}`,
  ].join("\n");
}

/** A JSON value written as a Python literal. */
export function pyLiteral(v: unknown): string {
  if (v === null || v === undefined) return "None";
  if (v === true) return "True";
  if (v === false) return "False";
  if (typeof v === "number") return Number.isFinite(v) ? String(v) : "float('nan')";
  if (typeof v === "string") return JSON.stringify(v);
  if (Array.isArray(v)) return `[${v.map(pyLiteral).join(", ")}]`;
  return `{${Object.entries(v as Record<string, unknown>)
    .map(([k, x]) => `${JSON.stringify(k)}: ${pyLiteral(x)}`)
    .join(", ")}}`;
}

export function pythonSnippet(
  origin: string,
  projectName: string,
  name: string,
  version: string,
  data: unknown,
  proba: boolean,
): string {
  const args = [JSON.stringify(name), pyLiteral(data), `version=${JSON.stringify(version)}`];
  if (proba) args.push("proba=True");
  return [
    "import os",
    "import kiln  # the SDK: sdk/python in the Kiln repository",
    "",
    `# an API key with the predict scope, made for project ${JSON.stringify(projectName)} (API keys page)`,
    `client = kiln.Client(${JSON.stringify(origin)}, api_key=os.environ["KILN_API_KEY"])`,
    `print(client.predict(${args.join(", ")}))`,
  ].join("\n");
}
