// Upload a model file (/models/upload): drag and drop (or pick) a file, name
// the model, and the file goes up through a resumable session in 8 MiB
// chunks with a byte-level progress bar. The browser computes the file's
// SHA-256 first (files up to 512 MiB) and the server refuses the upload if
// its own hash differs; the answer shows the version, its status, the
// detected format and both checksums. A failed chunk can be resumed from
// what the server says it has; cancelling drops the session.
import { useRef, useState } from "preact/hooks";
import { ApiError } from "../api";
import { Badge, InlineError } from "../components/ui";
import { useProject } from "../project";
import { linkClick } from "../router";
import type { UploadedVersion } from "../registry";
import { abortUpload, completeUpload, putChunk, sha256Hex, startUpload, uploadState } from "../registry";
import { modelHref } from "./Models";

const CHUNK = 8 << 20;
const HASH_MAX = 512 << 20;

function bytes(n: number): string {
  if (n >= 1 << 30) return `${(n / (1 << 30)).toFixed(1)} GiB`;
  if (n >= 1 << 20) return `${(n / (1 << 20)).toFixed(1)} MiB`;
  if (n >= 1024) return `${(n / 1024).toFixed(1)} KiB`;
  return `${n} B`;
}

type Phase = "idle" | "hashing" | "uploading" | "paused" | "registering" | "done";

