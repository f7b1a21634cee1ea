// Models page: the current project's registered models (MLflow's
// registered-models/search), with a name search, each model's newest version
// per stage and its aliases. Editors register new model names; versions come
// from runs (mlflow.register_model, the SDK) or uploads.
import { useCallback, useEffect, useState } from "preact/hooks";
import { Badge, ErrorPanel, InlineError } from "../components/ui";
import { formatShort } from "../format";
import { NoProject } from "../components/NoProject";
import { useProject } from "../project";
import { linkClick } from "../router";
import type { RegisteredModel } from "../registry";
import { createModel, likeLiteral, searchModels, stageTone } from "../registry";

export function modelHref(name: string): string {
  return `/models/${encodeURIComponent(name)}`;
}

export function Models() {
  const pv = useProject();
  const pid = pv.currentId;
  const canWrite = pv.role === "editor" || pv.role === "admin";
  const [search, setSearch] = useState("");
  const [applied, setApplied] = useState("");
  const [rows, setRows] = useState<RegisteredModel[] | null>(null);
  const [next, setNext] = useState<string | undefined>();
  const [loadError, setLoadError] = useState<unknown>(null);
  const [newName, setNewName] = useState("");
  const [newDesc, setNewDesc] = useState("");
  const [creating, setCreating] = useState(false);
  const [createError, setCreateError] = useState<unknown>(null);

  const filter = applied.trim() ? `name ILIKE '%${likeLiteral(applied.trim())}%'` : "";

  const load = useCallback(
    async (append?: string) => {
      if (!pid) return;
      try {
        const r = await searchModels(pid, { filter, pageToken: append });
        const got = r.registered_models ?? [];
        setRows((old) => (append ? [...(old ?? []), ...got] : got));
        setNext(r.next_page_token);
        setLoadError(null);
      } catch (e) {
        setLoadError(e);
      }
    },
    [pid, filter],
  );

  useEffect(() => {
    setRows(null);
    void load();
  }, [load]);

  const create = async (e: Event) => {
    e.preventDefault();
    if (!pid || !newName.trim()) return;
    setCreating(true);
    setCreateError(null);
    try {
      await createModel(pid, newName.trim(), newDesc.trim());
      setNewName("");
      setNewDesc("");
      await load();
    } catch (err) {
      setCreateError(err);
    } finally {
      setCreating(false);
    }
  };

  const header = (
    <div class="page-header">
      <div>
        <h1 class="page-title">Models</h1>
        <p class="page-subtitle">
          Registered models in {pv.current ? <strong>{pv.current.name}</strong> : "the current project"}. Register
          versions from runs with <code>mlflow.register_model</code> or the Kiln SDK, or upload a model file.
        </p>
      </div>
      {(pv.role === "editor" || pv.role === "admin") && (
        <a class="btn" href="/models/upload" onClick={(e) => linkClick(e, "/models/upload")} data-testid="models-upload">
          Upload a model file
        </a>
      )}
    </div>
  );

  if (!pv.current || !pid) {
    return (
      <div class="page" data-testid="models-page">
        {header}
        <NoProject pv={pv} />
      </div>
    );
  }

  return (
    <div class="page" data-testid="models-page" data-project-id={pid} data-can-write={String(canWrite)}>
      {header}
      {canWrite && (
        <form class="card form-card" onSubmit={create} aria-label="Register a model" data-testid="model-create-form">
          <div class="form-row">
            <label class="field">
              <span>New model</span>
              <input
                value={newName}
                placeholder="e.g. churn-classifier"
                onInput={(e) => setNewName(e.currentTarget.value)}
                data-testid="model-create-name"
              />
            </label>
            <label class="field field-grow">
              <span>Description (optional)</span>
              <input value={newDesc} onInput={(e) => setNewDesc(e.currentTarget.value)} data-testid="model-create-description" />
            </label>
            <button type="submit" class="btn" disabled={creating || !newName.trim()} data-testid="model-create-submit">
              {creating ? "Registering…" : "Register"}
            </button>
          </div>
          <InlineError error={createError} testid="model-create-error" />
        </form>
      )}
      <form
        class="filters"
        onSubmit={(e) => {
          e.preventDefault();
          setApplied(search);
        }}
      >
        <label class="field">
          <span>Name contains</span>
          <input value={search} onInput={(e) => setSearch(e.currentTarget.value)} data-testid="models-search" />
        </label>
        <button type="submit" class="btn btn-ghost" data-testid="models-search-submit">
          Search
        </button>
      </form>
      {loadError !== null && <ErrorPanel error={loadError} onRetry={() => void load()} />}
      <div class="table-wrap">
        <table class="table" data-testid="models-table">
          <thead>
            <tr>
              <th>Name</th>
              <th>Latest versions</th>
              <th>Aliases</th>
              <th>Tags</th>
              <th>Last update</th>
            </tr>
          </thead>
          <tbody>
            {rows?.map((m) => {
              const href = modelHref(m.name);
              return (
                <tr key={m.name} data-testid="model-row" data-name={m.name}>
                  <td class="strong">
                    <a href={href} onClick={(e) => linkClick(e, href)} data-testid="model-link">
                      {m.name}
                    </a>
                    {m.description && <div class="muted small">{m.description.split("\n")[0]}</div>}
                  </td>
                  <td>
                    {(m.latest_versions ?? []).map((v) => (
                      <span key={v.version} class="badge-gap" data-testid="model-latest" data-stage={v.current_stage}>
                        <Badge tone={stageTone(v.current_stage)}>
                          v{v.version} {v.current_stage ?? "None"}
                        </Badge>
                      </span>
                    ))}
                  </td>
                  <td>
                    {(m.aliases ?? []).map((a) => (
                      <span key={a.alias} class="chip" data-testid="model-alias">
                        @{a.alias} → v{a.version}
                      </span>
                    ))}
                  </td>
                  <td>
                    {(m.tags ?? []).map((t) => (
                      <span key={t.key} class="chip">
                        {t.key}={t.value}
                      </span>
                    ))}
                  </td>
                  <td class="nowrap">{formatShort(m.last_updated_timestamp ?? 0)}</td>
                </tr>
              );
            })}
          </tbody>
        </table>
        {rows !== null && rows.length === 0 && (
          <p class="empty" data-testid="models-empty">
            No registered models{applied.trim() ? " match" : " yet"}.
          </p>
        )}
        {rows === null && loadError === null && <p class="empty">Loading…</p>}
      </div>
      {next && (
        <div class="load-more">
          <button type="button" class="btn btn-ghost" onClick={() => void load(next)} data-testid="models-more">
            Load more
          </button>
        </div>
      )}
    </div>
  );
}
