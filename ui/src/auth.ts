// Signing in and authenticated requests.
//
// The dashboard uses the server's browser sessions: signing in sets an
// HttpOnly `kiln_session` cookie that scripts can never read, and a
// `kiln_csrf` cookie whose value every state-changing request echoes in
// `X-CSRF-Token` (a page on another site can make the browser send the
// cookie, but cannot read kiln_csrf to echo it). Nothing secret is kept in
// JavaScript-reachable storage.
import { useEffect, useState } from "preact/hooks";
import type { RawResponse } from "./api";
import { ApiError, request, toApiError } from "./api";
import { navigate } from "./router";

export interface User {
  id: string;
  username: string;
  email?: string;
  display_name?: string;
  is_admin: boolean;
  must_change_password?: boolean;
  default_project_id?: string;
  created_at: number;
}

export interface WhoAmI {
  user: User;
  auth: { kind: string; scopes: string[]; project_id?: string; key_id?: string };
}

interface Session {
  /** The CSRF token (the kiln_csrf cookie's value). */
  csrf: string;
}

interface SessionResponse {
  user: User;
  csrf_token: string;
  expires_at: number;
}

export interface AuthState {
  session: Session | null;
  user: User | null;
}

const CSRF_COOKIE = "kiln_csrf";
const SAFE_METHODS = new Set(["GET", "HEAD", "OPTIONS"]);

function readCsrfCookie(): string | null {
  for (const part of document.cookie.split(";")) {
    const [k, ...v] = part.trim().split("=");
    if (k === CSRF_COOKIE) {
      const value = v.join("=");
      return value.length > 0 ? value : null;
    }
  }
  return null;
}

function initialSession(): Session | null {
  const csrf = readCsrfCookie();
  return csrf ? { csrf } : null;
}

let state: AuthState = { session: initialSession(), user: null };
const listeners = new Set<(s: AuthState) => void>();

function setState(next: Partial<AuthState>): void {
  state = { ...state, ...next };
  listeners.forEach((l) => l(state));
}

function clearSession(): void {
  setState({ session: null, user: null });
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
  const here = window.location.pathname + window.location.search;
  navigate(window.location.pathname === "/login" ? here : `/login?next=${encodeURIComponent(here)}`);
}

function jsonInit(method: string, body?: unknown): RequestInit {
  const headers: Record<string, string> = {};
  if (body !== undefined) headers["Content-Type"] = "application/json";
  if (!SAFE_METHODS.has(method)) {
    // Read the cookie each time: another tab may have signed in again.
    const csrf = readCsrfCookie() ?? state.session?.csrf;
    if (csrf) headers["X-CSRF-Token"] = csrf;
  }
  const init: RequestInit = { method, headers, credentials: "same-origin" };
  if (body !== undefined) init.body = JSON.stringify(body);
  return init;
}

/**
 * An authenticated JSON request on the session cookie. A 401 means the
 * session ended (expired, signed out elsewhere, password changed): back to
 * the login page. `headers` adds request headers (e.g. `X-Kiln-Project`).
 */
export async function authJSON<T>(
  method: string,
  path: string,
  body?: unknown,
  signal?: AbortSignal,
  headers?: Record<string, string>,
): Promise<T> {
  if (!state.session) {
    toLogin();
    throw new ApiError(401, "UNAUTHENTICATED", "Sign in to continue.", path);
  }
  const init = jsonInit(method, body);
  if (signal) init.signal = signal;
  // Extra headers (e.g. X-Kiln-Project) never replace the CSRF token.
  if (headers) init.headers = { ...headers, ...(init.headers as Record<string, string>) };
  const r = await request(path, init);
  if (r.status === 401) {
    clearSession();
    toLogin();
  }
  if (!r.ok) throw toApiError(path, r);
  return r.body as T;
}

/**
 * Like authJSON, but answers the whole response (status, body, headers) for
 * pages that read headers or show an error next to a form themselves; only
 * a network failure throws.
 */
export async function authRequest(
  method: string,
  path: string,
  body?: unknown,
  headers?: Record<string, string>,
  signal?: AbortSignal,
): Promise<RawResponse> {
  if (!state.session) {
    toLogin();
    throw new ApiError(401, "UNAUTHENTICATED", "Sign in to continue.", path);
  }
  const init = jsonInit(method, body);
  if (signal) init.signal = signal;
  if (headers) init.headers = { ...headers, ...(init.headers as Record<string, string>) };
  const r = await request(path, init);
  if (r.status === 401) {
    clearSession();
    toLogin();
  }
  return r;
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

/** Password sign-in. Throws ApiError; a 429 carries retryAfter seconds. */
export async function signIn(username: string, password: string): Promise<User | null> {
  const path = "/api/v1/auth/session";
  const r = await request(path, jsonInit("POST", { username, password }));
  if (!r.ok) {
    const err = toApiError(path, r) as ApiError & { retryAfter?: number };
    if (r.status === 429) err.retryAfter = Number(r.headers.get("Retry-After") ?? "") || 1;
    throw err;
  }
  const s = r.body as SessionResponse;
  setState({ session: { csrf: readCsrfCookie() ?? s.csrf_token }, user: s.user });
  return s.user;
}

/** Ends the session on the server (which clears both cookies), then locally. */
export async function signOut(): Promise<void> {
  if (state.session) {
    try {
      await request("/api/v1/auth/session", jsonInit("DELETE"));
    } catch {
      // The server may be down; the local state goes either way.
    }
  }
  clearSession();
  navigate("/login");
}

// A session carried over a reload: the CSRF cookie says there may be one;
// whoami says whether it is still valid.
if (state.session) {
  void (async () => {
    const r = await request("/api/v1/auth/whoami", { credentials: "same-origin" }).catch(() => null);
    if (r && r.ok) setState({ user: (r.body as WhoAmI).user });
    else if (r && r.status === 401) clearSession();
  })();
}
