// Members page: who is in the current project and in its org, with roles.
// Project admins change project roles and remove project members; org owners
// and admins do the same for the org. Everyone else sees the lists only —
// no role selects, no buttons — and the server refuses the calls anyway.
import type { ComponentChildren } from "preact";
import { useCallback, useEffect, useState } from "preact/hooks";
import { ApiError } from "../api";
import { authJSON, useAuth } from "../auth";
import { ErrorPanel, InlineError, Modal } from "../components/ui";
import { NoProject } from "../components/NoProject";
import { reloadProjects, useProject } from "../project";
import { linkClick } from "../router";

interface Member {
  user_id: string;
  username: string;
  email?: string;
  role: string;
}

type Kind = "project" | "org";

const PROJECT_ROLES = ["viewer", "editor", "admin"];
const ORG_ROLES = ["member", "admin", "owner"];

/** The server's refusal, reworded to say what was being attempted; keeps the error_code. */
function explain(e: unknown, what: string): unknown {
  if (!(e instanceof ApiError) || e.unreachable) return e;
  const msg = e.message.replace(/\.$/, "");
  return new ApiError(e.status, e.errorCode, `Could not ${what}: ${msg}.`, e.path);
}

function RemoveDialog(props: {
  kind: Kind;
  member: Member;
  scopeName: string;
  onConfirm: () => Promise<void>;
  onCancel: () => void;
}) {
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<unknown>(null);
  const go = async (e: Event) => {
    e.preventDefault();
    setBusy(true);
    setError(null);
    try {
      await props.onConfirm();
    } catch (err) {
      setError(err);
      setBusy(false);
    }
  };
  return (
    <Modal title={`Remove ${props.member.username}?`} testid="remove-dialog" onClose={props.onCancel}>
      <form onSubmit={go}>
        <p>
          {props.kind === "org"
            ? `${props.member.username} leaves the organization ${props.scopeName} and every project in it.`
            : `${props.member.username} loses their explicit role in ${props.scopeName}. As an organization member they may still read it.`}
        </p>
        <InlineError error={error} testid="remove-error" />
        <div class="modal-actions">
          <button type="button" class="btn btn-ghost" onClick={props.onCancel} data-testid="remove-cancel">
            Cancel
          </button>
          <button type="submit" class="btn btn-danger" disabled={busy} data-testid="remove-confirm">
            Remove
          </button>
        </div>
      </form>
    </Modal>
  );
}

function AddProjectMember(props: { candidates: Member[]; onAdd: (userId: string, role: string) => Promise<void> }) {
  const [userId, setUserId] = useState("");
  const [role, setRole] = useState("viewer");
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<unknown>(null);
  const chosen = props.candidates.some((c) => c.user_id === userId) ? userId : "";
  const submit = async (e: Event) => {
    e.preventDefault();
    if (!chosen) return;
    setBusy(true);
    setError(null);
    try {
      await props.onAdd(chosen, role);
      setUserId("");
    } catch (err) {
      setError(err);
    } finally {
      setBusy(false);
    }
  };
  return (
    <form class="card form-card" onSubmit={submit} aria-label="Add a project member" data-testid="project-member-add-form">
      <div class="form-row">
        <label class="field field-grow">
          <span>Organization member</span>
          <select
            required
            value={chosen}
            onChange={(e) => setUserId(e.currentTarget.value)}
            data-testid="project-member-add-user"
          >
            <option value="">
              {props.candidates.length ? "Choose someone…" : "Everyone in the organization is already listed"}
            </option>
            {props.candidates.map((c) => (
              <option key={c.user_id} value={c.user_id}>
                {c.username}
                {c.email ? ` (${c.email})` : ""}
              </option>
            ))}
          </select>
        </label>
        <label class="field">
          <span>Role</span>
          <select value={role} onChange={(e) => setRole(e.currentTarget.value)} data-testid="project-member-add-role">
            {PROJECT_ROLES.map((r) => (
              <option key={r} value={r}>
                {r}
              </option>
            ))}
          </select>
        </label>
        <button type="submit" class="btn" disabled={busy || !chosen} data-testid="project-member-add-submit">
          {busy ? "Adding…" : "Add to project"}
        </button>
      </div>
      <InlineError error={error} testid="project-member-add-error" />
    </form>
  );
}

