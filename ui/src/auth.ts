// Signing in and authenticated requests.
//
// Session storage choice (interim): browser cookie sessions are not built on
// the server yet, so the access and refresh tokens live in sessionStorage
// (per tab, gone when the tab closes) and go out as `Authorization: Bearer`.
// This is readable by any script on the origin; cookie sessions (HttpOnly,
// with CSRF tokens) replace it once the server offers them.
//
// Refresh tokens are single use and a reused one revokes its whole family, so
// refreshes are serialized: one in flight at a time, everyone awaits it.
import { useEffect, useState } from "preact/hooks";
import { ApiError, request, toApiError } from "./api";
import { navigate } from "./router";

export interface User {
  id: string;
  username: string;
  email?: string;
  display_name?: string;
  is_admin: boolean;
  must_change_password?: boolean;
  created_at: number;
}

export interface WhoAmI {
  user: User;
  auth: { kind: string; scopes: string[]; project_id?: string; key_id?: string };
}

interface Session {
  access_token: string;
  refresh_token: string;
  /** Wall-clock ms when the access token expires. */
  expires_at: number;
}

interface TokenResponse {
  access_token: string;
  refresh_token: string;
  expires_in: number;
}

export interface AuthState {
  session: Session | null;
  user: User | null;
}

const STORAGE_KEY = "kiln.session";
/** Refresh this long before the access token expires. */
const REFRESH_MARGIN_MS = 60_000;

let state: AuthState = { session: loadSession(), user: null };
const listeners = new Set<(s: AuthState) => void>();
let refreshing: Promise<boolean> | null = null;
let refreshTimer: ReturnType<typeof setTimeout> | undefined;

function loadSession(): Session | null {
  try {
    const raw = sessionStorage.getItem(STORAGE_KEY);
    if (!raw) return null;
    const s = JSON.parse(raw) as Session;
    return typeof s.access_token === "string" && typeof s.refresh_token === "string" ? s : null;
  } catch {
    return null;
  }
}

function setState(next: Partial<AuthState>): void {
  state = { ...state, ...next };
  listeners.forEach((l) => l(state));
}

function storeSession(t: TokenResponse): void {
  const session: Session = {
    access_token: t.access_token,
    refresh_token: t.refresh_token,
    expires_at: Date.now() + Math.max(0, t.expires_in) * 1000,
  };
  sessionStorage.setItem(STORAGE_KEY, JSON.stringify(session));
  setState({ session });
  scheduleRefresh();
}

function clearSession(): void {
  clearTimeout(refreshTimer);
  sessionStorage.removeItem(STORAGE_KEY);
  setState({ session: null, user: null });
}

function scheduleRefresh(): void {
  clearTimeout(refreshTimer);
  const s = state.session;
  if (!s) return;
  const wait = Math.max(1000, s.expires_at - Date.now() - REFRESH_MARGIN_MS);
  refreshTimer = setTimeout(() => void refreshSession(), wait);
}

export function getAuth(): AuthState {
  return state;
}

export function useAuth(): AuthState {
  const [s, set] = useState(state);
  useEffect(() => {
    listeners.add(set);
    set(state);
    return () => void listeners.delete(set);
  }, []);
  return s;
}

/** Leaves for the login page, remembering where the user was. */
function toLogin(): void {
  const here = window.location.pathname;
  navigate(here === "/login" ? here : `/login?next=${encodeURIComponent(here)}`);
}

/**
 * Trades the refresh token for a new pair. Concurrent callers share one
 * request. Resolves false (and signs out locally) when the server refuses it.
 */
export function refreshSession(): Promise<boolean> {
  if (refreshing) return refreshing;
  const s = state.session;
  if (!s) return Promise.resolve(false);
  refreshing = (async () => {
    try {
      const r = await request("/api/v1/auth/token", jsonInit("POST", { refresh_token: s.refresh_token }));
      if (r.ok) {
        storeSession(r.body as TokenResponse);
        return true;
      }
      clearSession();
      toLogin();
      return false;
    } catch {
      // No answer: keep the session and try again shortly.
      refreshTimer = setTimeout(() => void refreshSession(), 10_000);
      return false;
    } finally {
      refreshing = null;
    }
  })();
  return refreshing;
}

function jsonInit(method: string, body?: unknown, token?: string): RequestInit {
  const headers: Record<string, string> = {};
  if (body !== undefined) headers["Content-Type"] = "application/json";
  if (token) headers["Authorization"] = `Bearer ${token}`;
  const init: RequestInit = { method, headers };
  if (body !== undefined) init.body = JSON.stringify(body);
  return init;
}

/**
 * An authenticated JSON request: refreshes first when the access token is
 * about to expire, and once more after a 401; a failed refresh returns to
 * the login page.
 */
export async function authJSON<T>(method: string, path: string, body?: unknown, signal?: AbortSignal): Promise<T> {
  if (!state.session) {
    toLogin();
    throw new ApiError(401, "UNAUTHENTICATED", "Sign in to continue.", path);
  }
  if (state.session.expires_at - Date.now() < 5000) await refreshSession();
  const send = (token: string | undefined) => {
    const init = jsonInit(method, body, token);
    if (signal) init.signal = signal;
    return request(path, init);
  };
  let used = state.session?.access_token;
  let r = await send(used);
  if (r.status === 401 && state.session) {
    // Another caller may have refreshed meanwhile; only refresh if not.
    const ok = state.session.access_token !== used ? true : await refreshSession();
    if (ok && state.session) {
      used = state.session.access_token;
      r = await send(used);
    }
  }
  if (r.status === 401) {
    clearSession();
    toLogin();
  }
  if (!r.ok) throw toApiError(path, r);
  return r.body as T;
}

/** Loads the signed-in user (whoami) into the auth state. */
export async function loadUser(): Promise<User | null> {
  if (!state.session) return null;
  try {
    const w = await authJSON<WhoAmI>("GET", "/api/v1/auth/whoami");
    setState({ user: w.user });
    return w.user;
  } catch {
    return null;
  }
}

/** Password grant. Throws ApiError; a 429 carries retryAfter seconds. */
export async function signIn(username: string, password: string): Promise<User | null> {
  const path = "/api/v1/auth/token";
  const r = await request(path, jsonInit("POST", { username, password }));
  if (!r.ok) {
    const err = toApiError(path, r) as ApiError & { retryAfter?: number };
    if (r.status === 429) err.retryAfter = Number(r.headers.get("Retry-After") ?? "") || 1;
    throw err;
  }
  storeSession(r.body as TokenResponse);
  return loadUser();
}

/** Revokes the refresh token family on the server, then forgets the session. */
export async function signOut(): Promise<void> {
  const s = state.session;
  clearSession();
  if (s) {
    try {
      await request("/api/v1/auth/logout", jsonInit("POST", { refresh_token: s.refresh_token }));
    } catch {
      // The tokens are gone from this tab either way.
    }
  }
  navigate("/login");
}

// A session carried over a reload: schedule its refresh and load the user.
if (state.session) {
  scheduleRefresh();
  void loadUser();
}
