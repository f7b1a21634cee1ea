// Model page: one registered model — its description (the model card), its
// aliases, and its versions with stage, status and source run. Editors move a
// version to a stage (optionally archiving the stage's other versions), point
// or remove aliases, edit the description and delete the model; viewers see
// the same without the controls, and the server refuses the calls anyway.
// Each version has a "Try it" panel (components/TryIt) that sends it a
// prediction; /models/NAME?version=V opens it directly.
import { useCallback, useEffect, useState } from "preact/hooks";
import { Badge, ErrorPanel, InlineError, Modal } from "../components/ui";
import { formatShort } from "../format";
import { useProject } from "../project";
import { linkClick, navigate } from "../router";
import { ApiError } from "../api";
import { LineageGraph } from "../components/LineageGraph";
import { TryIt } from "../components/TryIt";
import { Markdown } from "../components/Markdown";
import { useAuth } from "../auth";
import type { Lineage, ModelVersion, RegisteredModel, UploadedVersion, VersionComment } from "../registry";
import {
  deleteAlias,
  deleteModel,
  getModel,
  modelVersions,
  setAlias,
  STAGES,
  stageTone,
  transitionStage,
  addComment,
  deleteComment,
  editComment,
  lineage,
  listComments,
  requestApproval,
  updateDescription,
  versionScan,
} from "../registry";

interface ChangeAsk {
  version: string;
  stage?: string;
  alias?: string;
  archive_existing_versions?: boolean;
}

/** ?version=N opens that version's "Try it" panel (links from the Serving page). */
function versionFromQuery(): string | null {
  const v = new URLSearchParams(window.location.search).get("version");
  return v && v.trim() ? v.trim() : null;
}

