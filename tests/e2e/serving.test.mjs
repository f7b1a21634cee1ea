// Browser tests for serving in the dashboard: the "Try it" panel of a model
// version (a form built from the signature, the answer equal to the model's
// own prediction computed here, a wrong value answered with the server's
// 400 next to the form, class probabilities named by class, the curl snippet
// run with a real API key giving the same answer) and the Serving page
// (the model listed READY after a prediction, unloading it). A real `kiln
// server` on a fresh data directory; an XGBoost model (named features) and a
// scikit-learn classifier are trained by /usr/bin/python3 and uploaded
// through the API as the admin.
//
//   KILN_BIN=build/kiln node --test tests/e2e/serving.test.mjs
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { chromium } from "playwright-core";

import { ARTIFACTS, CHROMIUM, CHROMIUM_ARGS, api, eventually, signInForm, startServer, watchErrors } from "./harness.mjs";

const ADMIN_PASSWORD = "Kiln-e2e-Admin-5s!Serve";
const COLUMNS = ["sepal_length", "sepal_width", "petal_length", "petal_width"];
const ROW = [6.3, 2.9, 5.6, 1.8];
const RTOL = 1e-6;

// Trains both models, saves them into dir and prints what they predict for ROW.
const TRAIN = `
import json, sys
import joblib, numpy as np, xgboost as xgb
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression
out, cols, row = sys.argv[1], json.loads(sys.argv[2]), np.array([json.loads(sys.argv[3])])
X, y = load_iris(return_X_y=True)
bst = xgb.train({"objective": "binary:logistic", "max_depth": 3, "seed": 0},
                xgb.DMatrix(X, label=(y == 2).astype(np.float32), feature_names=cols), 12)
bst.save_model(out + "/virginica.json")
clf = LogisticRegression(max_iter=500).fit(X, y)
joblib.dump(clf, out + "/iris.joblib")
joblib.dump({"weights": np.arange(3.0)}, out + "/not-a-model.joblib")  # passes the scan, has no predict
print(json.dumps({"xgb": bst.predict(xgb.DMatrix(row, feature_names=cols)).tolist(),
                  "proba": clf.predict_proba(row).tolist(), "label": clf.predict(row).tolist()}))
`;

function close(got, want, what) {
  assert.equal(got.length, want.length, `${what}: ${JSON.stringify(got)} vs ${JSON.stringify(want)}`);
  got.forEach((g, i) => {
    if (Array.isArray(want[i])) return close(g, want[i], what);
    assert.ok(Math.abs(g - want[i]) <= RTOL * Math.abs(want[i]) + 1e-12, `${what}: ${JSON.stringify(got)} vs ${JSON.stringify(want)}`);
  });
}

async function ok(promise, what) {
  const r = await promise;
  assert.equal(r.status, 200, `${what}: ${JSON.stringify(r.body)}`);
  return r.body;
}

