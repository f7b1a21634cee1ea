// Small presentational pieces shared by pages: cards, badges, the error panel.
import type { ComponentChildren } from "preact";
import { useEffect } from "preact/hooks";
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

/** A modal dialog over a dimmed page; Escape and the backdrop close it. */
export function Modal(props: { title: string; testid?: string; onClose: () => void; children: ComponentChildren }) {
  useEffect(() => {
    const onKey = (e: KeyboardEvent) => e.key === "Escape" && props.onClose();
    window.addEventListener("keydown", onKey);
    return () => window.removeEventListener("keydown", onKey);
  }, [props.onClose]);
  return (
    <div class="modal-backdrop" onClick={(e) => e.target === e.currentTarget && props.onClose()}>
      <div class="modal" role="dialog" aria-modal="true" aria-label={props.title} data-testid={props.testid}>
        <h2 class="modal-title">{props.title}</h2>
        {props.children}
      </div>
    </div>
  );
}

/** Shows a server error's message (and code) inline, e.g. under a form. */
export function InlineError(props: { error: unknown; testid?: string }) {
  const e = props.error;
  if (!e) return null;
  const msg = e instanceof Error ? e.message : String(e);
  return (
    <p class="inline-error" role="alert" data-testid={props.testid ?? "inline-error"}>
      {msg}
      {e instanceof ApiError && e.status > 0 && <code> {e.errorCode}</code>}
    </p>
  );
}
