// A run's artifact browser: the tree (MLflow's artifacts/list, one level at
// a time) and a preview of the chosen file — images, JSON (pretty-printed),
// text — read through the artifact proxy. Servers without artifacts/list get
// a note instead.
import { useEffect, useState } from "preact/hooks";
import type { FileInfo, RunInfo } from "../track";
import { artifactURL, fetchArtifact, isMissingEndpoint, listArtifacts } from "../track";
import { InlineError } from "./ui";

const IMAGE = /\.(png|jpe?g|gif|webp|svg|bmp)$/i;
const JSONX = /\.(json|jsonl)$/i;
const TEXT = /(\.(txt|log|md|csv|tsv|ya?ml|py|toml|ini|cfg|sh|html?|xml|r|sql)|\/?(MLmodel|requirements\.txt|conda\.yaml|Dockerfile|LICENSE))$/i;
const PREVIEW_BYTES = 256 * 1024;

function size(n: number | undefined): string {
  if (n === undefined) return "";
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KiB`;
  if (n < 1024 * 1024 * 1024) return `${(n / 1024 / 1024).toFixed(1)} MiB`;
  return `${(n / 1024 / 1024 / 1024).toFixed(2)} GiB`;
}

function Dir(props: {
  projectId: string;
  run: RunInfo;
  path: string;
  depth: number;
  selected: string | null;
  onSelect: (f: FileInfo) => void;
  onMissing: () => void;
}) {
  const [files, setFiles] = useState<FileInfo[] | null>(null);
  const [error, setError] = useState<unknown>(null);
  const [open, setOpen] = useState<Set<string>>(new Set());
  useEffect(() => {
    const ac = new AbortController();
    listArtifacts(props.projectId, props.run.run_id, props.path, ac.signal)
      .then((r) => setFiles([...r.files].sort((a, b) => Number(!!b.is_dir) - Number(!!a.is_dir) || a.path.localeCompare(b.path))))
      .catch((e) => {
        if (ac.signal.aborted) return;
        if (isMissingEndpoint(e)) props.onMissing();
        else setError(e);
      });
    return () => ac.abort();
  }, [props.projectId, props.run.run_id, props.path]);
  if (error) return <InlineError error={error} testid="artifacts-error" />;
  if (files === null) return <p class="muted tree-pad">Loading…</p>;
  if (files.length === 0 && props.depth === 0) return <p class="muted" data-testid="artifacts-empty">No artifacts logged.</p>;
  return (
    <ul class="tree" role={props.depth === 0 ? "tree" : "group"}>
      {files.map((f) => {
        const name = f.path.split("/").pop() ?? f.path;
        const isOpen = open.has(f.path);
        return (
          <li key={f.path} role="treeitem" aria-expanded={f.is_dir ? isOpen : undefined}>
            <button
              type="button"
              class={`tree-item${props.selected === f.path ? " active" : ""}`}
              style={{ paddingLeft: `${8 + props.depth * 14}px` }}
              onClick={() => {
                if (f.is_dir) setOpen((s) => (s.has(f.path) ? new Set([...s].filter((x) => x !== f.path)) : new Set([...s, f.path])));
                else props.onSelect(f);
              }}
              data-testid="artifact-item"
              data-path={f.path}
              data-dir={String(!!f.is_dir)}
            >
              <span aria-hidden="true">{f.is_dir ? (isOpen ? "▾ " : "▸ ") : "  "}</span>
              {name}
              {!f.is_dir && <span class="muted"> {size(f.file_size)}</span>}
            </button>
            {f.is_dir && isOpen && <Dir {...props} path={f.path} depth={props.depth + 1} />}
          </li>
        );
      })}
    </ul>
  );
}

function Preview(props: { projectId: string; run: RunInfo; file: FileInfo }) {
  const { file } = props;
  const url = artifactURL(props.run, file.path);
  const [content, setContent] = useState<{ kind: "image" | "text" | "json" | "none"; text?: string; src?: string; cut?: boolean } | null>(null);
  const [error, setError] = useState<unknown>(null);
  useEffect(() => {
    setContent(null);
    setError(null);
    const kind = IMAGE.test(file.path) ? "image" : JSONX.test(file.path) ? "json" : TEXT.test(file.path) ? "text" : "none";
    if (kind === "none") {
      setContent({ kind });
      return;
    }
    const ac = new AbortController();
    let objectURL: string | null = null;
    fetchArtifact(props.projectId, url, ac.signal)
      .then(async (blob) => {
        if (kind === "image") {
          objectURL = URL.createObjectURL(blob);
          setContent({ kind, src: objectURL });
          return;
        }
        const cut = blob.size > PREVIEW_BYTES;
        let text = await blob.slice(0, PREVIEW_BYTES).text();
        if (kind === "json" && !cut && !file.path.endsWith(".jsonl")) {
          try {
            text = JSON.stringify(JSON.parse(text), null, 2);
          } catch {
            // not valid JSON: shown as text
          }
        }
        setContent({ kind, text, cut });
      })
      .catch((e) => !ac.signal.aborted && setError(e));
    return () => {
      ac.abort();
      if (objectURL) URL.revokeObjectURL(objectURL);
    };
  }, [props.projectId, url]);
  return (
    <div class="artifact-preview" data-testid="artifact-preview" data-path={file.path}>
      <div class="section-head">
        <code>{file.path}</code>
        <span class="muted">{size(file.file_size)}</span>
      </div>
      <InlineError error={error} testid="artifact-preview-error" />
      {content?.kind === "image" && <img src={content.src} alt={file.path} data-testid="artifact-image" />}
      {(content?.kind === "text" || content?.kind === "json") && (
        <pre class="artifact-text" data-testid="artifact-text" data-kind={content.kind}>
          {content.text}
          {content.cut && "\n… (preview shows the first 256 KiB)"}
        </pre>
      )}
      {content?.kind === "none" && <p class="muted">No preview for this kind of file.</p>}
    </div>
  );
}

export function ArtifactBrowser(props: { projectId: string; run: RunInfo }) {
  const [missing, setMissing] = useState(false);
  const [file, setFile] = useState<FileInfo | null>(null);
  if (missing) {
    return (
      <p class="muted" data-testid="artifacts-unavailable">
        This server does not list artifacts yet. Artifact location: <code>{props.run.artifact_uri ?? "—"}</code>
      </p>
    );
  }
  return (
    <div class="artifacts" data-testid="artifacts">
      <div class="artifact-tree">
        <Dir
          projectId={props.projectId}
          run={props.run}
          path=""
          depth={0}
          selected={file?.path ?? null}
          onSelect={setFile}
          onMissing={() => setMissing(true)}
        />
      </div>
      {file ? <Preview projectId={props.projectId} run={props.run} file={file} /> : <p class="muted artifact-preview">Choose a file to preview it.</p>}
    </div>
  );
}