describe("serving in the dashboard", { timeout: 240_000 }, () => {
  let dataDir;
  let server;
  let base;
  let browser;
  let page;
  const pageErrors = [];
  let token;
  let project;
  let apiKey;
  let want;

  const upload = async (file, name) => {
    const res = await fetch(`${base}/api/v1/models/upload?name=${encodeURIComponent(name)}`, {
      method: "POST",
      headers: { Authorization: `Bearer ${token}`, "Content-Type": "application/octet-stream", "X-Kiln-Project": project.id },
      body: readFileSync(file),
    });
    const body = await res.json();
    assert.equal(res.status, 200, JSON.stringify(body));
    assert.equal(body.model_version.status, "READY");
    return body.model_version;
  };

  /** Fills the Try-it form's fields with values (column order). */
  const fill = async (values) => {
    const fields = page.getByTestId("tryit-field");
    await fields.first().waitFor({ timeout: 30_000 });
    assert.equal(await fields.count(), values.length);
    for (let i = 0; i < values.length; i++) await fields.nth(i).fill(String(values[i]));
  };

  const predictAndRead = async () => {
    await page.getByTestId("tryit-predict").click();
    const answer = page.getByTestId("tryit-answer");
    await answer.waitFor({ timeout: 30_000 });
    return { raw: JSON.parse(await answer.getAttribute("data-raw")), shown: JSON.parse(await answer.textContent()) };
  };

  before(async () => {
    mkdirSync(ARTIFACTS, { recursive: true });
    dataDir = mkdtempSync(join(tmpdir(), "kiln-e2e-serving-"));
    const modelDir = join(dataDir, "models");
    mkdirSync(modelDir);
    want = JSON.parse(execFileSync("/usr/bin/python3", ["-c", TRAIN, modelDir, JSON.stringify(COLUMNS), JSON.stringify(ROW)], { encoding: "utf8" }));

    server = startServer(dataDir, { KILN_ADMIN_PASSWORD: ADMIN_PASSWORD });
    base = await server.url;
    token = (await ok(api(base, "POST", "/api/v1/auth/token", { body: { username: "admin", password: ADMIN_PASSWORD } }), "sign-in")).access_token;
    const admin = (await ok(api(base, "GET", "/api/v1/auth/whoami", { token }), "whoami")).user;
    project = (await ok(api(base, "GET", "/api/v1/projects", { token }), "projects")).projects.find((p) => p.id === admin.default_project_id);
    assert.ok(project, "the admin has a default project");
    apiKey = (await ok(api(base, "POST", "/api/v1/api-keys", { token, body: { name: "e2e-predict", scopes: ["read", "predict"] } }), "api key")).key;
    assert.match(apiKey, /^kiln_/);
    await upload(join(modelDir, "virginica.json"), "virginica");
    await upload(join(modelDir, "iris.joblib"), "iris-lr");
    await upload(join(modelDir, "not-a-model.joblib"), "not-a-model");

    browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: CHROMIUM_ARGS });
    const ctx = await browser.newContext({ viewport: { width: 1400, height: 1000 } });
    await ctx.grantPermissions(["clipboard-read", "clipboard-write"], { origin: base });
    page = await ctx.newPage();
    watchErrors(page, pageErrors);
    await signInForm(page, base, "admin", ADMIN_PASSWORD);
    await page.locator(`[data-testid="project-switcher"][data-project-id="${project.id}"]`).waitFor({ timeout: 10_000 });
  });

  after(async () => {
    await browser?.close().catch(() => {});
    if (server && server.child.exitCode === null && server.child.signalCode === null) {
      server.child.kill("SIGTERM");
      await server.exited;
    }
    if (dataDir) rmSync(dataDir, { recursive: true, force: true });
  });

  it("builds a form from the signature and answers what the model answers", async () => {
    await page.getByTestId("nav-models").click();
    await page.locator('[data-testid="model-row"][data-name="virginica"] a').first().click();
    await page.locator('[data-testid="version-row"][data-version="1"]').getByTestId("version-tryit").click();
    const panel = page.getByTestId("tryit");
    await panel.waitFor({ timeout: 10_000 });
    assert.equal(await panel.getAttribute("data-version"), "1");
    await fill(ROW);
    const columns = await page.getByTestId("tryit-field").evaluateAll((xs) => xs.map((x) => x.getAttribute("data-column")));
    assert.deepEqual(columns, COLUMNS, "one field per column, named by the signature");
    // the probabilities option follows the signature: there when it has classes
    const meta = await ok(api(base, "GET", "/v2/models/virginica/versions/1", { token: apiKey }), "metadata");
    assert.deepEqual(meta.columns, COLUMNS);
    assert.equal(await page.getByTestId("tryit-proba").count(), Array.isArray(meta.classes) && meta.classes.length > 0 ? 1 : 0);
    assert.match(await page.getByTestId("tryit-signature").textContent(), /input FP32 \[-1, 4\]/);
    const { raw, shown } = await predictAndRead();
    close(raw, want.xgb, "the prediction");
    close(shown.predictions, want.xgb, "the prediction shown");
    assert.match(await page.getByTestId("tryit-latency").textContent(), /Latency [\d.]+ ms in the browser/);
    assert.ok(Number(await page.getByTestId("tryit-latency").getAttribute("data-ms")) > 0);
    assert.match(await page.getByTestId("tryit-server-timing").textContent(), /queue [\d.]+ ms, compute [\d.]+ ms, total [\d.]+ ms/);
    assert.match(await page.getByTestId("tryit-answered-by").textContent(), /v1/);
    await page.screenshot({ path: join(ARTIFACTS, "serving-tryit.png"), fullPage: true });
  });

  it("shows the server's 400 next to the form for a wrong value", async () => {
    await page.getByTestId("tryit-field").nth(3).fill("wide");
    await page.getByTestId("tryit-predict").click();
    const err = page.getByTestId("tryit-error");
    await err.waitFor({ timeout: 10_000 });
    const text = await err.textContent();
    assert.match(text, /petal_width/, text);
    assert.match(text, /INVALID_PARAMETER_VALUE/, text);
    assert.equal(await page.getByTestId("tryit-answer").count(), 0, "the old answer is gone");
    await page.getByTestId("tryit-field").nth(3).fill(String(ROW[3]));
    await predictAndRead();
    assert.equal(await page.getByTestId("tryit-error").count(), 0);
  });

  it("gives a curl snippet that, with a real API key, answers the same", async () => {
    const snippet = await page.getByTestId("tryit-curl").textContent();
    assert.ok(snippet.includes("$KILN_API_KEY"), "a placeholder, not a credential");
    assert.ok(!snippet.includes("kiln_") && !/csrf|session|cookie/i.test(snippet), snippet);
    await page.getByTestId("tryit-curl-copy").click();
    await eventually(async () => (await page.getByTestId("tryit-curl-copy").textContent()) === "Copied", 5000);
    const copied = await page.evaluate(() => navigator.clipboard.readText());
    assert.equal(copied, snippet);
    const out = execFileSync("sh", ["-c", copied], { encoding: "utf8", env: { ...process.env, KILN_API_KEY: apiKey } });
    close(JSON.parse(out).predictions, want.xgb, "curl's answer");
    const py = await page.getByTestId("tryit-python").textContent();
    assert.ok(py.includes('client.predict("virginica", {"sepal_length": [6.3]') && py.includes('os.environ["KILN_API_KEY"]'), py);
  });

  it("names the classes of class probabilities", async () => {
    await page.goto(`${base}/models/iris-lr?version=1`);
    await page.getByTestId("tryit").waitFor({ timeout: 10_000 });
    await fill(ROW);
    let { raw } = await predictAndRead();
    assert.deepEqual(raw, want.label);
    await page.getByTestId("tryit-proba").check();
    await eventually(async () => (await page.getByTestId("tryit-curl").textContent()).includes('"predict_proba":true'), 5000);
    const { raw: p, shown } = await predictAndRead();
    close(p, want.proba, "probabilities");
    assert.deepEqual(Object.keys(shown.predictions[0]), ["0", "1", "2"], "probabilities keyed by class");
    close(Object.values(shown.predictions[0]), want.proba[0], "probabilities shown");
  });

  it("says why a model cannot be served, in the panel and on the Serving page", async () => {
    await page.goto(`${base}/models/not-a-model?version=1`);
    const err = page.getByTestId("tryit-meta-error");
    await err.waitFor({ timeout: 30_000 });
    assert.match(await err.textContent(), /has no predict method/);
    assert.equal(await page.getByTestId("tryit-predict").count(), 0, "no form without a signature");
    await page.getByTestId("nav-serving").click();
    const row = page.locator('[data-testid="serving-row"][data-name="not-a-model"]');
    await row.waitFor({ timeout: 10_000 });
    assert.equal(await row.getAttribute("data-state"), "FAILED");
    assert.equal(await row.getByTestId("serving-state").getAttribute("data-tone"), "bad");
    assert.match(await row.getByTestId("serving-reason").textContent(), /no predict method/);
  });

  it("lists the loaded models on the Serving page, READY after a prediction, and unloads one", async () => {
    await page.getByTestId("nav-serving").click();
    const row = page.locator('[data-testid="serving-row"][data-name="virginica"][data-version="1"]');
    await row.waitFor({ timeout: 10_000 });
    assert.equal(await row.getAttribute("data-state"), "READY");
    assert.equal(await row.getByTestId("serving-state").textContent(), "READY");
    assert.match(await row.textContent(), /xgboost/);
    assert.ok(Number(await row.getByTestId("serving-requests").textContent().then((t) => t.split(" ")[0])) >= 3);
    assert.match(await row.getByTestId("serving-memory").textContent(), /B$/);
    // the rate column fills in after a second poll and follows new requests
    for (let i = 0; i < 5; i++) await ok(api(base, "POST", "/api/v1/models/virginica/versions/1/predict", { token: apiKey, body: { instances: [ROW] } }), "predict");
    await eventually(async () => Number(await row.getByTestId("serving-rate").textContent()) > 0, 10_000, 200);
    await page.screenshot({ path: join(ARTIFACTS, "serving-page.png"), fullPage: true });
    // the link opens the model page with the version's panel
    await row.getByTestId("serving-model-link").click();
    await page.locator('[data-testid="tryit"][data-version="1"]').waitFor({ timeout: 10_000 });
    assert.equal(new URL(page.url()).pathname, "/models/virginica");
    await page.getByTestId("nav-serving").click();
    await row.waitFor({ timeout: 10_000 });
    await row.getByTestId("serving-unload").click();
    await eventually(async () => (await row.count()) === 0, 10_000, 100);
    const listed = (await ok(api(base, "GET", "/api/v1/serving/models", { token }), "models")).models;
    assert.ok(!listed.some((m) => m.name === "virginica" && m.state === "READY"));
    assert.ok(listed.some((m) => m.name === "iris-lr" && m.state === "READY"));
    assert.deepEqual(pageErrors, []);
  });
});
