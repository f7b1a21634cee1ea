// Sign-in page: POST /api/v1/auth/session (cookie session). Shows the
// server's message on failure, and the wait from Retry-After when throttled.
import { useState } from "preact/hooks";
import { ApiError } from "../api";
import { signIn, useAuth } from "../auth";
import { navigate } from "../router";

function nextPath(): string {
  const n = new URLSearchParams(window.location.search).get("next");
  // Only same-origin app paths, never "//host", "/\\host" or a full URL.
  return n && n.startsWith("/") && !n.startsWith("//") && !n.startsWith("/\\") && !n.startsWith("/login")
    ? n
    : "/api-keys";
}

export function Login() {
  const { user } = useAuth();
  const [username, setUsername] = useState("");
  const [password, setPassword] = useState("");
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState("");

  const submit = async (e: Event) => {
    e.preventDefault();
    setBusy(true);
    setError("");
    try {
      await signIn(username.trim(), password);
      setPassword("");
      navigate(nextPath());
    } catch (err) {
      const retry = (err as { retryAfter?: number }).retryAfter;
      if (err instanceof ApiError && err.status === 429) setError(`Too many attempts, try again in ${retry ?? 1} s`);
      else if (err instanceof ApiError && err.unreachable) setError("Cannot reach the Kiln server.");
      else setError(err instanceof Error ? err.message : String(err));
    } finally {
      setBusy(false);
    }
  };

  return (
    <div class="page login-page" data-testid="login-page">
      <form class="card login-card" onSubmit={submit} aria-label="Sign in">
        <h1 class="page-title">Sign in to Kiln</h1>
        <p class="page-subtitle">
          {user ? `Signed in as ${user.username}; sign in again to switch accounts.` : "Use your username or e-mail."}
        </p>
        <label class="field">
          <span>Username or e-mail</span>
          <input
            name="username"
            autoComplete="username"
            required
            autoFocus
            value={username}
            onInput={(e) => setUsername(e.currentTarget.value)}
            data-testid="login-username"
          />
        </label>
        <label class="field">
          <span>Password</span>
          <input
            name="password"
            type="password"
            autoComplete="current-password"
            required
            value={password}
            onInput={(e) => setPassword(e.currentTarget.value)}
            data-testid="login-password"
          />
        </label>
        {error && (
          <p class="inline-error" role="alert" data-testid="login-error">
            {error}
          </p>
        )}
        <button type="submit" class="btn login-submit" disabled={busy} data-testid="login-submit">
          {busy ? "Signing in…" : "Sign in"}
        </button>
      </form>
    </div>
  );
}