export function UploadModel() {
  const pv = useProject();
  const pid = pv.currentId;
  const canWrite = pv.role === "editor" || pv.role === "admin";
  const [file, setFile] = useState<File | null>(null);
  const [name, setName] = useState("");
  const [description, setDescription] = useState("");
  const [localSha, setLocalSha] = useState<string | null>(null);
  const [phase, setPhase] = useState<Phase>("idle");
  const [sent, setSent] = useState(0);
  const [error, setError] = useState<unknown>(null);
  const [result, setResult] = useState<UploadedVersion | null>(null);
  const [dragging, setDragging] = useState(false);
  const session = useRef<string | null>(null);
  const xhr = useRef<XMLHttpRequest | null>(null);

  const pick = (f: File | null | undefined) => {
    if (!f) return;
    setFile(f);
    setLocalSha(null);
    setResult(null);
    setError(null);
    setSent(0);
    session.current = null;
    if (!name) setName(f.name.replace(/\.[^.]*$/, "").replace(/[^A-Za-z0-9_.-]+/g, "-"));
  };

  /** Sends from the server's `received` to the end, then registers the file. */
  const run = async (f: File, id: string, from: number) => {
    setPhase("uploading");
    let at = from;
    setSent(at);
    while (at < f.size) {
      const end = Math.min(at + CHUNK, f.size);
      const base = at;
      const s = await putChunk(pid!, id, f.slice(at, end), at, f.size, (n) => setSent(base + n), (x) => (xhr.current = x));
      at = s.received;
      setSent(at);
    }
    setPhase("registering");
    let v: UploadedVersion;
    try {
      v = await completeUpload(pid!, id);
    } catch (err) {
      // a refused file ends the session; only a temporary failure (503) can be retried
      if (!(err instanceof ApiError) || err.status !== 503) session.current = null;
      throw err;
    }
    session.current = null;
    setResult(v);
    setPhase("done");
  };

  const start = async (e: Event) => {
    e.preventDefault();
    if (!pid || !file || !name.trim()) return;
    setError(null);
    setResult(null);
    try {
      let sha = localSha;
      if (!sha && file.size <= HASH_MAX) {
        setPhase("hashing");
        sha = await sha256Hex(file);
        setLocalSha(sha);
      }
      const s = await startUpload(pid, { name: name.trim(), size: file.size, sha256: sha ?? undefined, description: description.trim() });
      session.current = s.upload_id;
      await run(file, s.upload_id, s.received);
    } catch (err) {
      setError(err);
      setPhase(session.current ? "paused" : "idle");
    }
  };

  const resume = async () => {
    if (!pid || !file || !session.current) return;
    setError(null);
    try {
      const s = await uploadState(pid, session.current);
      await run(file, session.current, s.received);
    } catch (err) {
      setError(err);
      setPhase(session.current ? "paused" : "idle");
    }
  };

  const cancel = async () => {
    xhr.current?.abort();
    const id = session.current;
    session.current = null;
    setPhase("idle");
    setSent(0);
    if (pid && id) await abortUpload(pid, id).catch(() => {});
  };

  const busy = phase === "hashing" || phase === "uploading" || phase === "registering";
  const pct = file && file.size ? Math.floor((sent * 100) / file.size) : 0;
  return (
    <div class="page" data-testid="upload-page" data-phase={phase}>
      <div class="page-header">
        <div>
          <p class="crumbs">
            <a href="/models" onClick={(e) => linkClick(e, "/models")}>
              Models
            </a>{" "}
            /
          </p>
          <h1 class="page-title">Upload a model file</h1>
          <p class="page-subtitle">
            ONNX, XGBoost, scikit-learn pickle or joblib, TorchScript, Keras HDF5, LightGBM or an MLflow model (.zip,
            .tar.gz). The format is read from the content; pickles are checked for unsafe imports before anything loads
            them.
          </p>
        </div>
      </div>
      {!canWrite && pv.current && (
        <div class="notice" data-testid="upload-readonly">
          Your role in this project cannot upload models.
        </div>
      )}
      <form class="card form-card" onSubmit={start} aria-label="Upload a model file">
        <div
          class={`dropzone${dragging ? " dropzone-over" : ""}`}
          data-testid="upload-dropzone"
          onDragOver={(e) => {
            e.preventDefault();
            setDragging(true);
          }}
          onDragLeave={() => setDragging(false)}
          onDrop={(e) => {
            e.preventDefault();
            setDragging(false);
            pick(e.dataTransfer?.files?.[0]);
          }}
        >
          {file ? (
            <p data-testid="upload-file">
              <strong>{file.name}</strong> · {bytes(file.size)}
            </p>
          ) : (
            <p class="muted">Drop a model file here, or pick one.</p>
          )}
          <input type="file" disabled={busy} onChange={(e) => pick(e.currentTarget.files?.[0])} data-testid="upload-input" />
        </div>
        <div class="form-row">
          <label class="field">
            <span>Model name</span>
            <input value={name} required disabled={busy} onInput={(e) => setName(e.currentTarget.value)} data-testid="upload-name" />
          </label>
          <label class="field field-grow">
            <span>Description (optional)</span>
            <input value={description} disabled={busy} onInput={(e) => setDescription(e.currentTarget.value)} data-testid="upload-description" />
          </label>
        </div>
        {localSha && (
          <p class="small">
            SHA-256 (computed here): <code data-testid="upload-local-sha">{localSha}</code>
          </p>
        )}
        {file && phase !== "idle" && (
          <div class="progress-wrap" data-testid="upload-progress" data-sent={sent} data-total={file.size}>
            <progress max={file.size || 1} value={sent} />
            <span class="small">
              {phase === "hashing"
                ? "Computing the checksum…"
                : phase === "registering"
                  ? "Checking the file…"
                  : `${bytes(sent)} of ${bytes(file.size)} (${pct}%)`}
            </span>
          </div>
        )}
        <InlineError error={error} testid="upload-error" />
        <div class="modal-actions">
          {phase === "paused" && (
            <button type="button" class="btn" onClick={() => void resume()} data-testid="upload-resume">
              Resume
            </button>
          )}
          {(busy || phase === "paused") && (
            <button type="button" class="btn btn-ghost" onClick={() => void cancel()} data-testid="upload-cancel">
              Cancel
            </button>
          )}
          <button type="submit" class="btn" disabled={busy || !file || !name.trim() || !canWrite} data-testid="upload-submit">
            Upload
          </button>
        </div>
      </form>
      {result && (
        <section class="card" aria-label="Uploaded version" data-testid="upload-result" data-status={result.status}>
          <h2 class="card-title">
            <a href={modelHref(result.name)} onClick={(e) => linkClick(e, modelHref(result.name))} data-testid="upload-model-link">
              {result.name}
            </a>{" "}
            version {result.version}
          </h2>
          <div class="card-body">
            <p>
              <Badge tone={result.status === "READY" ? "ok" : "bad"} testid="upload-status">
                {result.status}
              </Badge>{" "}
              {result.unsafe && <Badge tone="warn">unsafe pickle allowed by the project</Badge>}
            </p>
            <p>
              Format <strong data-testid="upload-format">{result.format ?? "-"}</strong> ({result.framework ?? "-"}),{" "}
              {bytes(result.size ?? 0)}
            </p>
            <p class="small">
              SHA-256 (server): <code data-testid="upload-server-sha">{result.sha256}</code>
              {localSha && (
                <span data-testid="upload-sha-match"> {localSha === result.sha256 ? "✓ matches" : "✗ differs"}</span>
              )}
            </p>
          </div>
        </section>
      )}
    </div>
  );
}
