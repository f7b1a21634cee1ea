// The app shell: header (with the signed-in user), left navigation built from
// the page registry, and the content area showing the page for the current path.
import { useEffect } from "preact/hooks";
import { signOut, useAuth } from "./auth";
import { ProjectSwitcher } from "./components/ProjectSwitcher";
import { findPage, pages } from "./pages";
import { NotFound } from "./pages/NotFound";
import { clearProjects, loadProjects, useProject } from "./project";
import { linkClick, navigate, usePath } from "./router";

export function App() {
  const path = usePath();
  const { session, user } = useAuth();
  const page = findPage(path);
  const pv = useProject();
  const needsLogin = page !== undefined && page.access !== "public" && !session;

  useEffect(() => {
    // The query goes along: an invitation link carries its token there.
    if (needsLogin) navigate(`/login?next=${encodeURIComponent(path + window.location.search)}`);
  }, [needsLogin, path]);

  // The project lists follow the signed-in user, not each token refresh.
  const signedIn = !!session;
  useEffect(() => {
    if (signedIn && user) void loadProjects(user);
    else if (!signedIn) clearProjects();
  }, [signedIn, user?.id]);

  const Page = needsLogin ? null : page?.component;
  const activeId = page?.section ?? page?.id;
  const nav = pages.filter(
    (d) =>
      !d.hidden &&
      (d.access === "public" || (d.access === "user" ? true : user?.is_admin === true)) &&
      (!d.navIf || (!!session && d.navIf(pv))),
  );

  return (
    <div class="shell" data-testid="app-shell">
      <header class="topbar">
        <a class="brand" href="/" onClick={(e) => linkClick(e, "/")}>
          <svg class="brand-mark" viewBox="0 0 32 32" aria-hidden="true">
            <path
              d="M16 5c1.5 4.5 7 7 7 13a7 7 0 0 1-14 0c0-3.2 1.8-5.2 3.4-6.8.3 2 1.1 3.3 2.4 3.8C14 11.5 14.6 8 16 5z"
              fill="currentColor"
            />
          </svg>
          <span data-testid="app-title">Kiln</span>
        </a>
        <span class="topbar-tag">MLOps platform</span>
        <div class="topbar-user">
          {session ? (
            <>
              {user && <ProjectSwitcher />}
              <span class="topbar-name" data-testid="user-name" title={user?.email}>
                {user ? user.username : "…"}
                {user?.is_admin && <span class="topbar-role">admin</span>}
              </span>
              <button type="button" class="btn btn-small btn-ghost" data-testid="sign-out" onClick={() => void signOut()}>
                Sign out
              </button>
            </>
          ) : (
            path !== "/login" && (
              <a class="topbar-link" href="/login" data-testid="sign-in-link" onClick={(e) => linkClick(e, "/login")}>
                Sign in
              </a>
            )
          )}
        </div>
      </header>
      <nav class="sidenav" aria-label="Main">
        <ul>
          {nav.map((d) => (
            <li key={d.id}>
              <a
                href={d.path}
                class={activeId === d.id ? "active" : undefined}
                aria-current={page?.id === d.id ? "page" : undefined}
                data-testid={`nav-${d.id}`}
                onClick={(e) => linkClick(e, d.path)}
              >
                {d.title}
              </a>
            </li>
          ))}
        </ul>
      </nav>
      <main class="content">{Page ? <Page /> : needsLogin ? null : <NotFound path={path} />}</main>
    </div>
  );
}
