// Model registry: MLflow's registry REST API as the dashboard uses it, on the
// session cookie, in the current project (sent as X-Kiln-Project).
import type { RawResponse } from "./api";
import { ApiError, toApiError } from "./api";
import { authJSON } from "./auth";
import type { KV } from "./track";

export interface ModelVersion {
  name: string;
  version: string;
  creation_timestamp?: number;
  last_updated_timestamp?: number;
  current_stage?: string;
  description?: string;
  source?: string;
  run_id?: string;
  run_link?: string;
  status?: string;
  status_message?: string;
  tags?: KV[];
  aliases?: string[];
  user_id?: string;
}

export interface RegisteredModel {
  name: string;
  creation_timestamp?: number;
  last_updated_timestamp?: number;
  description?: string;
  latest_versions?: ModelVersion[];
  tags?: KV[];
  aliases?: { alias: string; version: string }[];
}

export const STAGES = ["None", "Staging", "Production", "Archived"] as const;

const ML = "/api/2.0/mlflow/";

function call<T>(pid: string, method: string, path: string, body?: unknown): Promise<T> {
  return authJSON<T>(method, ML + path, body, undefined, { "X-Kiln-Project": pid });
}

function query(params: Record<string, string | number | undefined>): string {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== "") q.set(k, String(v));
  const s = q.toString();
  return s ? "?" + s : "";
}

