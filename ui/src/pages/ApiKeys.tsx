// API keys page: list your keys, create one (shown once), revoke, rotate.
import { useCallback, useEffect, useState } from "preact/hooks";
import { authJSON } from "../auth";
import { Badge, ErrorPanel, InlineError, Modal } from "../components/ui";
import type { Tone } from "../components/ui";
import { formatShort, formatTimestamp } from "../format";

interface ApiKey {
  id: string;
  name: string;
  prefix: string;
  scopes: string[];
  project_id?: string;
  created_at: number;
  expires_at?: number;
  last_used_at?: number;
  revoked_at?: number;
  grace_until?: number;
}

interface NewKey {
  api_key: ApiKey;
  key: string;
}

const SCOPES = ["read", "write", "predict", "admin"] as const;

function keyStatus(k: ApiKey, now: number): { label: string; tone: Tone } {
  if (k.revoked_at && k.grace_until && k.grace_until > now) return { label: "in grace", tone: "warn" };
  if (k.revoked_at) return { label: "revoked", tone: "bad" };
  if (k.expires_at && k.expires_at <= now) return { label: "expired", tone: "neutral" };
  return { label: "active", tone: "ok" };
}

/** The end of the chosen day (local time), in ms, from an <input type="date"> value. */
function endOfDay(v: string): number {
  const [y, m, d] = v.split("-").map(Number);
  return new Date(y, m - 1, d, 23, 59, 59).getTime();
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

function CreateForm(props: { onCreated: (k: NewKey) => void }) {
  const [name, setName] = useState("");
  const [scopes, setScopes] = useState<string[]>(["read"]);
  const [expiry, setExpiry] = useState("");
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<unknown>(null);

  const toggle = (s: string) => setScopes((p) => (p.includes(s) ? p.filter((x) => x !== s) : [...p, s]));

  const submit = async (e: Event) => {
    e.preventDefault();
    setBusy(true);
    setError(null);
    try {
      const body: Record<string, unknown> = { name: name.trim(), scopes: SCOPES.filter((s) => scopes.includes(s)) };
      if (expiry) body.expires_at = endOfDay(expiry);
      const created = await authJSON<NewKey>("POST", "/api/v1/api-keys", body);
      setName("");
      setExpiry("");
      props.onCreated(created);
    } catch (err) {
      setError(err);
    } finally {
      setBusy(false);
    }
  };

  return (
    <form class="card form-card" onSubmit={submit} aria-label="Create an API key" data-testid="key-create-form">
      <h2 class="card-title">Create an API key</h2>
      <div class="form-row">
        <label class="field field-grow">
          <span>Name</span>
          <input
            required
            maxLength={200}
            placeholder="e.g. ci-pipeline"
            value={name}
            onInput={(e) => setName(e.currentTarget.value)}
            data-testid="key-name-input"
          />
        </label>
        <fieldset class="field scopes">
          <legend>Scopes</legend>
          <div class="checks">
            {SCOPES.map((s) => (
              <label key={s} class="check">
                <input
                  type="checkbox"
                  checked={scopes.includes(s)}
                  onChange={() => toggle(s)}
                  data-testid={`scope-${s}`}
                />
                {s}
              </label>
            ))}
          </div>
        </fieldset>
        <label class="field">
          <span>Expires (optional)</span>
          <input
            type="date"
            value={expiry}
            min={new Date().toISOString().slice(0, 10)}
            onInput={(e) => setExpiry(e.currentTarget.value)}
            data-testid="key-expiry-input"
          />
        </label>
        <button type="submit" class="btn" disabled={busy || scopes.length === 0} data-testid="key-create-submit">
          {busy ? "Creating…" : "Create key"}
        </button>
      </div>
      <InlineError error={error} testid="key-create-error" />
    </form>
  );
}

function NewKeyDialog(props: { created: NewKey; rotated: boolean; onClose: () => void }) {
  const [copied, setCopied] = useState("");
  const copy = async () => {
    try {
      await navigator.clipboard.writeText(props.created.key);
      setCopied("Copied");
    } catch {
      const el = document.querySelector<HTMLElement>("[data-testid=new-key-value]");
      if (el) window.getSelection()?.selectAllChildren(el);
      setCopied("Press Ctrl+C to copy");
    }
  };
  return (
    <Modal title={props.rotated ? "Key rotated" : "API key created"} testid="new-key-dialog" onClose={props.onClose}>
      <p class="warning" data-testid="new-key-warning">
        Copy this key now. It is shown only once and cannot be retrieved later.
      </p>
      <div class="key-box">
        <code data-testid="new-key-value">{props.created.key}</code>
        <button type="button" class="btn btn-small" onClick={() => void copy()} data-testid="copy-key">
          Copy
        </button>
      </div>
      <p class="muted" data-testid="copy-status" aria-live="polite">
        {copied || `Name: ${props.created.api_key.name} · prefix ${props.created.api_key.prefix}`}
      </p>
      <div class="modal-actions">
        <button type="button" class="btn" onClick={props.onClose} data-testid="new-key-close">
          Done
        </button>
      </div>
    </Modal>
  );
}

type Pending = { kind: "revoke" | "rotate"; key: ApiKey } | null;

function ConfirmDialog(props: { pending: NonNullable<Pending>; onDone: (n: NewKey | null) => void; onCancel: () => void }) {
  const { kind, key } = props.pending;
  const [grace, setGrace] = useState("3600");
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<unknown>(null);
  const go = async (e: Event) => {
    e.preventDefault();
    setBusy(true);
    setError(null);
    try {
      const path = `/api/v1/api-keys/${encodeURIComponent(key.id)}`;
      if (kind === "revoke") {
        await authJSON("DELETE", path);
        props.onDone(null);
      } else {
        props.onDone(await authJSON<NewKey>("POST", `${path}/rotate`, { grace_seconds: Number(grace) }));
      }
    } catch (err) {
      setError(err);
      setBusy(false);
    }
  };
  return (
    <Modal
      title={kind === "revoke" ? `Revoke “${key.name}”?` : `Rotate “${key.name}”`}
      testid={`${kind}-dialog`}
      onClose={props.onCancel}
    >
      <form onSubmit={go}>
        {kind === "revoke" ? (
          <p>
            Requests using <code>{key.prefix}…</code> fail immediately. This cannot be undone.
          </p>
        ) : (
          <>
            <p>
              A new key replaces <code>{key.prefix}…</code>; the old one keeps working for the grace period.
            </p>
            <label class="field">
              <span>Grace period (seconds)</span>
              <input
                type="number"
                min={0}
                step={1}
                required
                value={grace}
                onInput={(e) => setGrace(e.currentTarget.value)}
                data-testid="rotate-grace-input"
              />
            </label>
          </>
        )}
        <InlineError error={error} testid={`${kind}-error`} />
        <div class="modal-actions">
          <button type="button" class="btn btn-ghost" onClick={props.onCancel} data-testid={`${kind}-cancel`}>
            Cancel
          </button>
          <button
            type="submit"
            class={`btn${kind === "revoke" ? " btn-danger" : ""}`}
            disabled={busy}
            data-testid={`${kind}-confirm`}
          >
            {kind === "revoke" ? "Revoke key" : "Rotate key"}
          </button>
        </div>
      </form>
    </Modal>
  );
}

export function ApiKeys() {
  const [keys, setKeys] = useState<ApiKey[] | null>(null);
  const [error, setError] = useState<unknown>(null);
  const [created, setCreated] = useState<{ key: NewKey; rotated: boolean } | null>(null);
  const [pending, setPending] = useState<Pending>(null);

  const load = useCallback(async () => {
    try {
      const r = await authJSON<{ api_keys: ApiKey[] }>("GET", "/api/v1/api-keys");
      setKeys(r.api_keys);
      setError(null);
    } catch (e) {
      setError(e);
    }
  }, []);

  useEffect(() => void load(), [load]);

  const now = Date.now();
  const closeCreated = useCallback(() => setCreated(null), []);
  const cancelPending = useCallback(() => setPending(null), []);

  return (
    <div class="page" data-testid="api-keys-page">
      <div class="page-header">
        <div>
          <h1 class="page-title">API keys</h1>
          <p class="page-subtitle">
            Bearer credentials for scripts and MLflow clients (<code>MLFLOW_TRACKING_TOKEN</code>).
          </p>
        </div>
      </div>

      <CreateForm
        onCreated={(k) => {
          setCreated({ key: k, rotated: false });
          void load();
        }}
      />

      {error !== null && <ErrorPanel error={error} onRetry={() => void load()} />}

      <div class="table-wrap">
        <table class="table" data-testid="keys-table">
          <thead>
            <tr>
              <th>Name</th>
              <th>Prefix</th>
              <th>Scopes</th>
              <th>Project</th>
              <th>Created</th>
              <th>Last used</th>
              <th>Expires</th>
              <th>Status</th>
              <th class="actions-col" aria-label="Actions" />
            </tr>
          </thead>
          <tbody>
            {keys?.map((k) => {
              const st = keyStatus(k, now);
              return (
                <tr key={k.id} data-testid="key-row" data-key-id={k.id} data-status={st.label}>
                  <td data-testid="key-name" class="strong">{k.name}</td>
                  <td>
                    <code data-testid="key-prefix">{k.prefix}…</code>
                  </td>
                  <td data-testid="key-scopes">
                    {k.scopes.map((s) => (
                      <span key={s} class="chip">
                        {s}
                      </span>
                    ))}
                  </td>
                  <td data-testid="key-project">{k.project_id ? <code>{k.project_id.slice(0, 8)}</code> : "all"}</td>
                  <td data-testid="key-created">{when(k.created_at)}</td>
                  <td data-testid="key-last-used">{k.last_used_at ? when(k.last_used_at) : "never"}</td>
                  <td data-testid="key-expires">{k.expires_at ? when(k.expires_at) : "never"}</td>
                  <td>
                    <Badge tone={st.tone} testid="key-status">
                      {st.label}
                    </Badge>
                    {st.label === "in grace" && (
                      <div class="muted">until {when(k.grace_until)}</div>
                    )}
                  </td>
                  <td class="actions-col">
                    {(st.label === "active" || st.label === "in grace") && (
                      <>
                        {st.label === "active" && <button
                          type="button"
                          class="btn btn-small btn-ghost"
                          onClick={() => setPending({ kind: "rotate", key: k })}
                          data-testid="key-rotate"
                        >
                          Rotate
                        </button>}
                        <button
                          type="button"
                          class="btn btn-small btn-ghost btn-ghost-danger"
                          onClick={() => setPending({ kind: "revoke", key: k })}
                          data-testid="key-revoke"
                        >
                          Revoke
                        </button>
                      </>
                    )}
                  </td>
                </tr>
              );
            })}
          </tbody>
        </table>
        {keys !== null && keys.length === 0 && (
          <p class="empty" data-testid="keys-empty">
            No API keys yet.
          </p>
        )}
        {keys === null && error === null && <p class="empty">Loading…</p>}
      </div>

      {pending && (
        <ConfirmDialog
          pending={pending}
          onCancel={cancelPending}
          onDone={(n) => {
            setPending(null);
            if (n) setCreated({ key: n, rotated: true });
            void load();
          }}
        />
      )}
      {created && <NewKeyDialog created={created.key} rotated={created.rotated} onClose={closeCreated} />}
    </div>
  );
}