function MemberTable(props: {
  kind: Kind;
  members: Member[] | null;
  roles: string[];
  canWrite: boolean;
  /** Roles this user may hand out (org admins cannot make owners). */
  grantable: string[];
  meId: string | undefined;
  busyId: string | null;
  /** Bumped after a refused change, so the selects show the server's roles again. */
  generation: number;
  onRole: (m: Member, role: string) => void;
  onRemove: (m: Member) => void;
}) {
  const { kind, members } = props;
  return (
    <div class="table-wrap">
      <table class="table" data-testid={`${kind}-members-table`}>
        <thead>
          <tr>
            <th>User</th>
            <th>E-mail</th>
            <th>Role</th>
            {props.canWrite && <th class="actions-col" aria-label="Actions" />}
          </tr>
        </thead>
        <tbody>
          {members?.map((m) => (
            <tr key={m.user_id} data-testid={`${kind}-member-row`} data-user-id={m.user_id} data-role={m.role}>
              <td class="strong" data-testid={`${kind}-member-name`}>
                {m.username}
                {m.user_id === props.meId && <span class="you"> (you)</span>}
              </td>
              <td data-testid={`${kind}-member-email`}>{m.email ?? "—"}</td>
              <td>
                {props.canWrite ? (
                  <select
                    key={`${m.user_id}:${m.role}:${props.generation}`}
                    class="role-select"
                    aria-label={`Role of ${m.username}`}
                    value={m.role}
                    disabled={props.busyId === m.user_id}
                    onChange={(e) => props.onRole(m, e.currentTarget.value)}
                    data-testid={`${kind}-member-role-select`}
                  >
                    {props.roles.map((r) => (
                      <option key={r} value={r} disabled={r !== m.role && !props.grantable.includes(r)}>
                        {r}
                      </option>
                    ))}
                  </select>
                ) : (
                  <span class="chip" data-testid={`${kind}-member-role`}>
                    {m.role}
                  </span>
                )}
              </td>
              {props.canWrite && (
                <td class="actions-col">
                  <button
                    type="button"
                    class="btn btn-small btn-ghost btn-ghost-danger"
                    disabled={props.busyId === m.user_id}
                    onClick={() => props.onRemove(m)}
                    data-testid={`${kind}-member-remove`}
                  >
                    Remove
                  </button>
                </td>
              )}
            </tr>
          ))}
        </tbody>
      </table>
      {members !== null && members.length === 0 && (
        <p class="empty" data-testid={`${kind}-members-empty`}>
          {kind === "project" ? "No explicit project members." : "No members."}
        </p>
      )}
      {members === null && <p class="empty">Loading…</p>}
    </div>
  );
}

/** One list (project or org members) with its load, role change and removal. */
function useMembers(kind: Kind, scopeId: string | null) {
  const [members, setMembers] = useState<Member[] | null>(null);
  const [loadError, setLoadError] = useState<unknown>(null);
  const base = scopeId ? `/api/v1/${kind === "org" ? "orgs" : "projects"}/${encodeURIComponent(scopeId)}/members` : null;

  const load = useCallback(async () => {
    if (!base) return;
    try {
      const r = await authJSON<{ members: Member[] }>("GET", base);
      setMembers(r.members);
      setLoadError(null);
    } catch (e) {
      setLoadError(e);
    }
  }, [base]);

  useEffect(() => {
    setMembers(null);
    setLoadError(null);
    void load();
  }, [load]);

  return { members, loadError, load, base };
}

function Section(props: {
  kind: Kind;
  title: string;
  subtitle: string;
  scopeId: string;
  scopeName: string;
  canWrite: boolean;
  roles: string[];
  grantable: string[];
  /** Called after a change so the other list (and the user's own roles) catch up. */
  onChanged: () => void;
  reloadKey: number;
  extra?: (members: Member[] | null, add: (userId: string, role: string) => Promise<void>) => ComponentChildren;
  actions?: ComponentChildren;
}) {
  const { user } = useAuth();
  const { members, loadError, load, base } = useMembers(props.kind, props.scopeId);
  const [busyId, setBusyId] = useState<string | null>(null);
  const [error, setError] = useState<unknown>(null);
  const [generation, setGeneration] = useState(0);
  const [removing, setRemoving] = useState<Member | null>(null);

  useEffect(() => {
    if (props.reloadKey > 0) void load();
  }, [props.reloadKey]);

  const put = async (userId: string, role: string) => {
    await authJSON("PUT", `${base}/${encodeURIComponent(userId)}`, { role });
    await load();
    props.onChanged();
  };

  const changeRole = async (m: Member, role: string) => {
    if (role === m.role) return;
    setBusyId(m.user_id);
    setError(null);
    try {
      await put(m.user_id, role);
    } catch (e) {
      setError(explain(e, `make ${m.username} ${role === "admin" || role === "owner" ? "an" : "a"} ${role}`));
      setGeneration((g) => g + 1);
      await load();
    } finally {
      setBusyId(null);
    }
  };

  const remove = async (m: Member) => {
    try {
      await authJSON("DELETE", `${base}/${encodeURIComponent(m.user_id)}`);
    } catch (e) {
      throw explain(e, `remove ${m.username}`);
    }
    setRemoving(null);
    setError(null);
    await load();
    props.onChanged();
  };

  const add = async (userId: string, role: string) => {
    try {
      await put(userId, role);
    } catch (e) {
      throw explain(e, "add the member");
    }
  };

  return (
    <section class="section" aria-labelledby={`${props.kind}-members-title`} data-testid={`${props.kind}-members`}>
      <div class="section-head">
        <div>
          <h2 class="section-title" id={`${props.kind}-members-title`}>
            {props.title}
          </h2>
          <p class="muted">{props.subtitle}</p>
        </div>
        {props.actions}
      </div>
      {props.canWrite && props.extra?.(members, add)}
      <InlineError error={error} testid={`${props.kind}-member-error`} />
      {loadError !== null && <ErrorPanel error={loadError} onRetry={() => void load()} />}
      <MemberTable
        kind={props.kind}
        members={members}
        roles={props.roles}
        canWrite={props.canWrite}
        grantable={props.grantable}
        meId={user?.id}
        busyId={busyId}
        generation={generation}
        onRole={(m, r) => void changeRole(m, r)}
        onRemove={setRemoving}
      />
      {removing && (
        <RemoveDialog
          kind={props.kind}
          member={removing}
          scopeName={props.scopeName}
          onConfirm={() => remove(removing)}
          onCancel={() => setRemoving(null)}
        />
      )}
    </section>
  );
}

