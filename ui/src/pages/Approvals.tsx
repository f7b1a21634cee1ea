// Approvals inbox (/approvals): the current project's requests to move a
// model version to Production or point a protected alias (the project's
// governance rules), pending first. Project admins approve or reject with a
// comment (approving makes the change at once); requesters cancel their own.
// Everyone in the project can read the inbox; the server refuses the rest.
import { useCallback, useEffect, useState } from "preact/hooks";
import { Badge, ErrorPanel, InlineError } from "../components/ui";
import { formatShort } from "../format";
import { useAuth } from "../auth";
import { useProject } from "../project";
import { linkClick } from "../router";
import type { ApprovalRequest, Governance } from "../registry";
import { decideApproval, getGovernance, listApprovals, setGovernance } from "../registry";
import { modelHref } from "./Models";

const STATES = ["PENDING", "APPROVED", "REJECTED", "CANCELLED", "STALE", "ALL"];

function tone(state: string): "ok" | "warn" | "bad" | "neutral" {
  return state === "APPROVED" ? "ok" : state === "PENDING" ? "warn" : state === "REJECTED" ? "bad" : "neutral";
}

export function Approvals() {
  const pv = useProject();
  const auth = useAuth();
  const pid = pv.currentId;
  const isAdmin = pv.role === "admin";
  const [state, setState] = useState("PENDING");
  const [rows, setRows] = useState<ApprovalRequest[] | null>(null);
  const [next, setNext] = useState<string | undefined>();
  const [loadError, setLoadError] = useState<unknown>(null);
  const [actionError, setActionError] = useState<unknown>(null);
  const [comments, setComments] = useState<Record<string, string>>({});
  const [busy, setBusy] = useState<string | null>(null);
  const [gov, setGov] = useState<Governance | null>(null);
  const [aliasText, setAliasText] = useState("");
  const [govMsg, setGovMsg] = useState<unknown>(null);
  const [govSaved, setGovSaved] = useState(false);

  useEffect(() => {
    if (!pid) return;
    getGovernance(pid)
      .then((g) => {
        setGov(g);
        setAliasText(g.protected_aliases.join(", "));
      })
      .catch(setGovMsg);
  }, [pid]);

  const saveGov = async (e: Event) => {
    e.preventDefault();
    if (!pid || !gov) return;
    setGovMsg(null);
    setGovSaved(false);
    try {
      const aliases = aliasText.split(",").map((a) => a.trim()).filter(Boolean);
      const g = await setGovernance(pid, { require_approval_for_production: gov.require_approval_for_production, protected_aliases: aliases });
      setGov(g);
      setAliasText(g.protected_aliases.join(", "));
      setGovSaved(true);
    } catch (err) {
      setGovMsg(err);
    }
  };

  const load = useCallback(
    async (append?: string) => {
      if (!pid) return;
      try {
        const r = await listApprovals(pid, state, append);
        const got = r.approval_requests ?? [];
        setRows((old) => (append ? [...(old ?? []), ...got] : got));
        setNext(r.next_page_token);
        setLoadError(null);
      } catch (e) {
        setLoadError(e);
      }
    },
    [pid, state],
  );

  useEffect(() => {
    setRows(null);
    void load();
  }, [load]);

  const decide = async (r: ApprovalRequest, verb: "approve" | "reject" | "cancel") => {
    if (!pid) return;
    setBusy(r.id);
    setActionError(null);
    try {
      await decideApproval(pid, r.id, verb, comments[r.id]);
      await load();
    } catch (e) {
      setActionError(e);
    } finally {
      setBusy(null);
    }
  };

  return (
    <div class="page" data-testid="approvals-page" data-is-admin={String(isAdmin)}>
      <div class="page-header">
        <div>
          <h1 class="page-title">Approvals</h1>
          <p class="page-subtitle">
            Requests to move a model version to Production or to point a protected alias, where the project asks for
            approval. Project admins decide; approving makes the change.
          </p>
        </div>
      </div>
      {gov && (
        <form class="card form-card" onSubmit={saveGov} aria-label="Approval rules" data-testid="governance-form">
          <h2 class="card-title">Rules of this project</h2>
          <div class="form-row">
            <label class="check">
              <input
                type="checkbox"
                checked={gov.require_approval_for_production}
                disabled={!isAdmin}
                onChange={(e) => setGov({ ...gov, require_approval_for_production: e.currentTarget.checked })}
                data-testid="governance-production"
              />
              Moving a version to Production needs approval
            </label>
            <label class="field field-grow">
              <span>Protected aliases (comma separated)</span>
              <input
                value={aliasText}
                disabled={!isAdmin}
                placeholder="champion"
                onInput={(e) => setAliasText(e.currentTarget.value)}
                data-testid="governance-aliases"
              />
            </label>
            {isAdmin && (
              <button type="submit" class="btn" data-testid="governance-save">
                Save
              </button>
            )}
          </div>
          <InlineError error={govMsg} testid="governance-error" />
          {govSaved && (
            <p class="small" data-testid="governance-saved">
              Saved.
            </p>
          )}
        </form>
      )}
      <div class="filters">
        <label class="field">
          <span>Show</span>
          <select value={state} onChange={(e) => setState(e.currentTarget.value)} data-testid="approvals-state">
            {STATES.map((s) => (
              <option key={s} value={s}>
                {s === "ALL" ? "All" : s[0] + s.slice(1).toLowerCase()}
              </option>
            ))}
          </select>
        </label>
      </div>
      <InlineError error={actionError} testid="approvals-action-error" />
      {loadError !== null && <ErrorPanel error={loadError} onRetry={() => void load()} />}
      <div class="table-wrap">
        <table class="table" data-testid="approvals-table">
          <thead>
            <tr>
              <th>Model</th>
              <th>Change</th>
              <th>State</th>
              <th>Requested by</th>
              <th>Comment</th>
              <th>Asked</th>
              <th class="actions-col" aria-label="Actions" />
            </tr>
          </thead>
          <tbody>
            {rows?.map((r) => {
              const href = modelHref(r.model_name);
              const mine = auth.user?.id !== undefined && r.requester_id === auth.user.id;
              const pending = r.state === "PENDING";
              return (
                <tr key={r.id} data-testid="approval-row" data-id={r.id} data-state={r.state}>
                  <td class="strong">
                    <a href={href} onClick={(e) => linkClick(e, href)}>
                      {r.model_name}
                    </a>{" "}
                    v{r.version}
                  </td>
                  <td>
                    {r.kind === "stage"
                      ? `stage ${r.from_stage ?? "?"} → ${r.target}${r.archive_existing_versions ? " (archive others)" : ""}`
                      : `alias @${r.target}`}
                  </td>
                  <td>
                    <Badge tone={tone(r.state)} testid="approval-state">
                      {r.state}
                    </Badge>
                    {r.decided_by_name && (
                      <div class="muted small">
                        by {r.decided_by_name}
                        {r.decision_comment ? `: ${r.decision_comment}` : ""}
                      </div>
                    )}
                  </td>
                  <td>{r.requester ?? r.requester_id}</td>
                  <td class="small">{r.comment}</td>
                  <td class="nowrap">{formatShort(r.created_at ?? 0)}</td>
                  <td class="actions-col">
                    {pending && isAdmin && (
                      <span class="inline-form">
                        <input
                          class="input-small"
                          placeholder="comment"
                          value={comments[r.id] ?? ""}
                          onInput={(e) => setComments({ ...comments, [r.id]: e.currentTarget.value })}
                          data-testid="approval-comment"
                        />
                        <button type="button" class="btn btn-small" disabled={busy === r.id} onClick={() => void decide(r, "approve")} data-testid="approval-approve">
                          Approve
                        </button>
                        <button
                          type="button"
                          class="btn btn-small btn-ghost btn-ghost-danger"
                          disabled={busy === r.id}
                          onClick={() => void decide(r, "reject")}
                          data-testid="approval-reject"
                        >
                          Reject
                        </button>
                      </span>
                    )}
                    {pending && mine && (
                      <button type="button" class="btn btn-small btn-ghost" disabled={busy === r.id} onClick={() => void decide(r, "cancel")} data-testid="approval-cancel">
                        Cancel
                      </button>
                    )}
                  </td>
                </tr>
              );
            })}
          </tbody>
        </table>
        {rows !== null && rows.length === 0 && (
          <p class="empty" data-testid="approvals-empty">
            No {state === "ALL" ? "" : state.toLowerCase() + " "}requests.
          </p>
        )}
        {rows === null && loadError === null && <p class="empty">Loading…</p>}
      </div>
      {next && (
        <div class="load-more">
          <button type="button" class="btn btn-ghost" onClick={() => void load(next)}>
            Load more
          </button>
        </div>
      )}
    </div>
  );
}
