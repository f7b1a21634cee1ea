// Accepting an invitation: the link in the invitation e-mail lands here with
// ?token=. Signed-out visitors are sent to the login page first (the shell
// keeps the query in next=). Accepting grants the roles, then the dashboard
// switches to the project (or org) the invitation was for.
import { useEffect, useState } from "preact/hooks";
import { authJSON, useAuth } from "../auth";
import { InlineError } from "../components/ui";
import { projectState, reloadProjects, selectProject } from "../project";
import { linkClick } from "../router";

/** What the server may say about the accepted invitation; every field optional. */
interface Accepted {
  org_id?: string;
  project_id?: string;
  role?: string;
  project_name?: string;
  invitation?: { org_id?: string; project_id?: string; project_name?: string; role?: string };
}

/** POST /api/v1/invitations/preview: the offer, before accepting. */
interface Preview {
  org_name?: string;
  org_display_name?: string;
  project_id?: string;
  project_name?: string;
  role: string;
  email: string;
  status: string;
  expires_at: number;
  invited_by_username?: string;
}

function tokenFromUrl(): string {
  return new URLSearchParams(window.location.search).get("token") ?? "";
}

export function AcceptInvitation() {
  const { user } = useAuth();
  const [token] = useState(tokenFromUrl);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<unknown>(null);
  const [done, setDone] = useState<{ where: string; role?: string } | null>(null);
  const [preview, setPreview] = useState<Preview | null>(null);

  useEffect(() => {
    if (!token || !user) return;
    const ctl = new AbortController();
    authJSON<{ invitation: Preview }>("POST", "/api/v1/invitations/preview", { token }, ctl.signal)
      .then((r) => setPreview(r.invitation))
      .catch((e) => {
        if (!ctl.signal.aborted) setError(e);
      });
    return () => ctl.abort();
  }, [token, user?.id]);

  const accept = async () => {
    setBusy(true);
    setError(null);
    try {
      const before = new Set((projectState().projects ?? []).map((p) => p.id));
      const r = (await authJSON<Accepted | undefined>("POST", "/api/v1/invitations/accept", { token })) ?? {};
      const info = { ...r, ...(r.invitation ?? {}) };
      await reloadProjects(info.project_id);
      // Switch to what the invitation opened: its project, else a project of
      // its org, else whichever project is new to this user.
      const now = projectState().projects ?? [];
      const target =
        now.find((p) => p.id === info.project_id) ??
        now.find((p) => p.org_id === info.org_id) ??
        now.find((p) => !before.has(p.id));
      if (target) selectProject(target.id);
      const where = target
        ? info.project_id || !info.org_id
          ? `project ${info.project_name ?? target.name} in ${target.org_name ?? "its organization"}`
          : `the organization ${target.org_name ?? ""}`
        : "the organization";
      setDone(info.role ? { where, role: info.role } : { where });
      // The token is spent: keep it out of the address bar and history.
      window.history.replaceState(null, "", "/invitations/accept");
    } catch (e) {
      setError(e);
    } finally {
      setBusy(false);
    }
  };

  return (
    <div class="page" data-testid="accept-page">
      <div class="page-header">
        <div>
          <h1 class="page-title">Invitation</h1>
          <p class="page-subtitle">Join an organization or project on this Kiln server.</p>
        </div>
      </div>
      <div class="card accept-card">
        {!token ? (
          <p class="inline-error" role="alert" data-testid="accept-no-token">
            This link has no invitation token. Open the whole link from the invitation.
          </p>
        ) : done ? (
          <>
            <p class="success" role="status" data-testid="accept-done">
              You joined {done.where}
              {done.role ? ` as ${done.role}` : ""}.
            </p>
            <p>
              <a href="/members" onClick={(e) => linkClick(e, "/members")} data-testid="accept-go-members">
                See its members
              </a>
            </p>
          </>
        ) : (
          <>
            <dl>
              {preview && (
                <>
                  <dt>Invitation to</dt>
                  <dd data-testid="accept-offer">
                    {preview.project_name ? (
                      <>
                        project <strong>{preview.project_name}</strong> in{" "}
                      </>
                    ) : (
                      "the organization "
                    )}
                    <strong>{preview.org_display_name ?? preview.org_name ?? "…"}</strong> as{" "}
                    <strong data-testid="accept-offer-role">{preview.role}</strong>
                    {preview.invited_by_username ? `, from ${preview.invited_by_username}` : ""}
                  </dd>
                  {preview.status !== "pending" && (
                    <dd>
                      <span class="inline-error" role="alert" data-testid="accept-offer-status">
                        This invitation is {preview.status}.
                      </span>
                    </dd>
                  )}
                </>
              )}
              <dt>Accept as</dt>
              <dd data-testid="accept-user">
                <strong>{user?.username ?? "…"}</strong>
                {user?.email ? ` (${user.email})` : ""}
              </dd>
            </dl>
            <p class="muted">
              Accepting gives this account the role the invitation names. Not you?{" "}
              <a href="/login" onClick={(e) => linkClick(e, `/login?next=${encodeURIComponent(`/invitations/accept?token=${token}`)}`)}>
                Sign in as someone else
              </a>
              .
            </p>
            <InlineError error={error} testid="accept-error" />
            <div class="modal-actions">
              <button type="button" class="btn" disabled={busy || !user || (preview !== null && preview.status !== "pending")} onClick={() => void accept()} data-testid="accept-submit">
                {busy ? "Accepting…" : "Accept invitation"}
              </button>
            </div>
          </>
        )}
      </div>
    </div>
  );
}
