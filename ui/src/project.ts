// The current project: which of the signed-in user's projects the dashboard
// is looking at, and the user's role there and in its org. The choice is
// remembered per user in localStorage (it is a preference, not a secret), and
// falls back to the user's default project, then to the first one listed.
import { useEffect, useState } from "preact/hooks";
import { authJSON } from "./auth";
import type { User } from "./auth";

export type ProjectRole = "viewer" | "editor" | "admin";
export type OrgRole = "member" | "admin" | "owner";

export interface Project {
  id: string;
  org_id: string;
  org_name?: string;
  name: string;
  description?: string;
  role: ProjectRole;
  created_at: number;
}

export interface Org {
  id: string;
  name: string;
  display_name?: string;
  role?: OrgRole;
  created_at: number;
}

export interface ProjectState {
  /** null until the first list arrives (or while signed out). */
  projects: Project[] | null;
  /** The orgs the user belongs to, with their role in each. */
  orgs: Org[] | null;
  currentId: string | null;
  error: unknown;
  /** The user the lists belong to; they are dropped when it changes. */
  userId: string | null;
  isAdmin: boolean;
}

export interface ProjectView extends ProjectState {
  current: Project | null;
  /** The user's role in the current project (null without one). */
  role: ProjectRole | null;
  /** The user's role in the current project's org (null when not a member). */
  orgRole: OrgRole | null;
  /** May change project members (project admins). */
  canAdminProject: boolean;
  /** May change the current org's members and invite (org owners and admins, server admins). */
  canAdminOrg: boolean;
}

const KEY_PREFIX = "kiln.project.";

let state: ProjectState = { projects: null, orgs: null, currentId: null, error: null, userId: null, isAdmin: false };
const listeners = new Set<(s: ProjectState) => void>();
let loadGen = 0;
let lastUser: User | null = null;

function setState(next: Partial<ProjectState>): void {
  state = { ...state, ...next };
  listeners.forEach((l) => l(state));
}

function remembered(userId: string): string | null {
  try {
    return localStorage.getItem(KEY_PREFIX + userId);
  } catch {
    return null;
  }
}

function remember(userId: string, projectId: string): void {
  try {
    localStorage.setItem(KEY_PREFIX + userId, projectId);
  } catch {
    // Private mode or storage full: the choice lasts for this page only.
  }
}

/** The project to show: the remembered one, else the user's default, else the first. */
function pick(projects: Project[], preferred: (string | null | undefined)[]): string | null {
  for (const id of preferred) if (id && projects.some((p) => p.id === id)) return id;
  return projects[0]?.id ?? null;
}

/**
 * Loads the user's projects and orgs (again). Called by the shell when the
 * signed-in user changes, and by pages after something that changes access
 * (accepting an invitation, changing one's own role). `prefer` names a
 * project to switch to when it is in the new list.
 */
export async function loadProjects(user: User, prefer?: string): Promise<void> {
  const my = ++loadGen;
  lastUser = user;
  if (state.userId !== user.id) {
    setState({ projects: null, orgs: null, currentId: null, error: null, userId: user.id, isAdmin: user.is_admin });
  }
  try {
    const [p, o] = await Promise.all([
      authJSON<{ projects: Project[] }>("GET", "/api/v1/projects"),
      authJSON<{ orgs: Org[] }>("GET", "/api/v1/orgs"),
    ]);
    if (my !== loadGen) return;
    const defaultId = user.default_project_id;
    const currentId = pick(p.projects, [prefer, state.currentId, remembered(user.id), defaultId]);
    if (prefer && currentId === prefer) remember(user.id, prefer);
    setState({ projects: p.projects, orgs: o.orgs, currentId, error: null, isAdmin: user.is_admin });
  } catch (e) {
    if (my === loadGen) setState({ error: e });
  }
}

/** Reloads the lists for the user they belong to (no-op while signed out). */
export function reloadProjects(prefer?: string): Promise<void> {
  return lastUser ? loadProjects(lastUser, prefer) : Promise.resolve();
}

/** Forgets the lists (signed out); the remembered choice stays for next time. */
export function clearProjects(): void {
  loadGen++;
  lastUser = null;
  setState({ projects: null, orgs: null, currentId: null, error: null, userId: null, isAdmin: false });
}

/** The state now, outside of components (e.g. right after a reload). */
export function projectState(): ProjectState {
  return state;
}

/** Makes a project current and remembers it for this user. */
export function selectProject(id: string): void {
  if (!state.projects?.some((p) => p.id === id)) return;
  if (state.userId) remember(state.userId, id);
  setState({ currentId: id });
}

export function view(s: ProjectState): ProjectView {
  const current = s.projects?.find((p) => p.id === s.currentId) ?? null;
  const org = current ? s.orgs?.find((o) => o.id === current.org_id) : undefined;
  const orgRole = org?.role ?? null;
  return {
    ...s,
    current,
    role: current?.role ?? null,
    orgRole,
    canAdminProject: current?.role === "admin",
    canAdminOrg: current !== null && (s.isAdmin || orgRole === "owner" || orgRole === "admin"),
  };
}

export function useProject(): ProjectView {
  const [s, set] = useState(state);
  useEffect(() => {
    listeners.add(set);
    set(state);
    return () => void listeners.delete(set);
  }, []);
  return view(s);
}

/** Projects grouped by org, in the order the orgs first appear. */
export function groupByOrg(projects: Project[]): { orgId: string; orgName: string; projects: Project[] }[] {
  const groups = new Map<string, { orgId: string; orgName: string; projects: Project[] }>();
  for (const p of projects) {
    let g = groups.get(p.org_id);
    if (!g) {
      g = { orgId: p.org_id, orgName: p.org_name ?? p.org_id.slice(0, 8), projects: [] };
      groups.set(p.org_id, g);
    }
    g.projects.push(p);
  }
  return [...groups.values()].sort((a, b) => a.orgName.localeCompare(b.orgName));
}
