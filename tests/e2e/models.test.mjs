// Browser tests for the model registry pages: the models list (search,
// latest versions per stage, aliases), the model page (versions, moving a
// version to a stage with and without archiving, aliases, the model card,
// deleting) and what a viewer may do. A real `kiln server` on a fresh data
// directory; models and versions are registered from node through MLflow's
// registry REST API as the admin, then the pages are driven through Debian's
// Chromium, and every change is checked through the API afterwards.
//
//   KILN_BIN=build/kiln node --test tests/e2e/models.test.mjs
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { chromium } from "playwright-core";

import { ARTIFACTS, CHROMIUM, CHROMIUM_ARGS, api, eventually, signInForm, startServer, watchErrors } from "./harness.mjs";

const ADMIN_PASSWORD = "Kiln-e2e-Admin-9m!Pw";
const VIEWER = { username: "e2e-models-viewer", email: "mviewer@example.com", password: "Viewer-e2e-8z#Secret" };
const EDITOR = { username: "e2e-models-editor", email: "meditor@example.com", password: "Editor-e2e-3q#Secret" };

async function ok(promise, what) {
  const r = await promise;
  assert.equal(r.status, 200, `${what}: ${JSON.stringify(r.body)}`);
  return r.body;
}

describe("model registry dashboard", { timeout: 240_000 }, () => {
  let dataDir;
  let server;
  let base;
  let browser;
  let page;
  const pageErrors = [];
  let token;
  let project;
  let runId;

  const ml = (method, path, body) => ok(api(base, method, `/api/2.0/mlflow/${path}`, { token, body }), path);
  const version = async (name, v) => (await ml("GET", `model-versions/get?name=${encodeURIComponent(name)}&version=${v}`)).model_version;
  const model = async (name) => (await ml("GET", `registered-models/get?name=${encodeURIComponent(name)}`)).registered_model;

  before(async () => {
    mkdirSync(ARTIFACTS, { recursive: true });
    dataDir = mkdtempSync(join(tmpdir(), "kiln-e2e-models-"));
    server = startServer(dataDir, { KILN_ADMIN_PASSWORD: ADMIN_PASSWORD });
    base = await server.url;
    token = (await ok(api(base, "POST", "/api/v1/auth/token", { body: { username: "admin", password: ADMIN_PASSWORD } }), "sign-in")).access_token;
    const admin = (await ok(api(base, "GET", "/api/v1/auth/whoami", { token }), "whoami")).user;
    const projects = (await ok(api(base, "GET", "/api/v1/projects", { token }), "projects")).projects;
    project = projects.find((p) => p.id === admin.default_project_id);
    assert.ok(project, "the admin has a default project");

    const exp = (await ml("POST", "experiments/create", { name: "e2e-models" })).experiment_id;
    const run = (await ml("POST", "runs/create", { experiment_id: exp, run_name: "trainer" })).run;
    runId = run.info.run_id;
    await ml("POST", "registered-models/create", { name: "churn", description: "Predicts churn.\nTrained weekly.", tags: [{ key: "team", value: "growth" }] });
    for (let i = 0; i < 3; i++) {
      await ml("POST", "model-versions/create", { name: "churn", source: `${run.info.artifact_uri}/model`, run_id: runId });
    }
    await ml("POST", "model-versions/transition-stage", { name: "churn", version: "1", stage: "Production", archive_existing_versions: false });
    await ml("POST", "registered-models/create", { name: "fraud-detector" });
    // two versions of another model from two runs with different params and metrics: the compare view
    for (const [rname, lr, acc] of [["run-a", "0.1", 0.81], ["run-b", "0.01", 0.93]]) {
      const r = (await ml("POST", "runs/create", { experiment_id: exp, run_name: rname })).run;
      await ml("POST", "runs/log-batch", {
        run_id: r.info.run_id,
        params: [{ key: "lr", value: lr }, { key: "depth", value: "6" }],
        metrics: [0, 1, 2].map((step) => ({ key: "acc", value: acc - (2 - step) * 0.1, timestamp: Date.now(), step })),
      });
      await ml("POST", "model-versions/create", { name: "fraud-detector", source: `${r.info.artifact_uri}/model`, run_id: r.info.run_id });
    }

    const created = await ok(
      api(base, "POST", "/api/v1/users", { token, body: { username: VIEWER.username, email: VIEWER.email, password: VIEWER.password } }),
      "create viewer",
    );
    await ok(api(base, "PUT", `/api/v1/orgs/${project.org_id}/members/${created.user.id}`, { token, body: { role: "member" } }), "org member");
    await ok(api(base, "PUT", `/api/v1/projects/${project.id}/members/${created.user.id}`, { token, body: { role: "viewer" } }), "project viewer");
    const ed = await ok(
      api(base, "POST", "/api/v1/users", { token, body: { username: EDITOR.username, email: EDITOR.email, password: EDITOR.password } }),
      "create editor",
    );
    await ok(api(base, "PUT", `/api/v1/orgs/${project.org_id}/members/${ed.user.id}`, { token, body: { role: "member" } }), "org member");
    await ok(api(base, "PUT", `/api/v1/projects/${project.id}/members/${ed.user.id}`, { token, body: { role: "editor" } }), "project editor");

    browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: CHROMIUM_ARGS });
    const ctx = await browser.newContext({ viewport: { width: 1400, height: 900 } });
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

  it("lists models with their latest versions per stage, searches, and registers a new one", async () => {
    await page.getByTestId("nav-models").click();
    const churn = page.locator('[data-testid="model-row"][data-name="churn"]');
    await churn.waitFor({ timeout: 10_000 });
    assert.equal(await page.getByTestId("model-row").count(), 2);
    // newest per stage: v3 in None, v1 in Production
    const latest = await churn.getByTestId("model-latest").evaluateAll((xs) => xs.map((x) => `${x.getAttribute("data-stage")}:${x.textContent}`));
    assert.deepEqual(latest.sort(), ["None:v3 None", "Production:v1 Production"]);
    assert.match(await churn.textContent(), /team=growth/);

    const fraudLatest = page.locator('[data-testid="model-row"][data-name="fraud-detector"]').getByTestId("model-latest");
    assert.equal(await fraudLatest.textContent(), "v2 None");
    await page.getByTestId("models-search").fill("FRAUD");
    await page.getByTestId("models-search-submit").click();
    await eventually(async () => (await page.getByTestId("model-row").count()) === 1, 10_000);
    assert.equal(await page.getByTestId("model-row").getAttribute("data-name"), "fraud-detector");
    await page.getByTestId("models-search").fill("no-such-model");
    await page.getByTestId("models-search-submit").click();
    await page.getByTestId("models-empty").waitFor({ timeout: 10_000 });
    await page.getByTestId("models-search").fill("");
    await page.getByTestId("models-search-submit").click();
    await churn.waitFor({ timeout: 10_000 });

    await page.getByTestId("model-create-name").fill("e2e-new");
    await page.getByTestId("model-create-description").fill("made in the browser");
    await page.getByTestId("model-create-submit").click();
    await page.locator('[data-testid="model-row"][data-name="e2e-new"]').waitFor({ timeout: 10_000 });
    assert.equal((await model("e2e-new")).description, "made in the browser");
    // a taken name: the server's error inline
    await page.getByTestId("model-create-name").fill("churn");
    await page.getByTestId("model-create-submit").click();
    await page.getByTestId("model-create-error").filter({ hasText: "RESOURCE_ALREADY_EXISTS" }).waitFor({ timeout: 10_000 });
    await page.screenshot({ path: join(ARTIFACTS, "models-list.png"), fullPage: true });
  });

  it("moves versions between stages, archives the stage's others, and manages aliases", async () => {
    await page.locator('[data-testid="model-row"][data-name="churn"]').getByTestId("model-link").click();
    await page.getByTestId("model-page").waitFor({ timeout: 10_000 });
    const row = (v) => page.locator(`[data-testid="version-row"][data-version="${v}"]`);
    await row(3).waitFor({ timeout: 10_000 });
    assert.deepEqual(await page.getByTestId("version-row").evaluateAll((xs) => xs.map((x) => x.getAttribute("data-version"))), ["3", "2", "1"]);
    assert.equal(await row(1).getAttribute("data-stage"), "Production");
    assert.equal(await row(3).getByTestId("version-run-link").count(), 1);

    // v2 to Production without archiving: two versions in Production
    await row(2).getByTestId("version-stage-select").selectOption("Production");
    await row(2).getByTestId("version-stage-apply").click();
    await page.locator('[data-testid="version-row"][data-version="2"][data-stage="Production"]').waitFor({ timeout: 10_000 });
    assert.equal((await version("churn", 1)).current_stage, "Production");
    // v3 to Production, archiving the others
    await row(3).getByTestId("version-stage-select").selectOption("Production");
    await row(3).getByTestId("version-archive-existing").check();
    await row(3).getByTestId("version-stage-apply").click();
    await page.locator('[data-testid="version-row"][data-version="3"][data-stage="Production"]').waitFor({ timeout: 10_000 });
    await page.locator('[data-testid="version-row"][data-version="1"][data-stage="Archived"]').waitFor({ timeout: 10_000 });
    for (const [v, want] of [[1, "Archived"], [2, "Archived"], [3, "Production"]]) {
      assert.equal((await version("churn", v)).current_stage, want, `v${v}`);
      // each row's control shows the version's stage now, not the last choice made in it
      assert.equal(await row(v).getByTestId("version-stage-select").inputValue(), want, `v${v} control`);
    }
    assert.equal(await row(3).getByTestId("version-archive-existing").isChecked(), false);

    // aliases: set on v1, move to v3, remove
    await row(1).getByTestId("version-alias-input").fill("champion");
    await row(1).getByTestId("version-alias-set").click();
    await page.locator('[data-testid="alias-chip"][data-alias="champion"][data-version="1"]').waitFor({ timeout: 10_000 });
    await row(3).getByTestId("version-alias-input").fill("champion");
    await row(3).getByTestId("version-alias-set").click();
    await page.locator('[data-testid="alias-chip"][data-alias="champion"][data-version="3"]').waitFor({ timeout: 10_000 });
    assert.deepEqual((await model("churn")).aliases, [{ alias: "champion", version: "3" }]);
    // a reserved alias: the server's error inline
    await row(2).getByTestId("version-alias-input").fill("latest");
    await row(2).getByTestId("version-alias-set").click();
    await page.getByTestId("model-action-error").filter({ hasText: "INVALID_PARAMETER_VALUE" }).waitFor({ timeout: 10_000 });
    await page.locator('[data-testid="alias-chip"][data-alias="champion"]').getByTestId("alias-remove").click();
    await page.locator('[data-testid="alias-chip"]').first().waitFor({ state: "detached", timeout: 10_000 });
    assert.equal((await model("churn")).aliases, undefined);
    await page.screenshot({ path: join(ARTIFACTS, "models-model.png"), fullPage: true });
  });

  it("edits the model card and deletes a model", async () => {
    await page.goto(`${base}/models/churn`);
    await page.getByTestId("model-description").filter({ hasText: "Trained weekly." }).waitFor({ timeout: 10_000 });
    await page.getByTestId("model-description-edit").click();
    await page.getByTestId("model-description-input").fill("Predicts churn.\n\n## Data\nLast 90 days.");
    await page.getByTestId("model-description-save").click();
    await page.getByTestId("model-description").filter({ hasText: "Last 90 days." }).waitFor({ timeout: 10_000 });
    assert.equal((await model("churn")).description, "Predicts churn.\n\n## Data\nLast 90 days.");
    // the card is Markdown
    assert.equal(await page.getByTestId("model-description").locator("h2").textContent(), "Data");
    // ... sanitized: nothing a description says runs in the page
    await ml("PATCH", "registered-models/update", {
      name: "churn",
      description: 'Card\n\n<img src="x" onerror="window.__xss=1"><script>window.__xss=2</script>\n\n[click](javascript:window.__xss=3)',
    });
    await page.reload();
    await page.getByTestId("model-description").filter({ hasText: "Card" }).waitFor({ timeout: 10_000 });
    await page.waitForTimeout(300);
    assert.equal(await page.evaluate(() => window.__xss), undefined);
    assert.equal(await page.getByTestId("model-description").locator("script, [onerror]").count(), 0);
    const href = await page.getByTestId("model-description").locator("a").first().getAttribute("href");
    assert.ok(!href || !href.startsWith("javascript:"), `link kept as ${href}`);

    // comments on a version: add, edit own, delete
    await page.locator('[data-testid="version-row"][data-version="3"]').getByTestId("version-comments").click();
    await page.getByTestId("comments").waitFor({ timeout: 10_000 });
    await page.getByTestId("comment-input").fill("AUC 0.91 on the holdout");
    await page.getByTestId("comment-submit").click();
    await page.getByTestId("comment-body").filter({ hasText: "AUC 0.91" }).waitFor({ timeout: 10_000 });
    await page.getByTestId("comment-edit").click();
    await page.getByTestId("comment-edit-input").fill("AUC 0.92 on the holdout");
    await page.getByTestId("comment-edit-save").click();
    await page.getByTestId("comment-body").filter({ hasText: "AUC 0.92" }).waitFor({ timeout: 10_000 });
    const listed = await ok(api(base, "GET", "/api/v1/models/churn/versions/3/comments", { token }), "comments");
    assert.deepEqual(listed.comments.map((c) => c.body), ["AUC 0.92 on the holdout"]);
    await page.getByTestId("comment-input").fill("to be removed");
    await page.getByTestId("comment-submit").click();
    await page.getByTestId("comment").nth(1).waitFor({ timeout: 10_000 });
    await page.getByTestId("comment").nth(1).getByTestId("comment-delete").click();
    await eventually(async () => (await page.getByTestId("comment").count()) === 1, 10_000);

    await page.goto(`${base}/models/e2e-new`);
    await page.getByTestId("versions-empty").waitFor({ timeout: 10_000 });
    await page.getByTestId("model-delete").click();
    await page.getByTestId("model-delete-confirm").click();
    await page.getByTestId("models-page").waitFor({ timeout: 10_000 });
    assert.equal((await api(base, "GET", "/api/2.0/mlflow/registered-models/get?name=e2e-new", { token })).status, 404);

    // a model that does not exist: the error panel with the stable code
    await page.goto(`${base}/models/no-such-model`);
    await page.getByTestId("error-code").filter({ hasText: "RESOURCE_DOES_NOT_EXIST" }).waitFor({ timeout: 10_000 });
  });

  it("compares two versions' source runs side by side", async () => {
    await page.goto(`${base}/models/fraud-detector`);
    const row = (v) => page.locator(`[data-testid="version-row"][data-version="${v}"]`);
    await row(2).waitFor({ timeout: 10_000 });
    assert.equal(await page.getByTestId("versions-compare").getAttribute("aria-disabled"), "true");
    await row(1).getByTestId("version-pick").check();
    await row(2).getByTestId("version-pick").check();
    assert.equal(await page.getByTestId("versions-compare").getAttribute("aria-disabled"), "false");
    await page.getByTestId("versions-compare").click();
    // the page is there at once; its runs arrive after their calls
    await page.locator('[data-testid="compare-page"][data-runs="2"]').waitFor({ timeout: 10_000 });
    // columns named by version; the differing param stands out and the shared one does not
    await page.getByText("fraud-detector v2 · run-b").first().waitFor({ timeout: 10_000 });
    await page.getByText("fraud-detector v1 · run-a").first().waitFor({ timeout: 10_000 });
    await page.getByTestId("compare-only-diff").check();
    const paramRows = await page.getByTestId("compare-param-row").evaluateAll((xs) => xs.map((x) => x.getAttribute("data-key")));
    assert.deepEqual(paramRows, ["lr"]);
    await page.screenshot({ path: join(ARTIFACTS, "models-compare.png"), fullPage: true });
  });

  it("uploads a real scikit-learn model with a progress bar and checksums, and refuses an unsafe pickle", async () => {
    // made here: a trained scikit-learn model, and a pickle that would run os.system when loaded
    const dir = mkdtempSync(join(tmpdir(), "kiln-e2e-upload-"));
    execFileSync("/usr/bin/python3", ["-c", `
import os, pickle, sys
from sklearn.linear_model import LogisticRegression
m = LogisticRegression().fit([[0, 1], [1, 0], [1, 1], [0, 0]], [0, 1, 1, 0])
pickle.dump(m, open(sys.argv[1] + "/clf.pkl", "wb"), protocol=4)
class Evil:
    def __reduce__(self):
        return (os.system, ("echo pwned",))
pickle.dump(Evil(), open(sys.argv[1] + "/evil.pkl", "wb"), protocol=2)
`, dir]);
    await page.goto(`${base}/models`);
    await page.getByTestId("models-upload").click();
    await page.getByTestId("upload-page").waitFor({ timeout: 10_000 });
    await page.getByTestId("upload-input").setInputFiles(join(dir, "clf.pkl"));
    await page.getByTestId("upload-name").fill("uploaded-clf");
    await page.getByTestId("upload-submit").click();
    const result = page.getByTestId("upload-result");
    await result.waitFor({ timeout: 30_000 });
    assert.equal(await result.getAttribute("data-status"), "READY");
    assert.equal(await page.getByTestId("upload-format").textContent(), "pickle");
    const local = await page.getByTestId("upload-local-sha").textContent();
    assert.equal(await page.getByTestId("upload-server-sha").textContent(), local);
    assert.match(await page.getByTestId("upload-sha-match").textContent(), /matches/);
    const prog = page.getByTestId("upload-progress");
    assert.equal(await prog.getAttribute("data-sent"), await prog.getAttribute("data-total"));
    // the version through the API, then its scan report on the model page
    const v = await version("uploaded-clf", 1);
    assert.equal(v.status, "READY");
    assert.match(v.source, /^kiln-upload:/);
    await page.getByTestId("upload-model-link").click();
    await page.locator('[data-testid="version-row"][data-version="1"]').getByTestId("version-scan").click();
    await page.getByTestId("scan-report").waitFor({ timeout: 10_000 });
    assert.equal(await page.getByTestId("scan-format").textContent(), "pickle");
    assert.match(await page.getByTestId("scan-json").textContent(), /sklearn\.linear_model/);

    // the unsafe pickle: refused with the global named, inline
    await page.goto(`${base}/models/upload`);
    await page.getByTestId("upload-input").setInputFiles(join(dir, "evil.pkl"));
    await page.getByTestId("upload-name").fill("uploaded-evil");
    await page.getByTestId("upload-submit").click();
    const err = page.getByTestId("upload-error");
    await err.filter({ hasText: "UNSAFE_MODEL" }).waitFor({ timeout: 30_000 });
    assert.match(await err.textContent(), /(posix|os)\.system/);
    assert.equal(await page.getByTestId("upload-resume").count(), 0, "a refused file cannot be resumed");
    assert.equal((await version("uploaded-evil", 1)).status, "FAILED_REGISTRATION");
    await page.screenshot({ path: join(ARTIFACTS, "models-upload-refused.png"), fullPage: true });
    rmSync(dir, { recursive: true, force: true });
  });

  it("shows a version's lineage: its run, the run's experiment", async () => {
    await page.goto(`${base}/models/fraud-detector`);
    await page.locator('[data-testid="version-row"][data-version="2"]').getByTestId("version-lineage").click();
    const g = page.getByTestId("lineage-graph");
    await g.waitFor({ timeout: 10_000 });
    const nodes = await g.getByTestId("lineage-node").evaluateAll((xs) => xs.map((x) => x.getAttribute("data-type")).sort());
    assert.deepEqual(nodes, ["experiment", "model_version", "run"]);
    const edges = await g.getByTestId("lineage-edge").evaluateAll((xs) => xs.map((x) => x.getAttribute("data-type")).sort());
    assert.deepEqual(edges, ["logged_in", "produced_by"]);
    assert.match(await g.locator('[data-testid="lineage-node"][data-type="run"]').textContent(), /run-b/);
    await page.screenshot({ path: join(ARTIFACTS, "models-lineage.png"), fullPage: true });
  });

  it("asks for approval when the project requires it, and an admin approves in the inbox", async () => {
    // the admin sets the rules on the Approvals page
    await page.goto(`${base}/approvals`);
    await page.getByTestId("governance-form").waitFor({ timeout: 10_000 });
    await page.getByTestId("governance-production").check();
    await page.getByTestId("governance-aliases").fill("champion, Gold");
    await page.getByTestId("governance-save").click();
    await page.getByTestId("governance-saved").waitFor({ timeout: 10_000 });
    const rules = (await ok(api(base, "GET", "/api/v1/registry/governance", { token }), "rules")).governance;
    assert.equal(rules.require_approval_for_production, true);
    assert.deepEqual([...rules.protected_aliases].sort(), ["Gold", "champion"].sort());
    const ectx = await browser.newContext({ viewport: { width: 1400, height: 900 } });
    const epage = await ectx.newPage();
    const errs = [];
    watchErrors(epage, errs);
    await signInForm(epage, base, EDITOR.username, EDITOR.password);
    const sw = epage.getByTestId("project-switcher");
    await sw.waitFor({ timeout: 10_000 });
    await sw.selectOption(project.id);
    await epage.locator(`[data-testid="project-switcher"][data-project-id="${project.id}"]`).waitFor({ timeout: 5000 });
    await epage.goto(`${base}/models/fraud-detector`);
    const row = epage.locator('[data-testid="version-row"][data-version="2"]');
    await row.waitFor({ timeout: 10_000 });
    await row.getByTestId("version-stage-select").selectOption("Production");
    await row.getByTestId("version-stage-apply").click();
    await epage.getByTestId("approval-needed").waitFor({ timeout: 10_000 });
    assert.match(await epage.getByTestId("model-action-error").textContent(), /APPROVAL_REQUIRED/);
    assert.equal((await version("fraud-detector", 2)).current_stage, "None", "nothing changed yet");
    await epage.getByTestId("approval-request-comment").fill("better recall");
    await epage.getByTestId("approval-request").click();
    await epage.getByTestId("approval-requested").waitFor({ timeout: 10_000 });
    assert.deepEqual(errs, []);
    await ectx.close();

    // the admin's inbox
    await page.goto(`${base}/approvals`);
    const req = page.locator('[data-testid="approval-row"][data-state="PENDING"]');
    await req.waitFor({ timeout: 10_000 });
    assert.equal(await req.count(), 1);
    assert.match(await req.textContent(), /fraud-detector v2.*stage None → Production.*e2e-models-editor.*better recall/);
    await req.getByTestId("approval-comment").fill("ship it");
    await req.getByTestId("approval-approve").click();
    await page.getByTestId("approvals-empty").waitFor({ timeout: 10_000 });
    assert.equal((await version("fraud-detector", 2)).current_stage, "Production", "approving made the change");
    await page.getByTestId("approvals-state").selectOption("APPROVED");
    const done = page.locator('[data-testid="approval-row"][data-state="APPROVED"]');
    await done.waitFor({ timeout: 10_000 });
    assert.match(await done.textContent(), /by admin: ship it/);
    await page.screenshot({ path: join(ARTIFACTS, "models-approvals.png"), fullPage: true });
    await page.getByTestId("approvals-state").selectOption("PENDING");
    await page.getByTestId("governance-production").uncheck();
    await page.getByTestId("governance-aliases").fill("");
    await page.getByTestId("governance-save").click();
    await eventually(async () => !(await ok(api(base, "GET", "/api/v1/registry/governance", { token }), "rules")).governance.require_approval_for_production, 10_000);
  });

  it("shows a viewer models and versions with no write controls", async () => {
    const vctx = await browser.newContext({ viewport: { width: 1280, height: 800 } });
    const vpage = await vctx.newPage();
    const errs = [];
    watchErrors(vpage, errs);
    await signInForm(vpage, base, VIEWER.username, VIEWER.password);
    const sw = vpage.getByTestId("project-switcher");
    await sw.waitFor({ timeout: 10_000 });
    await sw.selectOption(project.id);
    await vpage.locator(`[data-testid="project-switcher"][data-project-id="${project.id}"]`).waitFor({ timeout: 5000 });
    await vpage.getByTestId("nav-models").click();
    await vpage.locator('[data-testid="model-row"][data-name="churn"]').waitFor({ timeout: 10_000 });
    assert.equal(await vpage.getByTestId("models-upload").count(), 0, "viewer sees no upload button");
    assert.equal(await vpage.getByTestId("model-create-form").count(), 0, "viewer sees no register form");
    await vpage.locator('[data-testid="model-row"][data-name="churn"]').getByTestId("model-link").click();
    await vpage.locator('[data-testid="version-row"][data-version="3"]').waitFor({ timeout: 10_000 });
    assert.equal(await vpage.getByTestId("model-page").getAttribute("data-can-write"), "false");
    await vpage.locator('[data-testid="version-row"][data-version="3"]').getByTestId("version-comments").click();
    await vpage.getByTestId("comment-body").filter({ hasText: "AUC 0.92" }).waitFor({ timeout: 10_000 });
    for (const id of ["comment-input", "comment-edit", "comment-delete"]) {
      assert.equal(await vpage.getByTestId(id).count(), 0, `viewer sees no ${id}`);
    }
    for (const id of ["version-stage-select", "version-alias-input", "model-delete", "model-description-edit", "model-create-form"]) {
      assert.equal(await vpage.getByTestId(id).count(), 0, `viewer sees no ${id}`);
    }
    assert.deepEqual(errs, []);
    await vctx.close();
  });

  it("had no page errors", () => {
    // the deliberate 404 above is an answered request, not a page error
    assert.deepEqual(pageErrors, []);
  });
});
