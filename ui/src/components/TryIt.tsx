// The "Try it" panel of a model version: a form built from the version's
// signature (a field per column for tabular models, a JSON sample per input
// tensor otherwise), a Predict button that calls the JSON prediction
// endpoint, the answer with its latency (browser and Server-Timing), and
// curl / Python snippets for the same request with a placeholder API key.
import { useEffect, useMemo, useState } from "preact/hooks";
import { ApiError } from "../api";
import type { ModelMetadata, PredictAnswer } from "../serving";
import {
  cellValue,
  curlSnippet,
  modelMetadata,
  nameClasses,
  predict,
  pythonSnippet,
  sampleTensor,
  tabularWidth,
} from "../serving";
import { InlineError } from "./ui";

function fmtMs(ms: number | undefined): string {
  if (ms === undefined || !Number.isFinite(ms)) return "—";
  return ms < 1 ? `${ms.toFixed(3)} ms` : ms < 100 ? `${ms.toFixed(2)} ms` : `${Math.round(ms)} ms`;
}

/** What the form holds turned into the MLflow payload and the SDK's data argument. */
interface Built {
  body: Record<string, unknown>;
  data: unknown;
}

function Snippet(props: { title: string; text: string; testid: string }) {
  const [copied, setCopied] = useState(false);
  const copy = async () => {
    try {
      await navigator.clipboard.writeText(props.text);
      setCopied(true);
      setTimeout(() => setCopied(false), 1500);
    } catch {
      // No clipboard (an insecure origin, a denied permission): the text stays selectable.
      setCopied(false);
    }
  };
  return (
    <div class="snippet">
      <div class="snippet-head">
        <strong class="small">{props.title}</strong>
        <button type="button" class="btn btn-small btn-ghost" onClick={() => void copy()} data-testid={`${props.testid}-copy`}>
          {copied ? "Copied" : "Copy"}
        </button>
      </div>
      <pre class="pre-json" data-testid={props.testid}>
        {props.text}
      </pre>
    </div>
  );
}

