// Experiments page: the current project's experiments (MLflow's
// experiments/search), with the view type (active, deleted, all) and a name
// search. Editors create, rename, delete and restore; viewers see the list
// only, and the server refuses the calls anyway.
import { useCallback, useEffect, useState } from "preact/hooks";
import { ErrorPanel, InlineError, Modal } from "../components/ui";
import { formatShort } from "../format";
import { NoProject } from "../components/NoProject";
import { useProject } from "../project";
import { linkClick } from "../router";
import type { Experiment, ViewType } from "../track";
import { mlflow, searchExperiments } from "../track";

/** Text for inside a quoted ILIKE pattern: %, _ and \ match themselves. */
function likeLiteral(s: string): string {
  const pattern = s.replace(/[\\%_]/g, (c) => "\\" + c);
  // In the string literal a backslash is written doubled, a quote doubled.
  return pattern.replace(/\\/g, "\\\\").replace(/'/g, "''");
}

function RenameDialog(props: { exp: Experiment; onSave: (name: string) => Promise<void>; onClose: () => void }) {
  const [name, setName] = useState(props.exp.name);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<unknown>(null);
  const submit = async (e: Event) => {
    e.preventDefault();
    setBusy(true);
    setError(null);
    try {
      await props.onSave(name.trim());
    } catch (err) {
      setError(err);
      setBusy(false);
    }
  };
  return (
    <Modal title={`Rename ${props.exp.name}`} testid="experiment-rename-dialog" onClose={props.onClose}>
      <form onSubmit={submit}>
        <label class="field">
          <span>New name</span>
          <input value={name} required onInput={(e) => setName(e.currentTarget.value)} data-testid="experiment-rename-input" />
        </label>
        <InlineError error={error} testid="experiment-rename-error" />
        <div class="modal-actions">
          <button type="button" class="btn btn-ghost" onClick={props.onClose}>
            Cancel
          </button>
          <button type="submit" class="btn" disabled={busy || !name.trim()} data-testid="experiment-rename-save">
            Rename
          </button>
        </div>
      </form>
    </Modal>
  );
}

export function Experiments() {
  const pv = useProject();
  const pid = pv.currentId;
  const canWrite = pv.role === "editor" || pv.role === "admin";
  const [viewType, setViewType] = useState<ViewType>("ACTIVE_ONLY");
  const [search, setSearch] = useState("");
  const [applied, setApplied] = useState("");
  const [rows, setRows] = useState<Experiment[] | null>(null);
  const [next, setNext] = useState<string | undefined>();
  const [loadError, setLoadError] = useState<unknown>(null);
  const [actionError, setActionError] = useState<unknown>(null);
  const [newName, setNewName] = useState("");
  const [creating, setCreating] = useState(false);
  const [createError, setCreateError] = useState<unknown>(null);
  const [renaming, setRenaming] = useState<Experiment | null>(null);
  const [busyId, setBusyId] = useState<string | null>(null);

  const filter = applied.trim() ? `name ILIKE '%${likeLiteral(applied.trim())}%'` : "";

  const load = useCallback(
    async (append?: string) => {
      if (!pid) return;
      try {
        const r = await searchExperiments(pid, { viewType, filter, pageToken: append });
        setRows((old) => (append ? [...(old ?? []), ...r.experiments] : r.experiments));
        setNext(r.next_page_token);
        setLoadError(null);
      } catch (e) {
        setLoadError(e);
      }
    },
    [pid, viewType, filter],
  );

  useEffect(() => {
    setRows(null);
    void load();
  }, [load]);

  const act = async (exp: Experiment, path: string, body: Record<string, unknown>) => {
    if (!pid) return;
    setBusyId(exp.experiment_id);
    setActionError(null);
    try {
      await mlflow(pid, "POST", path, body);
      await load();
    } catch (e) {
      setActionError(e);
    } finally {
      setBusyId(null);
    }
  };

  const create = async (e: Event) => {
    e.preventDefault();
    if (!pid || !newName.trim()) return;
    setCreating(true);
    setCreateError(null);
    try {
      await mlflow(pid, "POST", "experiments/create", { name: newName.trim() });
      setNewName("");
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
        <h1 class="page-title">Experiments</h1>
        <p class="page-subtitle">
          {pv.current ? (
            <>
              Experiments in <strong data-testid="experiments-project-name">{pv.current.name}</strong>. Log runs with the
              MLflow client or the Kiln SDK.
            </>
          ) : (
            "Experiments in the current project."
          )}
        </p>
      </div>
    </div>
  );

  if (!pv.current || !pid) {
    return (
      <div class="page" data-testid="experiments-page">
        {header}
        <NoProject pv={pv} />
      </div>
    );
  }

  return (
    <div class="page" data-testid="experiments-page" data-project-id={pid} data-can-write={String(canWrite)}>
      {header}
      {canWrite && (
        <form class="card form-card" onSubmit={create} aria-label="Create an experiment" data-testid="experiment-create-form">
          <div class="form-row">
            <label class="field field-grow">
              <span>New experiment</span>
              <input
                value={newName}
                placeholder="e.g. churn-xgboost"
                onInput={(e) => setNewName(e.currentTarget.value)}
                data-testid="experiment-create-name"
              />
            </label>
            <button type="submit" class="btn" disabled={creating || !newName.trim()} data-testid="experiment-create-submit">
              {creating ? "Creating…" : "Create"}
            </button>
          </div>
          <InlineError error={createError} testid="experiment-create-error" />
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
          <input value={search} onInput={(e) => setSearch(e.currentTarget.value)} data-testid="experiments-search" />
        </label>
        <label class="field">
          <span>Show</span>
          <select value={viewType} onChange={(e) => setViewType(e.currentTarget.value as ViewType)} data-testid="experiments-view-type">
            <option value="ACTIVE_ONLY">Active</option>
            <option value="DELETED_ONLY">Deleted</option>
            <option value="ALL">All</option>
          </select>
        </label>
        <button type="submit" class="btn btn-ghost">
          Search
        </button>
      </form>
      <InlineError error={actionError} testid="experiments-action-error" />
      {loadError !== null && <ErrorPanel error={loadError} onRetry={() => void load()} />}
      <div class="table-wrap">
        <table class="table" data-testid="experiments-table">
          <thead>
            <tr>
              <th>Name</th>
              <th>ID</th>
              <th>Created</th>
              <th>Last update</th>
              <th>State</th>
              {canWrite && <th class="actions-col" aria-label="Actions" />}
            </tr>
          </thead>
          <tbody>
            {rows?.map((x) => {
              const deleted = x.lifecycle_stage === "deleted";
              const href = `/experiments/${encodeURIComponent(x.experiment_id)}`;
              return (
                <tr key={x.experiment_id} data-testid="experiment-row" data-experiment-id={x.experiment_id} data-name={x.name}>
                  <td class="strong">
                    <a href={href} onClick={(e) => linkClick(e, href)} data-testid="experiment-link">
                      {x.name}
                    </a>
                  </td>
                  <td>
                    <code>{x.experiment_id}</code>
                  </td>
                  <td class="nowrap">{formatShort(x.creation_time ?? 0)}</td>
                  <td class="nowrap">{formatShort(x.last_update_time ?? 0)}</td>
                  <td>
                    <span class="chip">{x.lifecycle_stage ?? "active"}</span>
                  </td>
                  {canWrite && (
                    <td class="actions-col">
                      {deleted ? (
                        <button
                          type="button"
                          class="btn btn-small btn-ghost"
                          disabled={busyId === x.experiment_id}
                          onClick={() => void act(x, "experiments/restore", { experiment_id: x.experiment_id })}
                          data-testid="experiment-restore"
                        >
                          Restore
                        </button>
                      ) : (
                        <>
                          <button
                            type="button"
                            class="btn btn-small btn-ghost"
                            disabled={busyId === x.experiment_id}
                            onClick={() => setRenaming(x)}
                            data-testid="experiment-rename"
                          >
                            Rename
                          </button>
                          <button
                            type="button"
                            class="btn btn-small btn-ghost btn-ghost-danger"
                            disabled={busyId === x.experiment_id}
                            onClick={() => void act(x, "experiments/delete", { experiment_id: x.experiment_id })}
                            data-testid="experiment-delete"
                          >
                            Delete
                          </button>
                        </>
                      )}
                    </td>
                  )}
                </tr>
              );
            })}
          </tbody>
        </table>
        {rows !== null && rows.length === 0 && (
          <p class="empty" data-testid="experiments-empty">
            No experiments{viewType === "DELETED_ONLY" ? " deleted" : ""}.
          </p>
        )}
        {rows === null && loadError === null && <p class="empty">Loading…</p>}
      </div>
      {next && (
        <div class="load-more">
          <button type="button" class="btn btn-ghost" onClick={() => void load(next)} data-testid="experiments-more">
            Load more
          </button>
        </div>
      )}
      {renaming && (
        <RenameDialog
          exp={renaming}
          onClose={() => setRenaming(null)}
          onSave={async (name) => {
            await mlflow(pid, "POST", "experiments/update", { experiment_id: renaming.experiment_id, new_name: name });
            setRenaming(null);
            await load();
          }}
        />
      )}
    </div>
  );
}
