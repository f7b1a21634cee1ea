// Invitations page (org owners and admins): invite someone by e-mail to the
// org or to one of its projects, see every invitation with its status, and
// revoke pending ones. When the server cannot send mail it answers a
// single-use link, shown here with a copy button for the inviter to pass on.
import { useCallback, useEffect, useMemo, useState } from "preact/hooks";
import { ApiError } from "../api";
import { authJSON } from "../auth";
import { Badge, ErrorPanel, InlineError, Modal } from "../components/ui";
import type { Tone } from "../components/ui";
import { formatShort, formatTimestamp } from "../format";
import { useProject } from "../project";
import type { ProjectView } from "../project";

interface Invitation {
  id: string;
  email: string;
  role: string;
  project_id?: string;
  project_name?: string;
  invited_by?: string;
  invited_by_username?: string;
  created_at: number;
  expires_at: number;
  accepted_at?: number;
  revoked_at?: number;
  status?: string;
}

/** What POST .../invitations answers; older servers sent accept_url and emailed instead. */
interface Created {
  id: string;
  delivery?: "email" | "link";
  link?: string;
  delivery_error?: string;
  accept_url?: string;
  emailed?: boolean;
}

interface Member {
  user_id: string;
  username: string;
}

interface OrgChoice {
  id: string;
  name: string;
  role: string;
}

const PROJECT_ROLES = ["viewer", "editor", "admin"];
const ORG_ROLES = ["member", "admin", "owner"];

function statusOf(i: Invitation, now: number): string {
  if (i.status) return i.status;
  if (i.revoked_at) return "revoked";
  if (i.accepted_at) return "accepted";
  if (i.expires_at <= now) return "expired";
  return "pending";
}

function tone(status: string): Tone {
  return status === "accepted" ? "ok" : status === "pending" ? "warn" : status === "revoked" ? "bad" : "neutral";
}

function when(ms?: number) {
  return ms ? (
    <span class="nowrap" title={formatTimestamp(ms)}>
      {formatShort(ms)}
    </span>
  ) : (
    "—"
  );
}

/** The current project's org, when this user may invite to it (owner, admin, or server admin). */
function currentOrg(pv: ProjectView): OrgChoice | null {
  const p = pv.current;
  if (!p || !pv.canAdminOrg) return null;
  return { id: p.org_id, name: p.org_name ?? p.org_id, role: pv.orgRole ?? "server admin" };
}

function InviteForm(props: { org: OrgChoice; pv: ProjectView; onCreated: (c: Created, email: string) => void }) {
  const projects = (props.pv.projects ?? []).filter((p) => p.org_id === props.org.id);
  const ownerAllowed = props.pv.isAdmin || props.org.role === "owner";
  const [email, setEmail] = useState("");
  const [target, setTarget] = useState("");
  const [role, setRole] = useState("member");
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<unknown>(null);

  const projectId = projects.some((p) => p.id === target) ? target : "";
  const roles = projectId ? PROJECT_ROLES : ORG_ROLES.filter((r) => r !== "owner" || ownerAllowed);
  const chosenRole = roles.includes(role) ? role : roles[0]!;

  const submit = async (e: Event) => {
    e.preventDefault();
    setBusy(true);
    setError(null);
    try {
      const body: Record<string, string> = { email: email.trim(), role: chosenRole };
      if (projectId) body.project_id = projectId;
      const c = await authJSON<Created>("POST", `/api/v1/orgs/${encodeURIComponent(props.org.id)}/invitations`, body);
      props.onCreated(c, email.trim());
      setEmail("");
    } catch (err) {
      setError(err);
    } finally {
      setBusy(false);
    }
  };

  return (
    <form class="card form-card" onSubmit={submit} aria-label="Invite someone" data-testid="invite-form">
      <h2 class="card-title">Invite someone to {props.org.name}</h2>
      <div class="form-row">
        <label class="field field-grow">
          <span>E-mail</span>
          <input
            type="email"
            required
            maxLength={254}
            placeholder="name@example.com"
            value={email}
            onInput={(e) => setEmail(e.currentTarget.value)}
            data-testid="invite-email"
          />
        </label>
        <label class="field">
          <span>To</span>
          <select
            value={projectId}
            onChange={(e) => {
              const v = e.currentTarget.value;
              setTarget(v);
              setRole(v ? "viewer" : "member");
            }}
            data-testid="invite-target"
          >
            <option value="">the organization</option>
            {projects.map((p) => (
              <option key={p.id} value={p.id}>
                project {p.name}
              </option>
            ))}
          </select>
        </label>
        <label class="field">
          <span>Role</span>
          <select value={chosenRole} onChange={(e) => setRole(e.currentTarget.value)} data-testid="invite-role">
            {roles.map((r) => (
              <option key={r} value={r}>
                {r}
              </option>
            ))}
          </select>
        </label>
        <button type="submit" class="btn" disabled={busy} data-testid="invite-submit">
          {busy ? "Inviting…" : "Send invitation"}
        </button>
      </div>
      <p class="muted">
        {projectId
          ? "A project invitation also makes them a member of the organization."
          : "Organization owners and admins administer every project of the organization."}
      </p>
      <InlineError error={error} testid="invite-error" />
    </form>
  );
}

