// Audit log page (server administrators): GET /api/v1/audit, newest first,
// filtered by action and actor, paged with "Load more". Anyone else gets a
// 403 from the server, shown as a "not allowed" message.
import { useCallback, useEffect, useRef, useState } from "preact/hooks";
import { ApiError } from "../api";
import { authJSON, useAuth } from "../auth";
import { Badge, ErrorPanel } from "../components/ui";
import type { Tone } from "../components/ui";
import { formatShort, formatTimestamp } from "../format";

interface Entry {
  seq: number;
  ts: number;
  actor: string | null;
  action: string;
  target: string | null;
  client_addr: string | null;
  request_id: string | null;
  outcome: string;
}

interface AuditPage {
  entries: Entry[];
  next_page_token?: string;
}

const PAGE_SIZE = 50;
const ACTIONS = [
  "auth.login",
  "auth.refresh",
  "auth.logout",
  "user.create",
  "user.password_change",
  "user.password_reset",
  "key.create",
  "key.rotate",
  "key.revoke",
  "org.create",
  "org.member_set",
  "org.member_remove",
  "project.create",
  "project.member_set",
  "project.member_remove",
];

function outcomeTone(o: string): Tone {
  return o === "success" ? "ok" : o === "throttled" ? "warn" : o === "failure" ? "bad" : "neutral";
}

function Id(props: { id: string | null; me?: { id: string; username: string } | null }) {
  if (!props.id) return <span class="muted">—</span>;
  if (props.me && props.id === props.me.id)
    return (
      <span title={props.id}>
        {props.me.username} <span class="muted">(you)</span>
      </span>
    );
  return (
    <code title={props.id}>{props.id.length > 12 ? `${props.id.slice(0, 12)}…` : props.id}</code>
  );
}

export function Audit() {
  const { user } = useAuth();
  const [action, setAction] = useState("");
  const [actor, setActor] = useState("");
  const [entries, setEntries] = useState<Entry[]>([]);
  const [next, setNext] = useState<string | undefined>(undefined);
  const [loading, setLoading] = useState(true);
  const [loaded, setLoaded] = useState(false);
  const [error, setError] = useState<unknown>(null);
  const gen = useRef(0);
  /** The filters of the list shown; "Load more" pages with these, not the inputs' current text. */
  const applied = useRef({ action: "", actor: "" });

  const load = useCallback(async (filters: { action: string; actor: string }, pageToken?: string) => {
    const my = pageToken ? gen.current : ++gen.current;
    if (!pageToken) applied.current = filters;
    setLoading(true);
    const q = new URLSearchParams({ max_results: String(PAGE_SIZE) });
    if (filters.action.trim()) q.set("action", filters.action.trim());
    if (filters.actor.trim()) q.set("actor", filters.actor.trim());
    if (pageToken) q.set("page_token", pageToken);
    try {
      const r = await authJSON<AuditPage>("GET", `/api/v1/audit?${q}`);
      if (my !== gen.current) return;
      setEntries((p) => (pageToken ? [...p, ...r.entries] : r.entries));
      setNext(r.next_page_token);
      setError(null);
      setLoaded(true);
    } catch (e) {
      if (my === gen.current) setError(e);
    } finally {
      if (my === gen.current) setLoading(false);
    }
  }, []);

  useEffect(() => void load({ action: "", actor: "" }), [load]);

  if (error instanceof ApiError && error.status === 403) {
    return (
      <div class="page" data-testid="audit-page">
        <div class="page-header">
          <div>
            <h1 class="page-title">Audit log</h1>
          </div>
        </div>
        <div class="notice" role="alert" data-testid="not-allowed">
          <strong>You are not allowed to view the audit log.</strong>
          <p>Only server administrators can read it. {error.message}</p>
        </div>
      </div>
    );
  }

  const apply = (e: Event) => {
    e.preventDefault();
    void load({ action, actor });
  };

  return (
    <div class="page" data-testid="audit-page">
      <div class="page-header">
        <div>
          <h1 class="page-title">Audit log</h1>
          <p class="page-subtitle">Sign-ins, key and user changes, newest first.</p>
        </div>
      </div>

      <form class="filters" onSubmit={apply} aria-label="Filter the audit log">
        <label class="field">
          <span>Action</span>
          <input
            list="audit-actions"
            placeholder="any action"
            value={action}
            onInput={(e) => setAction(e.currentTarget.value)}
            data-testid="audit-filter-action"
          />
          <datalist id="audit-actions">
            {ACTIONS.map((a) => (
              <option key={a} value={a} />
            ))}
          </datalist>
        </label>
        <label class="field">
          <span>Actor (user id)</span>
          <input
            placeholder="any actor"
            value={actor}
            onInput={(e) => setActor(e.currentTarget.value)}
            data-testid="audit-filter-actor"
          />
        </label>
        <button type="submit" class="btn" disabled={loading} data-testid="audit-apply">
          Apply
        </button>
        {user && (
          <button
            type="button"
            class="btn btn-ghost"
            onClick={() => {
              setActor(user.id);
              void load({ action, actor: user.id });
            }}
            data-testid="audit-mine"
          >
            Only mine
          </button>
        )}
      </form>

      {error !== null && <ErrorPanel error={error} onRetry={() => void load({ action, actor })} />}

      <div class="table-wrap">
        <table class="table" data-testid="audit-table">
          <thead>
            <tr>
              <th>Time</th>
              <th>Actor</th>
              <th>Action</th>
              <th>Target</th>
              <th>Outcome</th>
              <th>Client address</th>
            </tr>
          </thead>
          <tbody>
            {entries.map((en) => (
              <tr key={en.seq} data-testid="audit-row" data-action={en.action} data-seq={en.seq}>
                <td data-testid="audit-time" class="nowrap" title={formatTimestamp(en.ts)}>
                  {formatShort(en.ts, true)}
                </td>
                <td data-testid="audit-actor">
                  <Id id={en.actor} me={user} />
                </td>
                <td data-testid="audit-action">
                  <code>{en.action}</code>
                </td>
                <td data-testid="audit-target">
                  <Id id={en.target} me={user} />
                </td>
                <td>
                  <Badge tone={outcomeTone(en.outcome)} testid="audit-outcome">
                    {en.outcome}
                  </Badge>
                </td>
                <td data-testid="audit-client">{en.client_addr ?? "—"}</td>
              </tr>
            ))}
          </tbody>
        </table>
        {loaded && entries.length === 0 && (
          <p class="empty" data-testid="audit-empty">
            No entries match.
          </p>
        )}
        {!loaded && loading && <p class="empty">Loading…</p>}
      </div>
      {next && (
        <div class="load-more">
          <button
            type="button"
            class="btn btn-ghost"
            disabled={loading}
            onClick={() => void load(applied.current, next)}
            data-testid="audit-load-more"
          >
            {loading ? "Loading…" : "Load more"}
          </button>
        </div>
      )}
    </div>
  );
}
