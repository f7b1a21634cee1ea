// Small presentational pieces shared by pages: cards, badges, the error panel.
import type { ComponentChildren } from "preact";
import { ApiError } from "../api";

export type Tone = "ok" | "warn" | "bad" | "neutral";

export function Badge(props: { tone: Tone; testid?: string; children: ComponentChildren }) {
  return (
    <span class={`badge badge-${props.tone}`} data-testid={props.testid} data-tone={props.tone}>
      <span class="badge-dot" aria-hidden="true" />
      {props.children}
    </span>
  );
}

export function Card(props: { title: string; testid?: string; children: ComponentChildren }) {
  return (
    <section class="card" data-testid={props.testid} aria-label={props.title}>
      <h2 class="card-title">{props.title}</h2>
      <div class="card-body">{props.children}</div>
    </section>
  );
}

/** Shows an ApiError (or anything thrown) with its stable error_code. */
export function ErrorPanel(props: { error: unknown; onRetry?: () => void; stale?: boolean }) {
  const e = props.error;
  const api = e instanceof ApiError ? e : null;
  const title = api?.unreachable
    ? "Cannot reach the Kiln server"
    : api
      ? "The server answered with an error"
      : "Something went wrong";
  const code = api ? api.errorCode : "client_error";
  const message = e instanceof Error ? e.message : String(e);
  return (
    <div class="error-panel" role="alert" data-testid="error-panel">
      <div class="error-head">
        <strong>{title}</strong>
        {props.onRetry && (
          <button type="button" class="btn btn-small" onClick={props.onRetry}>
            Retry
          </button>
        )}
      </div>
      <p class="error-message" data-testid="error-message">
        {message}
      </p>
      <p class="error-meta">
        <code data-testid="error-code">{code}</code>
        {api && api.status > 0 && <span> · HTTP {api.status}</span>}
        {api && <span> · {api.path}</span>}
      </p>
      {props.stale && <p class="error-hint">Values below are from the last successful check.</p>}
      {api?.unreachable && (
        <p class="error-hint">
          Check that <code>kiln server</code> is running and that this page was opened from its address.
        </p>
      )}
    </div>
  );
}