function CreatedNotice(props: { created: Created; email: string; onClose: () => void }) {
  const c = props.created;
  const link = c.link ?? c.accept_url;
  const delivery = c.delivery ?? (c.emailed ? "email" : "link");
  const [copied, setCopied] = useState("");
  const copy = async () => {
    if (!link) return;
    try {
      await navigator.clipboard.writeText(link);
      setCopied("Copied");
    } catch {
      const el = document.querySelector<HTMLElement>("[data-testid=invite-link]");
      if (el) window.getSelection()?.selectAllChildren(el);
      setCopied("Press Ctrl+C to copy");
    }
  };
  return (
    <div class="card form-card" role="status" data-testid="invite-result" data-delivery={delivery}>
      <h2 class="card-title">Invitation created</h2>
      {delivery === "email" ? (
        <p class="success" data-testid="invite-emailed">
          An invitation was e-mailed to {props.email}.
        </p>
      ) : (
        <>
          {c.delivery_error && (
            <p class="warning" data-testid="invite-delivery-error">
              The e-mail could not be sent ({c.delivery_error}). Pass the link on yourself.
            </p>
          )}
          <p>
            Send this link to {props.email}. It works once, for the invited address's account, until it expires; it is not
            shown again.
          </p>
          {link && (
            <div class="key-box">
              <code data-testid="invite-link">{link}</code>
              <button type="button" class="btn btn-small" onClick={() => void copy()} data-testid="invite-copy">
                Copy
              </button>
            </div>
          )}
          <p class="muted" aria-live="polite" data-testid="invite-copy-status">
            {copied}
          </p>
        </>
      )}
      <div class="modal-actions">
        <button type="button" class="btn btn-ghost" onClick={props.onClose} data-testid="invite-result-close">
          Done
        </button>
      </div>
    </div>
  );
}

function RevokeDialog(props: { inv: Invitation; orgId: string; onDone: () => void; onCancel: () => void }) {
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<unknown>(null);
  const go = async (e: Event) => {
    e.preventDefault();
    setBusy(true);
    setError(null);
    try {
      await authJSON(
        "DELETE",
        `/api/v1/orgs/${encodeURIComponent(props.orgId)}/invitations/${encodeURIComponent(props.inv.id)}`,
      );
      props.onDone();
    } catch (err) {
      setError(err);
      setBusy(false);
    }
  };
  return (
    <Modal title={`Revoke the invitation for ${props.inv.email}?`} testid="revoke-invite-dialog" onClose={props.onCancel}>
      <form onSubmit={go}>
        <p>The link stops working at once. You can invite the same address again later.</p>
        <InlineError error={error} testid="revoke-invite-error" />
        <div class="modal-actions">
          <button type="button" class="btn btn-ghost" onClick={props.onCancel} data-testid="revoke-invite-cancel">
            Cancel
          </button>
          <button type="submit" class="btn btn-danger" disabled={busy} data-testid="revoke-invite-confirm">
            Revoke
          </button>
        </div>
      </form>
    </Modal>
  );
}

