// Browser tests for the tracking dashboard: experiments, the runs table
// (filter, sort, columns), the run page's charts (and their live updates),
// the compare view, and what a viewer may do. A real `kiln server` on a
// fresh data directory; the runs are logged from node through the MLflow
// REST API as the admin, then the pages are driven through Debian's Chromium.
//
//   KILN_BIN=build/kiln node --test tests/e2e/tracking.test.mjs
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { chromium } from "playwright-core";

import { ARTIFACTS, CHROMIUM, CHROMIUM_ARGS, api, eventually, signInForm, startServer, watchErrors } from "./harness.mjs";

const ADMIN_PASSWORD = "Kiln-e2e-Admin-7q!Pw";
const VIEWER = { username: "e2e-track-viewer", email: "tviewer@example.com", password: "Viewer-e2e-4k#Secret" };
const LOSS_POINTS = 120;
const LONG_POINTS = 3000;
const SPIKE_STEP = 1777;
// a 1x1 PNG
const PNG = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg==";

async function ok(promise, what) {
  const r = await promise;
  assert.equal(r.status, 200, `${what}: ${JSON.stringify(r.body)}`);
  return r.body;
}

describe("tracking dashboard", { timeout: 300_000 }, () => {
  let dataDir;
  let server;
  let base;
  let browser;
  let ctx;
  let page;
  const pageErrors = [];
  let token;
  let project; // the admin's default project
  let expId;
  const runs = {}; // name -> run id
  let longExpId;
  const caps = {}; // what the server has: sampled, events, artifacts

  const ml = (path, body) => ok(api(base, body === undefined ? "GET" : "POST", `/api/2.0/mlflow/${path}`, { token, body }), path);

  async function logRun(name, { params, acc, lossOffset, status = "FINISHED", points = LOSS_POINTS }) {
    const t0 = Date.now() - 600_000;
    const run = (await ml("runs/create", { experiment_id: expId, run_name: name, start_time: t0 })).run;
    const id = run.info.run_id;
    const metrics = [];
    for (let i = 0; i < points; i++) {
      metrics.push({ key: "loss", value: lossOffset + 1 / (i + 1), timestamp: t0 + i * 1000, step: i });
    }
    metrics.push({ key: "acc", value: acc, timestamp: t0 + points * 1000, step: points });
    await ml("runs/log-batch", {
      run_id: id,
      metrics,
      params: Object.entries(params).map(([key, value]) => ({ key, value })),
      tags: [{ key: "team", value: "e2e" }],
    });
    if (status !== "RUNNING") await ml("runs/update", { run_id: id, status, end_time: t0 + points * 1000 + 5000 });
    runs[name] = id;
    return id;
  }

  const rowIds = () => page.getByTestId("run-row").evaluateAll((rs) => rs.map((r) => r.getAttribute("data-run-id")));

  /** Waits until the table shows exactly these runs (in any order), loaded. */
  async function waitRowSet(ids) {
    const want = [...ids].sort().join(",");
    await eventually(
      async () =>
        (await page.getByTestId("runs-table").getAttribute("data-loading")) === "false" &&
        [...(await rowIds())].sort().join(",") === want,
      10_000,
    );
  }

  async function waitRows(n) {
    await eventually(async () => (await page.getByTestId("runs-table").getAttribute("data-loading")) === "false" && (await page.getByTestId("run-row").count()) === n, 10_000);
  }

  before(async () => {
    mkdirSync(ARTIFACTS, { recursive: true });
    dataDir = mkdtempSync(join(tmpdir(), "kiln-e2e-tracking-"));
    server = startServer(dataDir, { KILN_ADMIN_PASSWORD: ADMIN_PASSWORD });
    base = await server.url;

    token = (await ok(api(base, "POST", "/api/v1/auth/token", { body: { username: "admin", password: ADMIN_PASSWORD } }), "admin sign-in")).access_token;
    const admin = (await ok(api(base, "GET", "/api/v1/auth/whoami", { token }), "whoami")).user;
    const projects = (await ok(api(base, "GET", "/api/v1/projects", { token }), "projects")).projects;
    project = projects.find((p) => p.id === admin.default_project_id);
    assert.ok(project, "the admin has a default project");

    expId = (await ml("experiments/create", { name: "e2e-tracking" })).experiment_id;
    await logRun("alpha", { params: { lr: "0.01", optimizer: "adam", layers: "2" }, acc: 0.7, lossOffset: 0.1 });
    await logRun("beta", { params: { lr: "0.1", optimizer: "adam", layers: "2" }, acc: 0.9, lossOffset: 0.0 });
    await logRun("gamma", { params: { lr: "0.001", optimizer: "sgd", layers: "4" }, acc: 0.5, lossOffset: 0.3 });

    // What this server has beyond MLflow's API (the dashboard falls back without them).
    const probe = await api(base, "GET", `/api/v1/runs/${runs.alpha}/metrics/loss/sampled?points=10`, { token });
    caps.sampled = probe.status === 200;
    caps.artifacts = (await api(base, "GET", `/api/2.0/mlflow/artifacts/list?run_id=${runs.alpha}`, { token })).status === 200;
    // This server has both; the dashboard's fallbacks (full history, no
    // artifact tree) are for older servers and must not hide a regression here.
    assert.ok(caps.sampled, "the sampled-series endpoint answers");
    assert.ok(caps.artifacts, "the artifact list answers");
    if (caps.artifacts) {
      const root = (await ml(`runs/get?run_id=${runs.alpha}`)).run.info.artifact_uri.replace(/^mlflow-artifacts:\/*/, "");
      const put = async (path, body, type) => {
        const r = await fetch(`${base}/api/2.0/mlflow-artifacts/artifacts/${root}/${path}`, {
          method: "PUT",
          headers: { Authorization: `Bearer ${token}`, "Content-Type": type },
          body,
        });
        assert.equal(r.status, 200, `upload ${path}: ${await r.text()}`);
      };
      await put("plots/curve.png", Buffer.from(PNG, "base64"), "image/png");
      await put("metrics.json", JSON.stringify({ acc: 0.7, classes: ["a", "b"] }), "application/json");
      await put("notes.txt", "trained on the e2e data\n", "text/plain");
    }

    // Another experiment: more runs than a page, one with a long series and a spike.
    longExpId = (await ml("experiments/create", { name: "e2e-long" })).experiment_id;
    const t0 = Date.now() - 3_600_000;
    const long = (await ml("runs/create", { experiment_id: longExpId, run_name: "long", start_time: t0 })).run.info.run_id;
    for (let b = 0; b < LONG_POINTS / 1000; b++) {
      const metrics = [];
      for (let i = b * 1000; i < (b + 1) * 1000; i++) {
        metrics.push({ key: "loss", value: i === SPIKE_STEP ? 50 : 1 + Math.sin(i / 50), timestamp: t0 + i * 100, step: i });
      }
      await ml("runs/log-batch", { run_id: long, metrics });
    }
    runs.long = long;
    for (let i = 0; i < 26; i++) await ml("runs/create", { experiment_id: longExpId, run_name: `filler-${i}`, start_time: t0 - i });

    // A viewer of the admin's project.
    const created = await ok(
      api(base, "POST", "/api/v1/users", { token, body: { username: VIEWER.username, email: VIEWER.email, password: VIEWER.password } }),
      "create viewer",
    );
    VIEWER.id = created.user.id;
    await ok(api(base, "PUT", `/api/v1/orgs/${project.org_id}/members/${VIEWER.id}`, { token, body: { role: "member" } }), "org member");
    await ok(api(base, "PUT", `/api/v1/projects/${project.id}/members/${VIEWER.id}`, { token, body: { role: "viewer" } }), "project viewer");

    browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: CHROMIUM_ARGS });
    ctx = await browser.newContext({ viewport: { width: 1400, height: 900 } });
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

  it("lists the project's experiments and lets an editor create, rename, delete and restore", async () => {
    await page.getByTestId("nav-experiments").click();
    const table = page.getByTestId("experiments-table");
    await table.locator(`[data-testid="experiment-row"][data-experiment-id="${expId}"]`).waitFor({ timeout: 10_000 });
    assert.equal(await page.getByTestId("experiments-page").getAttribute("data-can-write"), "true");

    await page.getByTestId("experiment-create-name").fill("e2e-scratch");
    await page.getByTestId("experiment-create-submit").click();
    const row = table.locator('[data-testid="experiment-row"][data-name="e2e-scratch"]');
    await row.waitFor({ timeout: 10_000 });
    const scratchId = await row.getAttribute("data-experiment-id");

    // A taken name: the server's message, inline.
    await page.getByTestId("experiment-create-name").fill("e2e-tracking");
    await page.getByTestId("experiment-create-submit").click();
    await page.getByTestId("experiment-create-error").filter({ hasText: "RESOURCE_ALREADY_EXISTS" }).waitFor({ timeout: 10_000 });

    await row.getByTestId("experiment-rename").click();
    await page.getByTestId("experiment-rename-input").fill("e2e-scratch-renamed");
    await page.getByTestId("experiment-rename-save").click();
    await table.locator(`[data-testid="experiment-row"][data-experiment-id="${scratchId}"][data-name="e2e-scratch-renamed"]`).waitFor({ timeout: 10_000 });
    const got = await ml(`experiments/get?experiment_id=${scratchId}`);
    assert.equal(got.experiment.name, "e2e-scratch-renamed");

    await table.locator(`[data-testid="experiment-row"][data-experiment-id="${scratchId}"]`).getByTestId("experiment-delete").click();
    await table.locator(`[data-testid="experiment-row"][data-experiment-id="${scratchId}"]`).waitFor({ state: "detached", timeout: 10_000 });
    await page.getByTestId("experiments-view-type").selectOption("DELETED_ONLY");
    const deleted = table.locator(`[data-testid="experiment-row"][data-experiment-id="${scratchId}"]`);
    await deleted.waitFor({ timeout: 10_000 });
    await deleted.getByTestId("experiment-restore").click();
    await deleted.waitFor({ state: "detached", timeout: 10_000 });
    assert.equal((await ml(`experiments/get?experiment_id=${scratchId}`)).experiment.lifecycle_stage, "active");
    await page.getByTestId("experiments-view-type").selectOption("ACTIVE_ONLY");
    await page.screenshot({ path: join(ARTIFACTS, "tracking-experiments.png"), fullPage: true });
  });

  it("filters the runs table with the server's grammar and shows a bad filter's message with its position", async () => {
    await page.locator(`[data-testid="experiment-row"][data-experiment-id="${expId}"]`).getByTestId("experiment-link").click();
    await page.locator(`[data-testid="runs-page"][data-experiment-id="${expId}"]`).waitFor({ timeout: 10_000 });
    await waitRows(3);

    await page.getByTestId("runs-filter").fill("metrics.acc > 0.6 AND params.optimizer = 'adam'");
    await page.getByTestId("runs-filter-apply").click();
    await waitRowSet([runs.alpha, runs.beta]);
    assert.match(page.url(), /filter=metrics\.acc/, "the filter is kept in the address");

    // Kiln's OR and parentheses go through as well.
    await page.getByTestId("runs-filter").fill("(params.lr = '0.001' OR params.lr = '0.1') AND tags.team = 'e2e'");
    await page.getByTestId("runs-filter").press("Enter");
    // the same count as the previous filter's rows: wait for the rows themselves
    await waitRowSet([runs.beta, runs.gamma]);

    await page.getByTestId("runs-filter").fill("metrics.acc foo 0.5");
    await page.getByTestId("runs-filter-apply").click();
    const err = page.getByTestId("runs-filter-error");
    await err.waitFor({ timeout: 10_000 });
    const msg = await page.getByTestId("runs-filter-error-message").textContent();
    assert.match(msg, /at position 13/);
    assert.match(msg, /expected a comparator/);
    assert.match(msg, /INVALID_PARAMETER_VALUE/);
    assert.equal(await err.getAttribute("data-position"), "13");
    assert.equal(await page.getByTestId("runs-filter").getAttribute("aria-invalid"), "true");
    await page.screenshot({ path: join(ARTIFACTS, "tracking-filter-error.png"), fullPage: true });

    await page.getByTestId("runs-filter-clear").click();
    await waitRows(3);
    assert.equal(await page.getByTestId("runs-filter-error").count(), 0);
  });

  it("sorts by a metric column on the server, and remembers the chosen columns", async () => {
    const accHeader = page.locator('[data-testid="sort-header"][data-sort-id="metrics.`acc`"]');
    await accHeader.click();
    await eventually(async () => JSON.stringify(await rowIds()) === JSON.stringify([runs.beta, runs.alpha, runs.gamma]), 10_000);
    assert.equal(new URL(page.url()).searchParams.get("order_by"), "metrics.`acc` DESC", "the order is kept in the address");
    await accHeader.click();
    await eventually(async () => JSON.stringify(await rowIds()) === JSON.stringify([runs.gamma, runs.alpha, runs.beta]), 10_000);
    // a param column sorts as strings
    await page.locator('[data-testid="sort-header"][data-sort-id="params.`lr`"]').click();
    await eventually(async () => JSON.stringify(await rowIds()) === JSON.stringify([runs.beta, runs.alpha, runs.gamma]), 10_000);

    // Status and duration are shown for every run.
    const statuses = await page.getByTestId("run-status").allTextContents();
    assert.deepEqual(statuses.map((s) => s.trim()), ["FINISHED", "FINISHED", "FINISHED"]);
    const durations = await page.getByTestId("run-duration").allTextContents();
    for (const d of durations) assert.match(d, /^2m \d+s$/);

    // Column chooser: hide the optimizer param; the choice survives a reload.
    assert.ok((await page.locator('td[data-column="p:optimizer"]').count()) === 3);
    await page.getByTestId("columns-button").click();
    await page.locator('[data-testid="column-option"][data-column="p:optimizer"]').uncheck();
    await page.getByTestId("column-chooser-close").click();
    assert.equal(await page.locator('td[data-column="p:optimizer"]').count(), 0);
    await page.reload();
    await waitRows(3);
    assert.equal(await page.locator('td[data-column="p:optimizer"]').count(), 0);
    assert.equal(await page.locator('td[data-column="m:acc"]').count(), 3);
    // ...and the order came back from the address.
    assert.deepEqual(await rowIds(), [runs.beta, runs.alpha, runs.gamma]);
    await page.screenshot({ path: join(ARTIFACTS, "tracking-runs.png"), fullPage: true });
  });

  it("charts every logged point of a run, on steps or time, with smoothing", async () => {
    await page.locator(`[data-testid="run-row"][data-run-id="${runs.alpha}"]`).getByTestId("run-link").click();
    await page.locator(`[data-testid="run-page"][data-run-id="${runs.alpha}"]`).waitFor({ timeout: 10_000 });
    const chart = page.locator('[data-testid="metric-chart"][data-key="loss"]');
    await chart.locator("canvas").waitFor({ timeout: 10_000 });
    await eventually(async () => (await chart.getAttribute("data-points")) === String(LOSS_POINTS), 10_000);
    assert.equal(await chart.getAttribute("data-xs"), String(LOSS_POINTS));
    assert.equal(await page.locator('[data-testid="metric-chart"][data-key="acc"]').getAttribute("data-points"), "1");

    await page.getByTestId("run-experiment-link").filter({ hasText: "e2e-tracking" }).waitFor({ timeout: 10_000 });
    // Params, tags and latest metrics are listed.
    assert.equal(await page.locator('[data-testid="run-params-row"][data-key="lr"] td').textContent(), "0.01");
    assert.equal(await page.locator('[data-testid="run-tags-row"][data-key="team"] td').textContent(), "e2e");
    assert.match(await page.locator('[data-testid="run-metrics-row"][data-key="acc"]').textContent(), /0\.7/);

    await page.getByTestId("x-mode-time").click();
    await page.locator('[data-testid="metric-chart"][data-key="loss"][data-x-mode="time"]').waitFor();
    await eventually(async () => (await chart.getAttribute("data-points")) === String(LOSS_POINTS));
    await page.getByTestId("smoothing").fill("0.8");
    await eventually(async () => (await chart.locator(".u-legend").textContent()).includes("loss (raw)"));
    assert.equal(await chart.getAttribute("data-points"), String(LOSS_POINTS), "smoothing keeps the raw points");
    assert.equal(await chart.getAttribute("data-source"), caps.sampled ? "sampled" : "history");
    assert.equal(await chart.getAttribute("data-sampled"), "false");

    // Artifacts: the tree and previews where the server lists them, else a note.
    if (caps.artifacts) {
      await page.locator('[data-testid="artifact-item"][data-path="plots"]').click();
      await page.locator('[data-testid="artifact-item"][data-path="plots/curve.png"]').click();
      const img = page.getByTestId("artifact-image");
      await img.waitFor({ timeout: 10_000 });
      await eventually(() => img.evaluate((el) => el.complete && el.naturalWidth === 1), 10_000);
      await page.locator('[data-testid="artifact-item"][data-path="metrics.json"]').click();
      const json = page.locator('[data-testid="artifact-text"][data-kind="json"]');
      await json.waitFor({ timeout: 10_000 });
      assert.match(await json.textContent(), /"classes": \[\n\s+"a",/);
      await page.locator('[data-testid="artifact-item"][data-path="notes.txt"]').click();
      await page.locator('[data-testid="artifact-text"][data-kind="text"]').filter({ hasText: "trained on the e2e data" }).waitFor({ timeout: 10_000 });
    } else {
      await page.getByTestId("artifacts-unavailable").waitFor({ timeout: 10_000 });
    }
    await page.screenshot({ path: join(ARTIFACTS, "tracking-run.png"), fullPage: true });
    await page.getByTestId("smoothing").fill("0");
    await page.getByTestId("x-mode-step").click();
  });

  it("charts a long series downsampled, keeping its spike", async () => {
    await page.goto(`${base}/runs/${runs.long}`);
    const chart = page.locator('[data-testid="metric-chart"][data-key="loss"]');
    await chart.locator("canvas").waitFor({ timeout: 10_000 });
    await eventually(async () => Number(await chart.getAttribute("data-points")) > 0, 10_000);
    const n = Number(await chart.getAttribute("data-points"));
    assert.ok(n >= 200 && n <= 1000, `a chart-sized series, not all ${LONG_POINTS} points: ${n}`);
    assert.equal(await chart.getAttribute("data-sampled"), "true");
    assert.equal(Number(await chart.getAttribute("data-y-max")), 50, "the spike survives downsampling");
    await chart.getByTestId("chart-downsampled").waitFor();
    await page.screenshot({ path: join(ARTIFACTS, "tracking-run-long.png"), fullPage: true });
  });

  it("pages through runs with page tokens", async () => {
    await page.goto(`${base}/experiments/${longExpId}`);
    await waitRows(27 > 50 ? 50 : 27);
    await page.getByTestId("runs-page-size").selectOption("25");
    await waitRows(25);
    const first = await rowIds();
    await page.getByTestId("runs-next").click();
    await waitRows(2);
    assert.equal(await page.getByTestId("runs-next").isDisabled(), true, "no page after the last");
    assert.match(await page.getByTestId("runs-page-index").textContent(), /Page 2/);
    const second = await rowIds();
    assert.equal(new Set([...first, ...second]).size, 27, "every run once across the pages");
    await page.getByTestId("runs-prev").click();
    await waitRows(25);
    assert.deepEqual(await rowIds(), first);
    // Selection survives paging.
    await page.getByTestId("runs-select-all").check();
    await page.getByTestId("runs-next").click();
    await waitRows(2);
    await page.getByTestId("run-select").first().check();
    assert.match(await page.getByTestId("runs-selected-count").textContent(), /^26 selected/);
  });

  it("updates a running run's charts as points arrive", async () => {
    const id = await logRun("delta", { params: { lr: "0.05" }, acc: 0.6, lossOffset: 0.2, status: "RUNNING", points: 10 });
    await page.goto(`${base}/runs/${id}`);
    const chart = page.locator('[data-testid="metric-chart"][data-key="loss"]');
    await eventually(async () => (await chart.getAttribute("data-points")) === "10", 10_000);
    await page.getByTestId("run-live").waitFor();
    // The event stream where the server has one, else polling.
    const ac = new AbortController();
    const ev = await fetch(`${base}/api/v1/runs/${id}/events`, { headers: { Authorization: `Bearer ${token}` }, signal: ac.signal }).catch(() => null);
    caps.events = !!ev && ev.ok && (ev.headers.get("content-type") ?? "").includes("text/event-stream");
    ac.abort();
    assert.ok(caps.events, "the run's event stream answers");
    await page.locator(`[data-testid="run-page"][data-live="${caps.events ? "events" : "polling"}"]`).waitFor({ timeout: 10_000 });
    const t = Date.now();
    await ml("runs/log-batch", {
      run_id: id,
      metrics: Array.from({ length: 5 }, (_, i) => ({ key: "loss", value: 0.1, timestamp: t + i, step: 10 + i })),
    });
    await eventually(async () => (await chart.getAttribute("data-points")) === "15", 15_000, 200);
    await ml("runs/update", { run_id: id, status: "FINISHED", end_time: Date.now() });
    await page.locator(`[data-testid="run-page"][data-status="FINISHED"]`).waitFor({ timeout: 15_000 });
    assert.equal(await page.getByTestId("run-live").count(), 0);
  });

  it("compares selected runs: overlaid charts, the params that differ, parallel coordinates", async () => {
    await page.goto(`${base}/experiments/${expId}`);
    await waitRows(4);
    assert.equal(await page.getByTestId("runs-compare").getAttribute("aria-disabled"), "true");
    await page.locator(`[data-testid="run-row"][data-run-id="${runs.alpha}"]`).getByTestId("run-select").check();
    await page.locator(`[data-testid="run-row"][data-run-id="${runs.gamma}"]`).getByTestId("run-select").check();
    await page.getByTestId("runs-compare").click();
    await page.locator('[data-testid="compare-page"][data-runs="2"]').waitFor({ timeout: 10_000 });
    const url = new URL(page.url());
    assert.equal(url.pathname, "/compare");
    assert.deepEqual(url.searchParams.get("runs").split(","), [runs.alpha, runs.gamma]);

    const shown = await page.getByTestId("compare-run").evaluateAll((rs) => rs.map((r) => r.getAttribute("data-run-id")));
    assert.deepEqual(shown, [runs.alpha, runs.gamma]);
    const row = (k) => page.locator(`[data-testid="compare-param-row"][data-key="${k}"]`);
    assert.equal(await row("lr").getAttribute("data-differs"), "true");
    assert.deepEqual(await row("lr").getByTestId("compare-param-value").allTextContents(), ["0.01", "0.001"]);
    assert.equal(await row("optimizer").getAttribute("data-differs"), "true");
    assert.equal(await row("layers").getAttribute("data-differs"), "true");
    assert.match(await row("lr").getAttribute("class"), /diff/);
    assert.match(await page.getByTestId("compare-diff-count").textContent(), /3 of 3 differ/);

    const loss = page.locator('[data-testid="compare-chart"][data-key="loss"]');
    await eventually(async () => (await loss.getAttribute("data-points")) === String(2 * LOSS_POINTS), 10_000);
    assert.equal(await loss.getAttribute("data-series"), "2");
    assert.equal(await page.getByTestId("pc-line").count(), 2);
    assert.equal(await page.getByTestId("parallel-coords").getAttribute("data-dims"), "5"); // 3 params + acc + loss
    await page.screenshot({ path: join(ARTIFACTS, "tracking-compare.png"), fullPage: true });

    // Compare two runs that share a param value: that row is not highlighted.
    await page.goto(`${base}/compare?runs=${runs.alpha},${runs.beta}`);
    await page.locator('[data-testid="compare-page"][data-runs="2"]').waitFor({ timeout: 10_000 });
    assert.equal(await row("optimizer").getAttribute("data-differs"), "false");
    assert.equal(await row("lr").getAttribute("data-differs"), "true");
    await page.getByTestId("compare-only-diff").check();
    assert.equal(await row("optimizer").count(), 0);
    assert.equal(await row("lr").count(), 1);
  });

  it("shows a viewer the experiments and runs with no write controls", async () => {
    const vctx = await browser.newContext({ viewport: { width: 1280, height: 800 } });
    const vpage = await vctx.newPage();
    const errs = [];
    watchErrors(vpage, errs);
    await signInForm(vpage, base, VIEWER.username, VIEWER.password);
    const sw = vpage.getByTestId("project-switcher");
    await sw.waitFor({ timeout: 10_000 });
    await sw.selectOption(project.id);
    await vpage.locator(`[data-testid="project-switcher"][data-project-id="${project.id}"]`).waitFor({ timeout: 5000 });
    await vpage.getByTestId("nav-experiments").click();
    await vpage.locator(`[data-testid="experiment-row"][data-experiment-id="${expId}"]`).waitFor({ timeout: 10_000 });
    assert.equal(await vpage.getByTestId("experiments-page").getAttribute("data-can-write"), "false");
    for (const id of ["experiment-create-form", "experiment-rename", "experiment-delete", "experiment-restore"]) {
      assert.equal(await vpage.getByTestId(id).count(), 0, `viewer sees no ${id}`);
    }
    await vpage.getByTestId("experiments-view-type").selectOption("ALL");
    await vpage.locator('[data-testid="experiment-row"][data-name="e2e-scratch-renamed"]').waitFor({ timeout: 10_000 });
    assert.equal(await vpage.getByTestId("experiment-restore").count(), 0);
    await vpage.screenshot({ path: join(ARTIFACTS, "tracking-experiments-viewer.png"), fullPage: true });
    // The runs table still reads.
    await vpage.locator(`[data-testid="experiment-row"][data-experiment-id="${expId}"]`).getByTestId("experiment-link").click();
    await vpage.getByTestId("run-row").first().waitFor({ timeout: 10_000 });
    assert.deepEqual(errs, []);
    await vctx.close();
  });

  it("had no page errors", (t) => {
    t.diagnostic(`server features used: ${JSON.stringify(caps)}`);
    assert.deepEqual(pageErrors, []);
  });
});