export function Members() {
  const pv = useProject();
  // A change in one list can change the other (leaving the org leaves its
  // projects), and one's own roles: reload both and the project list.
  const [orgReload, setOrgReload] = useState(0);
  const [projectReload, setProjectReload] = useState(0);
  const [orgMembers, setOrgMembers] = useState<Member[] | null>(null);

  const p = pv.current;
  useEffect(() => setOrgMembers(null), [p?.org_id]);
  // The add form offers org members; keep a copy of the org list for it.
  useEffect(() => {
    if (!p) return;
    let live = true;
    authJSON<{ members: Member[] }>("GET", `/api/v1/orgs/${encodeURIComponent(p.org_id)}/members`)
      .then((r) => live && setOrgMembers(r.members))
      .catch(() => live && setOrgMembers([]));
    return () => void (live = false);
  }, [p?.org_id, orgReload, projectReload]);

  const header = (
    <div class="page-header">
      <div>
        <h1 class="page-title">Members</h1>
        <p class="page-subtitle">
          {p ? (
            <>
              People in <strong data-testid="members-project-name">{p.name}</strong> and its organization{" "}
              <strong data-testid="members-org-name">{p.org_name ?? p.org_id}</strong>. Your role:{" "}
              <span class="chip" data-testid="members-my-role">
                {p.role}
              </span>
              {pv.orgRole && (
                <>
                  {" "}
                  in the project,{" "}
                  <span class="chip" data-testid="members-my-org-role">
                    {pv.orgRole}
                  </span>{" "}
                  in the organization.
                </>
              )}
            </>
          ) : (
            "People in the current project and its organization."
          )}
        </p>
      </div>
    </div>
  );

  if (!p) {
    return (
      <div class="page" data-testid="members-page">
        {header}
        <NoProject pv={pv} hint="Ask an organization owner or admin for an invitation." />
      </div>
    );
  }

  const ownerAllowed = pv.isAdmin || pv.orgRole === "owner";
  const changed = (which: Kind) => () => {
    if (which === "org") setProjectReload((n) => n + 1);
    else setOrgReload((n) => n + 1);
    void reloadProjects();
  };

  return (
    <div class="page" data-testid="members-page" data-project-id={p.id}>
      {header}
      <Section
        key={`project:${p.id}`}
        kind="project"
        title={`Project ${p.name}`}
        subtitle={
          pv.canAdminProject
            ? "Explicit project roles. Organization owners and admins administer every project of the organization."
            : "Explicit project roles. Only project admins can change them."
        }
        scopeId={p.id}
        scopeName={p.name}
        canWrite={pv.canAdminProject}
        roles={PROJECT_ROLES}
        grantable={PROJECT_ROLES}
        onChanged={changed("project")}
        reloadKey={projectReload}
        extra={(members, add) => (
          <AddProjectMember
            candidates={(orgMembers ?? []).filter((o) => !(members ?? []).some((m) => m.user_id === o.user_id))}
            onAdd={add}
          />
        )}
      />
      <Section
        key={`org:${p.org_id}`}
        kind="org"
        title={`Organization ${p.org_name ?? p.org_id}`}
        subtitle={
          pv.canAdminOrg
            ? "Organization roles. New people join through an invitation; an organization keeps at least one owner."
            : "Organization roles. Only owners and admins can change them."
        }
        scopeId={p.org_id}
        scopeName={p.org_name ?? p.org_id}
        canWrite={pv.canAdminOrg}
        roles={ORG_ROLES}
        grantable={ownerAllowed ? ORG_ROLES : ORG_ROLES.filter((r) => r !== "owner")}
        onChanged={changed("org")}
        reloadKey={orgReload}
        actions={
          pv.canAdminOrg && (
            <a
              class="btn btn-small"
              href="/invitations"
              onClick={(e) => linkClick(e, "/invitations")}
              data-testid="members-invite"
            >
              Invite people
            </a>
          )
        }
      />
    </div>
  );
}