/** Text for inside a quoted LIKE/ILIKE pattern: %, _ and \ match themselves. */
export function likeLiteral(s: string): string {
  const pattern = s.replace(/[\\%_]/g, (c) => "\\" + c);
  return pattern.replace(/\\/g, "\\\\").replace(/'/g, "''");
}

export function searchModels(
  pid: string,
  opts: { filter?: string | undefined; pageToken?: string | undefined; maxResults?: number | undefined },
): Promise<{ registered_models?: RegisteredModel[]; next_page_token?: string }> {
  return call(
    pid,
    "GET",
    "registered-models/search" +
      query({
        filter: opts.filter,
        page_token: opts.pageToken,
        max_results: opts.maxResults ?? 100,
        order_by: "name ASC",
      }),
  );
}

export async function getModel(pid: string, name: string): Promise<RegisteredModel> {
  const r = await call<{ registered_model: RegisteredModel }>(pid, "GET", "registered-models/get" + query({ name }));
  return r.registered_model;
}

/** Every version of a model, newest first (pages followed). */
export async function modelVersions(pid: string, name: string): Promise<ModelVersion[]> {
  const out: ModelVersion[] = [];
  let token: string | undefined;
  do {
    const r = await call<{ model_versions?: ModelVersion[]; next_page_token?: string }>(
      pid,
      "GET",
      "model-versions/search" + query({ filter: `name='${name.replace(/'/g, "''")}'`, max_results: 1000, page_token: token }),
    );
    out.push(...(r.model_versions ?? []));
    token = r.next_page_token;
  } while (token);
  return out.sort((a, b) => Number(b.version) - Number(a.version));
}

export function createModel(pid: string, name: string, description: string): Promise<unknown> {
  return call(pid, "POST", "registered-models/create", description ? { name, description } : { name });
}

export function updateDescription(pid: string, name: string, description: string): Promise<unknown> {
  return call(pid, "PATCH", "registered-models/update", { name, description });
}

export function deleteModel(pid: string, name: string): Promise<unknown> {
  return call(pid, "DELETE", "registered-models/delete", { name });
}

export function transitionStage(
  pid: string,
  name: string,
  version: string,
  stage: string,
  archiveExisting: boolean,
): Promise<unknown> {
  return call(pid, "POST", "model-versions/transition-stage", {
    name,
    version,
    stage,
    archive_existing_versions: archiveExisting,
  });
}

export function setAlias(pid: string, name: string, alias: string, version: string): Promise<unknown> {
  return call(pid, "POST", "registered-models/alias", { name, alias, version });
}

export function deleteAlias(pid: string, name: string, alias: string): Promise<unknown> {
  return call(pid, "DELETE", "registered-models/alias", { name, alias });
}

export function stageTone(stage: string | undefined): "ok" | "warn" | "neutral" | "bad" {
  if (stage === "Production") return "ok";
  if (stage === "Staging") return "warn";
  if (stage === "Archived") return "bad";
  return "neutral";
}

// ---- uploads (Kiln routes) -------------------------------------------------

export interface UploadSession {
  upload_id: string;
  received: number;
  size?: number;
}

export interface UploadedVersion {
  name: string;
  version: string;
  status: string;
  status_message?: string;
  format?: string;
  framework?: string;
  sha256?: string;
  size?: number;
  unsafe?: boolean;
  scan?: Record<string, unknown>;
  signature?: unknown;
}

function kiln<T>(pid: string, method: string, path: string, body?: unknown): Promise<T> {
  return authJSON<T>(method, path, body, undefined, { "X-Kiln-Project": pid });
}

export async function startUpload(
  pid: string,
  meta: { name: string; size: number; sha256?: string | undefined; description?: string | undefined },
): Promise<UploadSession> {
  const body: Record<string, unknown> = { name: meta.name, size: meta.size };
  if (meta.sha256) body["sha256"] = meta.sha256;
  if (meta.description) body["description"] = meta.description;
  return (await kiln<{ upload: UploadSession }>(pid, "POST", "/api/v1/models/uploads", body)).upload;
}

export async function uploadState(pid: string, id: string): Promise<UploadSession> {
  return (await kiln<{ upload: UploadSession }>(pid, "GET", `/api/v1/models/uploads/${encodeURIComponent(id)}`)).upload;
}

export function abortUpload(pid: string, id: string): Promise<unknown> {
  return kiln(pid, "DELETE", `/api/v1/models/uploads/${encodeURIComponent(id)}`);
}

export async function completeUpload(pid: string, id: string): Promise<UploadedVersion> {
  return (await kiln<{ model_version: UploadedVersion }>(pid, "POST", `/api/v1/models/uploads/${encodeURIComponent(id)}/complete`, {}))
    .model_version;
}

export async function versionScan(pid: string, name: string, version: string): Promise<UploadedVersion> {
  const r = await kiln<UploadedVersion | { model_version: UploadedVersion }>(
    pid,
    "GET",
    `/api/v1/models/${encodeURIComponent(name)}/versions/${encodeURIComponent(version)}/scan`,
  );
  return "model_version" in r ? r.model_version : r;
}

function csrfToken(): string {
  for (const part of document.cookie.split(";")) {
    const [k, ...v] = part.trim().split("=");
    if (k === "kiln_csrf") return v.join("=");
  }
  return "";
}

/**
 * PUTs one chunk with XMLHttpRequest, whose upload events give byte-level
 * progress (fetch has none). onBytes gets the bytes of this chunk sent so far.
 */
export function putChunk(
  pid: string,
  id: string,
  blob: Blob,
  first: number,
  total: number,
  onBytes: (sent: number) => void,
  xhrOut?: (x: XMLHttpRequest) => void,
): Promise<UploadSession> {
  const path = `/api/v1/models/uploads/${encodeURIComponent(id)}`;
  return new Promise((resolve, reject) => {
    const x = new XMLHttpRequest();
    x.open("PUT", path);
    x.setRequestHeader("Content-Type", "application/octet-stream");
    x.setRequestHeader("Content-Range", `bytes ${first}-${first + blob.size - 1}/${total}`);
    x.setRequestHeader("X-Kiln-Project", pid);
    x.setRequestHeader("X-CSRF-Token", csrfToken());
    x.setRequestHeader("Accept", "application/json");
    x.upload.onprogress = (e) => onBytes(e.loaded);
    x.onerror = () => reject(new ApiError(0, "network_error", "The upload was interrupted.", path));
    x.onabort = () => reject(new ApiError(0, "aborted", "The upload was cancelled.", path));
    x.onload = () => {
      let body: unknown = null;
      try {
        body = JSON.parse(x.responseText);
      } catch {
        body = null;
      }
      if (x.status >= 200 && x.status < 300) resolve((body as { upload: UploadSession }).upload);
      else reject(toApiError(path, { status: x.status, ok: false, body } as RawResponse));
    };
    xhrOut?.(x);
    x.send(blob);
  });
}

/** Lowercase hex SHA-256 of a file read whole (WebCrypto has no streaming digest). */
export async function sha256Hex(file: Blob): Promise<string> {
  const d = await crypto.subtle.digest("SHA-256", await file.arrayBuffer());
  return [...new Uint8Array(d)].map((b) => b.toString(16).padStart(2, "0")).join("");
}

// ---- governance, approvals, lineage (Kiln routes) -------------------------

export interface ApprovalRequest {
  id: string;
  state: string;
  kind: "stage" | "alias";
  target: string;
  from_stage?: string;
  archive_existing_versions?: boolean;
  model_name: string;
  version: string;
  requester_id?: string;
  requester?: string;
  comment?: string;
  decided_by_name?: string;
  decision_comment?: string;
  created_at?: number;
}

export async function listApprovals(
  pid: string,
  state: string,
  pageToken?: string,
): Promise<{ approval_requests?: ApprovalRequest[]; next_page_token?: string }> {
  const q = new URLSearchParams({ state, max_results: "100" });
  if (pageToken) q.set("page_token", pageToken);
  return kiln(pid, "GET", `/api/v1/approvals?${q.toString()}`);
}

export async function requestApproval(
  pid: string,
  change: { name: string; version: string; stage?: string; alias?: string; archive_existing_versions?: boolean; comment?: string },
): Promise<ApprovalRequest> {
  return (await kiln<{ approval_request: ApprovalRequest }>(pid, "POST", "/api/v1/approvals", change)).approval_request;
}

export async function decideApproval(
  pid: string,
  id: string,
  verb: "approve" | "reject" | "cancel",
  comment?: string,
): Promise<ApprovalRequest> {
  const body = verb === "cancel" ? undefined : comment ? { comment } : {};
  return (await kiln<{ approval_request: ApprovalRequest }>(pid, "POST", `/api/v1/approvals/${encodeURIComponent(id)}/${verb}`, body))
    .approval_request;
}

export interface LineageNode {
  id: string;
  type: string;
  label: string;
  attrs?: Record<string, unknown>;
  missing?: boolean;
}

export interface Lineage {
  nodes: LineageNode[];
  edges: { from: string; to: string; type: string }[];
  truncated?: boolean;
}

export function lineage(pid: string, name: string, version: string): Promise<Lineage> {
  return kiln(pid, "GET", `/api/v1/models/${encodeURIComponent(name)}/versions/${encodeURIComponent(version)}/lineage`);
}

export interface VersionComment {
  id: string;
  version: string;
  author_id: string;
  author?: string;
  body: string;
  created_at: number;
  updated_at: number;
}

function commentsPath(name: string, version: string): string {
  return `/api/v1/models/${encodeURIComponent(name)}/versions/${encodeURIComponent(version)}/comments`;
}

/** Every comment of a version, oldest first (pages followed). */
export async function listComments(pid: string, name: string, version: string): Promise<VersionComment[]> {
  const out: VersionComment[] = [];
  let token: string | undefined;
  do {
    const q = new URLSearchParams({ max_results: "1000" });
    if (token) q.set("page_token", token);
    const r = await kiln<{ comments?: VersionComment[]; next_page_token?: string }>(pid, "GET", `${commentsPath(name, version)}?${q}`);
    out.push(...(r.comments ?? []));
    token = r.next_page_token;
  } while (token);
  return out;
}

export function addComment(pid: string, name: string, version: string, body: string): Promise<unknown> {
  return kiln(pid, "POST", commentsPath(name, version), { body });
}

export function editComment(pid: string, name: string, version: string, id: string, body: string): Promise<unknown> {
  return kiln(pid, "PATCH", `${commentsPath(name, version)}/${encodeURIComponent(id)}`, { body });
}

export function deleteComment(pid: string, name: string, version: string, id: string): Promise<unknown> {
  return kiln(pid, "DELETE", `${commentsPath(name, version)}/${encodeURIComponent(id)}`);
}

export interface Governance {
  require_approval_for_production: boolean;
  protected_aliases: string[];
}

export async function getGovernance(pid: string): Promise<Governance> {
  return (await kiln<{ governance: Governance }>(pid, "GET", "/api/v1/registry/governance")).governance;
}

export async function setGovernance(pid: string, g: Governance): Promise<Governance> {
  return (await kiln<{ governance: Governance }>(pid, "PUT", "/api/v1/registry/governance", g)).governance;
}