function modelNameFromPath(): string {
  const m = /^\/models\/(.+?)\/*$/.exec(window.location.pathname);
  return m ? decodeURIComponent(m[1]) : "";
}

function StageControl(props: { v: ModelVersion; onMove: (stage: string, archive: boolean) => Promise<void> }) {
  const [stage, setStage] = useState(props.v.current_stage ?? "None");
  const [archive, setArchive] = useState(false);
  const [busy, setBusy] = useState(false);
  const active = stage === "Staging" || stage === "Production";
  return (
    <span class="inline-form">
      <select
        value={stage}
        onChange={(e) => setStage(e.currentTarget.value)}
        data-testid="version-stage-select"
        aria-label={`Stage for version ${props.v.version}`}
      >
        {STAGES.map((s) => (
          <option key={s} value={s}>
            {s}
          </option>
        ))}
      </select>
      {active && (
        <label class="check">
          <input type="checkbox" checked={archive} onChange={(e) => setArchive(e.currentTarget.checked)} data-testid="version-archive-existing" />
          archive others in {stage}
        </label>
      )}
      <button
        type="button"
        class="btn btn-small"
        disabled={busy || stage === (props.v.current_stage ?? "None")}
        data-testid="version-stage-apply"
        onClick={async () => {
          setBusy(true);
          try {
            await props.onMove(stage, active && archive);
          } finally {
            setBusy(false);
          }
        }}
      >
        Move
      </button>
    </span>
  );
}

function AliasControl(props: { v: ModelVersion; onSet: (alias: string) => Promise<void> }) {
  const [alias, setAliasText] = useState("");
  const [busy, setBusy] = useState(false);
  return (
    <form
      class="inline-form"
      onSubmit={async (e) => {
        e.preventDefault();
        if (!alias.trim()) return;
        setBusy(true);
        try {
          await props.onSet(alias.trim());
          setAliasText("");
        } finally {
          setBusy(false);
        }
      }}
    >
      <input
        class="input-small"
        value={alias}
        placeholder="alias"
        onInput={(e) => setAliasText(e.currentTarget.value)}
        data-testid="version-alias-input"
        aria-label={`Alias for version ${props.v.version}`}
      />
      <button type="submit" class="btn btn-small btn-ghost" disabled={busy || !alias.trim()} data-testid="version-alias-set">
        Set
      </button>
    </form>
  );
}

export function Model() {
  const pv = useProject();
  const pid = pv.currentId;
  const canWrite = pv.role === "editor" || pv.role === "admin";
  const name = modelNameFromPath();
  const [model, setModel] = useState<RegisteredModel | null>(null);
  const [versions, setVersions] = useState<ModelVersion[] | null>(null);
  const [loadError, setLoadError] = useState<unknown>(null);
  const [actionError, setActionError] = useState<unknown>(null);
  const [editing, setEditing] = useState(false);
  const [desc, setDesc] = useState("");
  const [confirmDelete, setConfirmDelete] = useState(false);
  const [picked, setPicked] = useState<string[]>([]); /* versions to compare */
  const [scan, setScan] = useState<UploadedVersion | null>(null);
  const [tryVersion, setTryVersion] = useState<string | null>(versionFromQuery);
  const [graph, setGraph] = useState<{ version: string; g: Lineage } | null>(null);
  const [thread, setThread] = useState<{ version: string; items: VersionComment[] } | null>(null);
  const [draft, setDraft] = useState("");
  const [editing2, setEditing2] = useState<{ id: string; body: string } | null>(null);
  const auth = useAuth();
  /* a governed change the server refused with APPROVAL_REQUIRED: offer to ask */
  const [needsApproval, setNeedsApproval] = useState<ChangeAsk | null>(null);
  const [askComment, setAskComment] = useState("");
  const [asked, setAsked] = useState<string | null>(null);

  const load = useCallback(async () => {
    if (!pid || !name) return;
    try {
      const [m, vs] = await Promise.all([getModel(pid, name), modelVersions(pid, name)]);
      setModel(m);
      setVersions(vs);
      setLoadError(null);
    } catch (e) {
      setLoadError(e);
    }
  }, [pid, name]);

  useEffect(() => {
    setModel(null);
    setVersions(null);
    void load();
  }, [load]);

  useEffect(() => {
    setTryVersion(versionFromQuery());
  }, [name]);

  useEffect(() => {
    if (tryVersion && versions) document.querySelector('[data-testid="tryit"]')?.scrollIntoView({ block: "nearest" });
  }, [tryVersion, versions !== null]);

  const act = async (fn: () => Promise<unknown>, change?: ChangeAsk) => {
    setActionError(null);
    setNeedsApproval(null);
    setAsked(null);
    try {
      await fn();
      await load();
    } catch (e) {
      setActionError(e);
      if (change && e instanceof ApiError && e.errorCode === "APPROVAL_REQUIRED") setNeedsApproval(change);
    }
  };

  const ask = async () => {
    if (!pid || !needsApproval) return;
    try {
      const body: Parameters<typeof requestApproval>[1] = { name, ...needsApproval };
      if (askComment.trim()) body.comment = askComment.trim();
      const r = await requestApproval(pid, body);
      setAsked(r.id);
      setNeedsApproval(null);
      setActionError(null);
      setAskComment("");
    } catch (e) {
      setActionError(e);
    }
  };

  /* versions with a source run, picked, in the table's order; one column per run */
  const pickedRuns = (versions ?? []).filter((v) => v.run_id && picked.includes(v.version));
  const seenRuns = new Set<string>();
  const cols = pickedRuns.filter((v) => !seenRuns.has(v.run_id!) && seenRuns.add(v.run_id!));
  const compareHref =
    `/compare?runs=${cols.map((v) => encodeURIComponent(v.run_id!)).join(",")}` +
    `&labels=${cols.map((v) => encodeURIComponent(`${name} v${v.version}`)).join(",")}`;

  return (
    <div class="page" data-testid="model-page" data-name={name} data-can-write={String(canWrite)}>
      <div class="page-header">
        <div>
          <p class="crumbs">
            <a href="/models" onClick={(e) => linkClick(e, "/models")} data-testid="models-crumb">
              Models
            </a>{" "}
            /
          </p>
          <h1 class="page-title" data-testid="model-name">
            {name}
          </h1>
          {model && (
            <p class="page-subtitle">
              Registered {formatShort(model.creation_timestamp ?? 0)} · updated {formatShort(model.last_updated_timestamp ?? 0)}
            </p>
          )}
        </div>
        {canWrite && model && (
          <button type="button" class="btn btn-ghost btn-ghost-danger" onClick={() => setConfirmDelete(true)} data-testid="model-delete">
            Delete model
          </button>
        )}
      </div>
      {loadError !== null && <ErrorPanel error={loadError} onRetry={() => void load()} />}
      <InlineError error={actionError} testid="model-action-error" />
      {needsApproval && (
        <div class="notice" data-testid="approval-needed">
          <p>
            This project asks for approval before{" "}
            {needsApproval.stage ? `moving v${needsApproval.version} to ${needsApproval.stage}` : `pointing @${needsApproval.alias} at v${needsApproval.version}`}.
          </p>
          <span class="inline-form">
            <input
              class="input-small"
              style={{ width: "24em" }}
              placeholder="why (optional)"
              value={askComment}
              onInput={(e) => setAskComment(e.currentTarget.value)}
              data-testid="approval-request-comment"
            />
            <button type="button" class="btn btn-small" onClick={() => void ask()} data-testid="approval-request">
              Request approval
            </button>
          </span>
        </div>
      )}
      {asked && (
        <div class="notice" data-testid="approval-requested">
          Approval requested. A project admin decides in{" "}
          <a href="/approvals" onClick={(e) => linkClick(e, "/approvals")}>
            Approvals
          </a>
          .
        </div>
      )}
      <div class="card-stack">
      {model && (
        <section class="card" aria-label="Model card" data-testid="model-card">
          <h2 class="card-title">Model card</h2>
          <div class="card-body">
            {editing ? (
              <form
                onSubmit={(e) => {
                  e.preventDefault();
                  void act(async () => {
                    await updateDescription(pid!, name, desc);
                    setEditing(false);
                  });
                }}
              >
                <textarea rows={8} class="textarea" value={desc} onInput={(e) => setDesc(e.currentTarget.value)} data-testid="model-description-input" />
                <div class="modal-actions">
                  <button type="button" class="btn btn-ghost" onClick={() => setEditing(false)}>
                    Cancel
                  </button>
                  <button type="submit" class="btn" data-testid="model-description-save">
                    Save
                  </button>
                </div>
              </form>
            ) : (
              <>
                {model.description ? (
                  <Markdown text={model.description} testid="model-description" />
                ) : (
                  <p class="muted" data-testid="model-description">
                    No description yet. Editors can write a model card in Markdown.
                  </p>
                )}
                {canWrite && (
                  <button
                    type="button"
                    class="btn btn-small btn-ghost"
                    onClick={() => {
                      setDesc(model.description ?? "");
                      setEditing(true);
                    }}
                    data-testid="model-description-edit"
                  >
                    Edit
                  </button>
                )}
              </>
            )}
            {(model.tags ?? []).length > 0 && (
              <p>
                {(model.tags ?? []).map((t) => (
                  <span key={t.key} class="chip" data-testid="model-tag">
                    {t.key}={t.value}
                  </span>
                ))}
              </p>
            )}
          </div>
        </section>
      )}
      {model && (
        <section class="card" aria-label="Aliases" data-testid="model-aliases">
          <h2 class="card-title">Aliases</h2>
          <div class="card-body">
            {(model.aliases ?? []).length === 0 && <p class="muted">No aliases. Point one at a version below.</p>}
            {(model.aliases ?? []).map((a) => (
              <span key={a.alias} class="chip" data-testid="alias-chip" data-alias={a.alias} data-version={a.version}>
                @{a.alias} → v{a.version}
                {canWrite && (
                  <button
                    type="button"
                    class="chip-x"
                    aria-label={`Remove alias ${a.alias}`}
                    data-testid="alias-remove"
                    onClick={() => void act(() => deleteAlias(pid!, name, a.alias))}
                  >
                    ×
                  </button>
                )}
              </span>
            ))}
          </div>
        </section>
      )}
      </div>
      <div class="section-head">
        <h2 class="section-title">Versions</h2>
        <a
          class={`btn btn-small${cols.length < 2 ? " btn-disabled" : ""}`}
          href={compareHref}
          aria-disabled={cols.length < 2}
          onClick={(e) => {
            if (cols.length < 2) e.preventDefault();
            else linkClick(e, compareHref);
          }}
          data-testid="versions-compare"
          title="Compare the picked versions' source runs: params, metrics and charts side by side"
        >
          Compare source runs{cols.length ? ` (${cols.length})` : ""}
        </a>
      </div>
      <div class="table-wrap">
        <table class="table" data-testid="versions-table">
          <thead>
            <tr>
              <th class="check-col" aria-label="Pick to compare" />
              <th>Version</th>
              <th>Stage</th>
              <th>Aliases</th>
              <th>Status</th>
              <th>Source run</th>
              <th>Created</th>
              {canWrite && <th>Move to stage</th>}
              {canWrite && <th>Alias</th>}
            </tr>
          </thead>
          <tbody>
            {versions?.map((v) => {
              const runHref = v.run_id ? `/runs/${encodeURIComponent(v.run_id)}` : "";
              return (
                <tr key={v.version} data-testid="version-row" data-version={v.version} data-stage={v.current_stage ?? "None"}>
                  <td class="check-col">
                    {v.run_id && (
                      <input
                        type="checkbox"
                        checked={picked.includes(v.version)}
                        aria-label={`Compare version ${v.version}`}
                        data-testid="version-pick"
                        onChange={(e) => {
                          const on = e.currentTarget.checked;
                          setPicked((old) => (on ? [...old, v.version] : old.filter((x) => x !== v.version)));
                        }}
                      />
                    )}
                  </td>
                  <td class="strong">
                    v{v.version}{" "}
                    <button
                      type="button"
                      class="btn btn-small btn-ghost"
                      data-testid="version-lineage"
                      onClick={() => void act(async () => setGraph({ version: v.version, g: await lineage(pid!, name, v.version) }))}
                    >
                      Lineage
                    </button>
                    <button
                      type="button"
                      class="btn btn-small btn-ghost"
                      data-testid="version-tryit"
                      title="Send a prediction to this version"
                      onClick={() => setTryVersion(v.version)}
                    >
                      Try it
                    </button>
                    <button
                      type="button"
                      class="btn btn-small btn-ghost"
                      data-testid="version-comments"
                      onClick={() => void act(async () => setThread({ version: v.version, items: await listComments(pid!, name, v.version) }))}
                    >
                      Comments
                    </button>
                  </td>
                  <td>
                    <Badge tone={stageTone(v.current_stage)} testid="version-stage">
                      {v.current_stage ?? "None"}
                    </Badge>
                  </td>
                  <td>
                    {(v.aliases ?? []).map((a) => (
                      <span key={a} class="chip" data-testid="version-alias">
                        @{a}
                      </span>
                    ))}
                  </td>
                  <td title={v.status_message}>
                    <Badge tone={v.status === "READY" ? "ok" : v.status === "FAILED_REGISTRATION" ? "bad" : "warn"} testid="version-status">
                      {v.status ?? "READY"}
                    </Badge>
                  </td>
                  <td>
                    {v.source?.startsWith("kiln-upload:") ? (
                      <button
                        type="button"
                        class="btn btn-small btn-ghost"
                        data-testid="version-scan"
                        onClick={() => void act(async () => setScan(await versionScan(pid!, name, v.version)))}
                      >
                        Uploaded file · scan report
                      </button>
                    ) : v.run_id ? (
                      <a href={runHref} onClick={(e) => linkClick(e, runHref)} data-testid="version-run-link">
                        <code>{v.run_id.slice(0, 8)}</code>
                      </a>
                    ) : (
                      <span class="muted small" title={v.source}>
                        {v.source}
                      </span>
                    )}
                  </td>
                  <td class="nowrap">{formatShort(v.creation_timestamp ?? 0)}</td>
                  {canWrite && (
                    <td>
                      <StageControl
                        key={`${v.version}:${v.current_stage ?? "None"}`}
                        v={v}
                        onMove={(stage, archive) =>
                          act(() => transitionStage(pid!, name, v.version, stage, archive), {
                            version: v.version,
                            stage,
                            archive_existing_versions: archive,
                          })
                        }
                      />
                    </td>
                  )}
                  {canWrite && (
                    <td>
                      <AliasControl v={v} onSet={(alias) => act(() => setAlias(pid!, name, alias, v.version), { version: v.version, alias })} />
                    </td>
                  )}
                </tr>
              );
            })}
          </tbody>
        </table>
        {versions !== null && versions.length === 0 && (
          <p class="empty" data-testid="versions-empty">
            No versions yet.
          </p>
        )}
        {versions === null && loadError === null && <p class="empty">Loading…</p>}
      </div>
      {tryVersion && pid && (
        <TryIt
          key={`${pid}:${name}:${tryVersion}`}
          pid={pid}
          projectName={pv.current?.name ?? pid}
          name={name}
          version={tryVersion}
          onClose={() => setTryVersion(null)}
        />
      )}
      {thread && (
        <section class="card" aria-label="Comments" data-testid="comments" data-version={thread.version}>
          <h2 class="card-title">Comments · v{thread.version}</h2>
          <div class="card-body">
            {thread.items.length === 0 && <p class="muted">No comments yet.</p>}
            {thread.items.map((c) => {
              const mine = c.author_id === auth.user?.id;
              const reload = async () => setThread({ version: thread.version, items: await listComments(pid!, name, thread.version) });
              return (
                <div key={c.id} class="comment" data-testid="comment" data-id={c.id}>
                  <p class="muted small">
                    {c.author ?? c.author_id} · {formatShort(c.created_at)}
                    {c.updated_at !== c.created_at ? " (edited)" : ""}
                  </p>
                  {editing2?.id === c.id ? (
                    <span class="inline-form">
                      <input
                        class="input-small"
                        style={{ width: "30em" }}
                        value={editing2.body}
                        onInput={(e) => setEditing2({ id: c.id, body: e.currentTarget.value })}
                        data-testid="comment-edit-input"
                      />
                      <button
                        type="button"
                        class="btn btn-small"
                        data-testid="comment-edit-save"
                        onClick={() =>
                          void act(async () => {
                            await editComment(pid!, name, thread.version, c.id, editing2.body);
                            setEditing2(null);
                            await reload();
                          })
                        }
                      >
                        Save
                      </button>
                    </span>
                  ) : (
                    <p class="prewrap" data-testid="comment-body">
                      {c.body}
                    </p>
                  )}
                  {mine && editing2?.id !== c.id && (
                    <button type="button" class="btn btn-small btn-ghost" data-testid="comment-edit" onClick={() => setEditing2({ id: c.id, body: c.body })}>
                      Edit
                    </button>
                  )}
                  {(mine || pv.role === "admin") && (
                    <button
                      type="button"
                      class="btn btn-small btn-ghost btn-ghost-danger"
                      data-testid="comment-delete"
                      onClick={() =>
                        void act(async () => {
                          await deleteComment(pid!, name, thread.version, c.id);
                          await reload();
                        })
                      }
                    >
                      Delete
                    </button>
                  )}
                </div>
              );
            })}
            {canWrite && (
              <form
                class="inline-form"
                onSubmit={(e) => {
                  e.preventDefault();
                  if (!draft.trim()) return;
                  void act(async () => {
                    await addComment(pid!, name, thread.version, draft.trim());
                    setDraft("");
                    setThread({ version: thread.version, items: await listComments(pid!, name, thread.version) });
                  });
                }}
              >
                <input
                  class="input-small"
                  style={{ width: "30em" }}
                  placeholder="Add a comment"
                  value={draft}
                  onInput={(e) => setDraft(e.currentTarget.value)}
                  data-testid="comment-input"
                />
                <button type="submit" class="btn btn-small" disabled={!draft.trim()} data-testid="comment-submit">
                  Comment
                </button>
              </form>
            )}
            <p>
              <button type="button" class="btn btn-small btn-ghost" onClick={() => setThread(null)}>
                Close
              </button>
            </p>
          </div>
        </section>
      )}
      {graph && (
        <section class="card" aria-label="Lineage" data-testid="lineage" data-version={graph.version}>
          <h2 class="card-title">Lineage · v{graph.version}</h2>
          <div class="card-body lineage-wrap">
            <LineageGraph graph={graph.g} />
            {graph.g.truncated && <p class="muted small">Some datasets were left out (more than 500).</p>}
            <p>
              <button type="button" class="btn btn-small btn-ghost" onClick={() => setGraph(null)}>
                Close
              </button>
            </p>
          </div>
        </section>
      )}
      {scan && (
        <section class="card" aria-label="Scan report" data-testid="scan-report" data-version={scan.version}>
          <h2 class="card-title">Scan report · v{scan.version}</h2>
          <div class="card-body">
            <p>
              <Badge tone={scan.status === "READY" ? (scan.unsafe ? "warn" : "ok") : "bad"}>{scan.status}</Badge>{" "}
              format <strong data-testid="scan-format">{scan.format ?? "-"}</strong> ({scan.framework ?? "-"}),{" "}
              {scan.size ?? 0} bytes
            </p>
            <p class="small">
              SHA-256 <code>{scan.sha256}</code>
            </p>
            {scan.status_message && <p class="small">{scan.status_message}</p>}
            <MalwareLine malware={scan.scan?.["malware"]} />
            <pre class="pre-json" data-testid="scan-json">{JSON.stringify({ scan: scan.scan, signature: scan.signature }, null, 2)}</pre>
            <button type="button" class="btn btn-small btn-ghost" onClick={() => setScan(null)}>
              Close
            </button>
          </div>
        </section>
      )}
      {confirmDelete && (
        <Modal title={`Delete ${name}?`} testid="model-delete-dialog" onClose={() => setConfirmDelete(false)}>
          <p>The model, all its versions, tags and aliases are deleted. This cannot be undone.</p>
          <div class="modal-actions">
            <button type="button" class="btn btn-ghost" onClick={() => setConfirmDelete(false)}>
              Cancel
            </button>
            <button
              type="button"
              class="btn btn-danger"
              data-testid="model-delete-confirm"
              onClick={() =>
                void act(async () => {
                  await deleteModel(pid!, name);
                  setConfirmDelete(false);
                  navigate("/models");
                })
              }
            >
              Delete
            </button>
          </div>
        </Modal>
      )}
    </div>
  );
}

/** The clamd verdict stored with an uploaded version (absent: the server has no --clamd). */
function MalwareLine(props: { malware: unknown }) {
  const m = (props.malware ?? null) as { status?: string; signature?: string; engine?: string; message?: string } | null;
  return (
    <p class="small" data-testid="scan-malware" data-status={m?.status ?? "none"}>
      Malware scan:{" "}
      {!m ? (
        "not configured on this server"
      ) : m.status === "clean" ? (
        <Badge tone="ok">clean</Badge>
      ) : m.status === "infected" ? (
        <Badge tone="bad">{`infected: ${m.signature ?? "?"}`}</Badge>
      ) : (
        <Badge tone="warn">not scanned</Badge>
      )}
      {m?.engine ? ` · ${m.engine}` : ""}
      {m?.message ? ` · ${m.message}` : ""}
    </p>
  );
}