export function Invitations() {
  const pv = useProject();
  // The page works on the current project's org, like Members; the switcher changes it.
  const org = useMemo(() => currentOrg(pv), [pv.current?.org_id, pv.canAdminOrg, pv.orgRole]);

  const [list, setList] = useState<Invitation[] | null>(null);
  const [next, setNext] = useState<string | undefined>(undefined);
  const [status, setStatus] = useState("");
  const [listError, setListError] = useState<unknown>(null);
  const [unsupported, setUnsupported] = useState(false);
  const [names, setNames] = useState<Record<string, string>>({});
  const [created, setCreated] = useState<{ c: Created; email: string } | null>(null);
  const [revoking, setRevoking] = useState<Invitation | null>(null);

  const load = useCallback(
    async (pageToken?: string) => {
      if (!org) return;
      const q = new URLSearchParams();
      if (status) q.set("status", status);
      if (pageToken) q.set("page_token", pageToken);
      const qs = q.toString();
      try {
        const r = await authJSON<{ invitations: Invitation[]; next_page_token?: string }>(
          "GET",
          `/api/v1/orgs/${encodeURIComponent(org.id)}/invitations${qs ? `?${qs}` : ""}`,
        );
        setList((p) => (pageToken && p ? [...p, ...r.invitations] : r.invitations));
        setNext(r.next_page_token);
        setListError(null);
        setUnsupported(false);
      } catch (e) {
        if (e instanceof ApiError && (e.errorCode === "ENDPOINT_NOT_FOUND" || e.status === 405)) setUnsupported(true);
        else setListError(e);
      }
    },
    [org?.id, status],
  );

  useEffect(() => {
    setList(null);
    setListError(null);
    void load();
  }, [load]);
  useEffect(() => setCreated(null), [org?.id]);

  // Inviters are shown by name when they are (still) in the org.
  useEffect(() => {
    if (!org) return;
    let live = true;
    authJSON<{ members: Member[] }>("GET", `/api/v1/orgs/${encodeURIComponent(org.id)}/members`)
      .then((r) => live && setNames(Object.fromEntries(r.members.map((m) => [m.user_id, m.username]))))
      .catch(() => undefined);
    return () => void (live = false);
  }, [org?.id]);

  const header = (
    <div class="page-header">
      <div>
        <h1 class="page-title">Invitations</h1>
        <p class="page-subtitle">
          Invite people by e-mail to {org ? <strong data-testid="invitations-org-name">{org.name}</strong> : "an organization"} or
          one of its projects.
        </p>
      </div>
    </div>
  );

  if (!org) {
    return (
      <div class="page" data-testid="invitations-page">
        {header}
        {pv.error !== null ? (
          <ErrorPanel error={pv.error} />
        ) : pv.projects === null ? (
          <p class="muted">Loading…</p>
        ) : (
          <div class="notice" role="alert" data-testid="invitations-not-allowed">
            <strong>Only organization owners and admins can invite people.</strong>
            <p>
              {pv.current
                ? `Your role in ${pv.current.org_name ?? "this organization"} is ${pv.orgRole ?? "none"}. Ask an owner or admin to invite the person, or switch to a project of an organization you administer.`
                : "You are not in any project yet."}
            </p>
          </div>
        )}
      </div>
    );
  }

  const projectName = (id?: string) => pv.projects?.find((p) => p.id === id)?.name ?? (id ? id.slice(0, 8) : "");
  const now = Date.now();

  return (
    <div class="page" data-testid="invitations-page" data-org-id={org.id}>
      {header}
      {created ? (
        <CreatedNotice created={created.c} email={created.email} onClose={() => setCreated(null)} />
      ) : (
        <InviteForm
          key={org.id}
          org={org}
          pv={pv}
          onCreated={(c, email) => {
            setCreated({ c, email });
            void load();
          }}
        />
      )}

      <div class="filters">
        <label class="field">
          <span>Status</span>
          <select value={status} onChange={(e) => setStatus(e.currentTarget.value)} data-testid="invitations-status-filter">
            <option value="">any</option>
            {["pending", "accepted", "expired", "revoked"].map((st) => (
              <option key={st} value={st}>
                {st}
              </option>
            ))}
          </select>
        </label>
      </div>
      {listError !== null && <ErrorPanel error={listError} onRetry={() => void load()} />}
      {unsupported ? (
        <p class="muted" data-testid="invitations-unsupported">
          This server does not list invitations yet.
        </p>
      ) : (
        <div class="table-wrap">
          <table class="table" data-testid="invitations-table">
            <thead>
              <tr>
                <th>E-mail</th>
                <th>Role</th>
                <th>Invited by</th>
                <th>Created</th>
                <th>Expires</th>
                <th>Status</th>
                <th class="actions-col" aria-label="Actions" />
              </tr>
            </thead>
            <tbody>
              {list?.map((i) => {
                const st = statusOf(i, now);
                return (
                  <tr key={i.id} data-testid="invitation-row" data-invitation-id={i.id} data-status={st}>
                    <td class="strong" data-testid="invitation-email">
                      {i.email}
                    </td>
                    <td data-testid="invitation-role">
                      <span class="chip">{i.role}</span>
                      <span class="muted">{i.project_id ? ` in project ${i.project_name ?? projectName(i.project_id)}` : " in the organization"}</span>
                    </td>
                    <td data-testid="invitation-invited-by">
                      {i.invited_by_username ??
                        (i.invited_by ? names[i.invited_by] ?? <code title={i.invited_by}>{i.invited_by.slice(0, 8)}</code> : "—")}
                    </td>
                    <td>{when(i.created_at)}</td>
                    <td>{when(i.expires_at)}</td>
                    <td>
                      <Badge tone={tone(st)} testid="invitation-status">
                        {st}
                      </Badge>
                      {st === "accepted" && <div class="muted">{when(i.accepted_at)}</div>}
                    </td>
                    <td class="actions-col">
                      {st === "pending" && (
                        <button
                          type="button"
                          class="btn btn-small btn-ghost btn-ghost-danger"
                          onClick={() => setRevoking(i)}
                          data-testid="invitation-revoke"
                        >
                          Revoke
                        </button>
                      )}
                    </td>
                  </tr>
                );
              })}
            </tbody>
          </table>
          {list !== null && list.length === 0 && (
            <p class="empty" data-testid="invitations-empty">
              {status ? `No ${status} invitations.` : "No invitations yet."}
            </p>
          )}
          {list === null && listError === null && <p class="empty">Loading…</p>}
        </div>
      )}
      {next && !unsupported && (
        <div class="load-more">
          <button type="button" class="btn btn-ghost" onClick={() => void load(next)} data-testid="invitations-load-more">
            Load more
          </button>
        </div>
      )}
      {revoking && (
        <RevokeDialog
          inv={revoking}
          orgId={org.id}
          onCancel={() => setRevoking(null)}
          onDone={() => {
            setRevoking(null);
            void load();
          }}
        />
      )}
    </div>
  );
}
