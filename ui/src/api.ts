// Fetch helpers for the Kiln HTTP API. Every failure surfaces as an ApiError
// carrying the server's stable error_code (or a client-side one such as
// "network_error"), so pages render errors the same way everywhere.

/** Error body shape used by every Kiln endpoint: `{"error_code", "message"}`. */
export interface ErrorBody {
  error_code: string;
  message: string;
}

export class ApiError extends Error {
  /** HTTP status, or 0 when no response arrived (network failure, abort). */
  readonly status: number;
  /** Stable machine-readable code from the server, or a client-side code. */
  readonly errorCode: string;
  readonly path: string;

  constructor(status: number, errorCode: string, message: string, path: string) {
    super(message);
    this.name = "ApiError";
    this.status = status;
    this.errorCode = errorCode;
    this.path = path;
  }

  /** True when the server could not be reached at all. */
  get unreachable(): boolean {
    return this.status === 0;
  }
}

export interface ServerInfo {
  name: string;
  version: string;
  commit: string;
  started_at_ms: number;
  uptime_s: number;
  store: { driver: string; migrations: number };
}

export interface Health {
  status: string;
}

export type Readiness =
  | { ready: true; status: string }
  | { ready: false; status: number; error_code: string; message: string };

function isErrorBody(v: unknown): v is ErrorBody {
  return (
    typeof v === "object" &&
    v !== null &&
    typeof (v as ErrorBody).error_code === "string" &&
    typeof (v as ErrorBody).message === "string"
  );
}

export interface RawResponse {
  status: number;
  ok: boolean;
  body: unknown;
  headers: Headers;
}

/** Performs the request and parses a JSON body; throws only when no usable response arrived. */
export async function request(path: string, init: RequestInit = {}): Promise<RawResponse> {
  const method = init.method ?? "GET";
  let res: Response;
  try {
    res = await fetch(path, {
      ...init,
      headers: { Accept: "application/json", ...(init.headers ?? {}) },
      cache: "no-store",
    });
  } catch (e) {
    if (e instanceof DOMException && e.name === "AbortError") throw e;
    const why = e instanceof Error && e.message ? ` (${e.message})` : "";
    throw new ApiError(0, "network_error", `No response to ${method} ${path}${why}.`, path);
  }
  const text = await res.text();
  let body: unknown = undefined;
  if (text.length > 0) {
    try {
      body = JSON.parse(text);
    } catch {
      throw new ApiError(
        res.status,
        "bad_response",
        `Expected JSON from ${path}, got ${res.headers.get("content-type") ?? "unknown content"} (HTTP ${res.status}).`,
        path,
      );
    }
  }
  return { status: res.status, ok: res.ok, body, headers: res.headers };
}

export function toApiError(path: string, r: RawResponse): ApiError {
  if (isErrorBody(r.body)) return new ApiError(r.status, r.body.error_code, r.body.message, path);
  return new ApiError(r.status, "http_error", `HTTP ${r.status} from ${path}.`, path);
}

/** GET a JSON document; non-2xx answers become ApiError with the server's error_code. */
export async function getJSON<T>(path: string, signal?: AbortSignal): Promise<T> {
  const r = await request(path, signal ? { signal } : {});
  if (!r.ok) throw toApiError(path, r);
  return r.body as T;
}

export function fetchServerInfo(signal?: AbortSignal): Promise<ServerInfo> {
  return getJSON<ServerInfo>("/api/v1/server-info", signal);
}

export function fetchHealth(signal?: AbortSignal): Promise<Health> {
  return getJSON<Health>("/healthz", signal);
}

/** /readyz answers 503 with an error body when not ready; that is a state, not a failure. */
export async function fetchReadiness(signal?: AbortSignal): Promise<Readiness> {
  const path = "/readyz";
  const r = await request(path, signal ? { signal } : {});
  if (r.ok) {
    const status = (r.body as { status?: unknown } | undefined)?.status;
    return { ready: true, status: typeof status === "string" ? status : "ready" };
  }
  if (r.status === 503 && isErrorBody(r.body)) {
    return { ready: false, status: r.status, error_code: r.body.error_code, message: r.body.message };
  }
  throw toApiError(path, r);
}