export function TryIt(props: { pid: string; projectName: string; name: string; version: string; onClose: () => void }) {
  const { pid, name, version } = props;
  const [meta, setMeta] = useState<ModelMetadata | null>(null);
  const [metaError, setMetaError] = useState<unknown>(null);
  const [cells, setCells] = useState<string[]>([]);
  const [tensors, setTensors] = useState<Record<string, string>>({});
  const [proba, setProba] = useState(false);
  const [busy, setBusy] = useState(false);
  const [answer, setAnswer] = useState<PredictAnswer | null>(null);
  const [error, setError] = useState<unknown>(null);

  useEffect(() => {
    const ac = new AbortController();
    setMeta(null);
    setMetaError(null);
    setAnswer(null);
    setError(null);
    modelMetadata(pid, name, version, ac.signal)
      .then((m) => {
        setMeta(m);
        setCells(Array.from({ length: tabularWidth(m) }, () => "0"));
        setTensors(Object.fromEntries(m.inputs.map((i) => [i.name, JSON.stringify(sampleTensor(i))])));
      })
      .catch((e) => {
        if (!(e instanceof DOMException && e.name === "AbortError")) setMetaError(e);
      });
    return () => ac.abort();
  }, [pid, name, version]);

  const width = meta ? tabularWidth(meta) : 0;
  const classes = meta?.classes && meta.classes.length > 0 ? meta.classes : undefined;
  const columns = meta?.columns && meta.columns.length === width ? meta.columns : undefined;

  /* the request the form describes, or the reason it cannot be sent */
  const built = useMemo((): Built | Error => {
    if (!meta) return new Error("no signature yet");
    let body: Record<string, unknown>;
    let data: unknown;
    if (width > 0) {
      const row = cells.map(cellValue);
      if (columns) {
        body = { dataframe_split: { columns, data: [row] } };
        data = Object.fromEntries(columns.map((c, k) => [c, [row[k]]]));
      } else {
        body = { instances: [row] };
        data = [row];
      }
    } else {
      const inputs: Record<string, unknown> = {};
      for (const i of meta.inputs) {
        try {
          inputs[i.name] = JSON.parse(tensors[i.name] ?? "null");
        } catch (e) {
          return new Error(`${i.name}: not valid JSON (${e instanceof Error ? e.message : String(e)})`);
        }
      }
      body = { inputs };
      data = inputs;
    }
    if (proba) body["params"] = { predict_proba: true };
    return { body, data };
  }, [meta, width, columns, cells, tensors, proba]);

  const send = async () => {
    if (built instanceof Error) {
      setError(built);
      return;
    }
    setBusy(true);
    setError(null);
    try {
      setAnswer(await predict(pid, name, version, built.body));
    } catch (e) {
      setAnswer(null);
      setError(e);
    } finally {
      setBusy(false);
    }
  };

  const origin = window.location.origin;
  const shown = answer ? nameClasses(answer.predictions, proba ? classes : undefined) : null;

  return (
    <section class="card" aria-label="Try it" data-testid="tryit" data-version={version}>
      <h2 class="card-title">Try it · v{version}</h2>
      <div class="card-body">
        {metaError !== null && (
          <InlineError
            error={metaError}
            testid="tryit-meta-error"
          />
        )}
        {metaError instanceof ApiError && metaError.status === 0 && <p class="muted small">Check that the server is running.</p>}
        {!meta && metaError === null && <p class="muted">Reading the model's signature (the first call loads the model)…</p>}
        {meta && (
          <>
            <p class="muted small" data-testid="tryit-signature">
              {meta.platform ? `${meta.platform} · ` : ""}
              {meta.inputs.map((i) => `${i.name} ${i.datatype} [${i.shape.join(", ")}]`).join("; ")} →{" "}
              {meta.outputs.map((o) => `${o.name} ${o.datatype} [${o.shape.join(", ")}]`).join("; ")}
            </p>
            <form
              class="tryit-form"
              onSubmit={(e) => {
                e.preventDefault();
                void send();
              }}
            >
              {width > 0 ? (
                <div class="tryit-grid" data-testid="tryit-fields">
                  {cells.map((v, k) => {
                    const label = columns ? columns[k]! : `feature ${k}`;
                    return (
                      <label class="field" key={k}>
                        <span>{label}</span>
                        <input
                          type="text"
                          inputMode="decimal"
                          value={v}
                          aria-label={label}
                          data-testid="tryit-field"
                          data-column={label}
                          onInput={(e) => {
                            const t = e.currentTarget.value;
                            setCells((old) => old.map((x, j) => (j === k ? t : x)));
                          }}
                        />
                      </label>
                    );
                  })}
                </div>
              ) : (
                meta.inputs.map((i) => (
                  <label class="field" key={i.name}>
                    <span>
                      {i.name} · {i.datatype} [{i.shape.join(", ")}] (JSON, rows first)
                    </span>
                    <textarea
                      class="textarea"
                      rows={4}
                      value={tensors[i.name] ?? ""}
                      data-testid="tryit-tensor"
                      data-input={i.name}
                      onInput={(e) => {
                        const t = e.currentTarget.value;
                        setTensors((old) => ({ ...old, [i.name]: t }));
                      }}
                    />
                  </label>
                ))
              )}
              <div class="inline-form tryit-actions">
                {classes && (
                  <label class="check">
                    <input type="checkbox" checked={proba} onChange={(e) => setProba(e.currentTarget.checked)} data-testid="tryit-proba" />
                    class probabilities
                  </label>
                )}
                <button type="submit" class="btn" disabled={busy} data-testid="tryit-predict">
                  {busy ? "Predicting…" : "Predict"}
                </button>
              </div>
            </form>
            <InlineError error={error} testid="tryit-error" />
            {answer && (
              <div class="tryit-answer" data-testid="tryit-result">
                <p class="small">
                  <span data-testid="tryit-latency" data-ms={answer.latencyMs.toFixed(3)}>
                    Latency {fmtMs(answer.latencyMs)} in the browser
                  </span>
                  {" · "}
                  <span data-testid="tryit-server-timing">
                    server: queue {fmtMs(answer.timing.queue)}, compute {fmtMs(answer.timing.compute)}, total{" "}
                    {fmtMs(answer.timing.total)}
                  </span>
                  {answer.version && <span data-testid="tryit-answered-by"> · answered by v{answer.version}</span>}
                </p>
                <pre class="pre-json" data-testid="tryit-answer" data-raw={JSON.stringify(answer.predictions)}>
                  {JSON.stringify({ predictions: shown }, null, 2)}
                </pre>
              </div>
            )}
            {!(built instanceof Error) && (
              <div class="snippets">
                <Snippet title="curl" testid="tryit-curl" text={curlSnippet(origin, pid, name, version, built.body)} />
                <Snippet
                  title="Python (kiln SDK)"
                  testid="tryit-python"
                  text={pythonSnippet(origin, props.projectName, name, version, built.data, proba)}
                />
                <p class="muted small">
                  Set <code>KILN_API_KEY</code> to an API key with the <code>predict</code> scope (API keys page); the
                  dashboard's own session is never put in a snippet.
                </p>
              </div>
            )}
          </>
        )}
        <p>
          <button type="button" class="btn btn-small btn-ghost" onClick={props.onClose} data-testid="tryit-close">
            Close
          </button>
        </p>
      </div>
    </section>
  );
}
