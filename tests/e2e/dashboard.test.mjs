// Browser tests for the dashboard: starts a real `kiln server` on a fresh data
// directory, drives Debian's Chromium through playwright-core, and checks what a
// user sees against what the API answers.
//
//   KILN_BIN=build/kiln node --test tests/e2e/dashboard.test.mjs
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { chromium } from "playwright-core";

import { ARTIFACTS, CHROMIUM, CHROMIUM_ARGS, STOP_TIMEOUT_MS, eventually, getJSON, startServer } from "./harness.mjs";
describe("dashboard", { timeout: 120_000 }, () => {
  let dataDir;
  let server;
  let base;
  let browser;
  let page;
  const pageErrors = [];

  before(async () => {
    dataDir = mkdtempSync(join(tmpdir(), "kiln-e2e-"));
    server = startServer(dataDir);
    base = await server.url;
    browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: CHROMIUM_ARGS });
    const context = await browser.newContext({ viewport: { width: 1280, height: 720 } });
    page = await context.newPage();
    page.on("pageerror", (e) => pageErrors.push(`pageerror: ${e.message}`));
    page.on("console", (m) => {
      // Chromium logs every non-2xx response ("Failed to load resource"); a 503
      // from /readyz is a state the page shows, and statuses are asserted directly.
      if (m.type() === "error" && !m.text().startsWith("Failed to load resource")) {
        pageErrors.push(`console: ${m.text()}`);
      }
    });
  });

  after(async () => {
    await browser?.close().catch(() => {});
    if (server && server.child.exitCode === null && server.child.signalCode === null) {
      server.child.kill("SIGKILL"); // only when the shutdown test did not run or failed
      await server.exited;
    }
    if (dataDir) rmSync(dataDir, { recursive: true, force: true });
  });

  it("shows the server version and health from the API", async () => {
    const info = await getJSON(base, "/api/v1/server-info");
    assert.equal(info.status, 200);
    assert.equal(info.body.name, "kiln");
    assert.match(info.body.version, /^\d+\.\d+\.\d+/);
    const health = await getJSON(base, "/healthz");
    assert.deepEqual([health.status, health.body.status], [200, "ok"]);
    const ready = await getJSON(base, "/readyz");

    const res = await page.goto(base + "/");
    assert.equal(res.status(), 200);
    assert.match(res.headers()["content-type"] ?? "", /text\/html/);
    assert.equal(await page.title(), "Kiln");
    assert.equal((await page.getByTestId("app-title").textContent()).trim(), "Kiln");

    const version = page.getByTestId("server-version");
    await version.filter({ hasText: info.body.version }).waitFor({ timeout: 10_000 });
    assert.equal((await version.textContent()).trim(), info.body.version);

    const badge = page.getByTestId("health-badge");
    await badge.filter({ hasText: /^ok$/ }).waitFor({ timeout: 10_000 });
    assert.equal(await badge.getAttribute("data-tone"), "ok");

    const commit = (await page.getByTestId("server-commit").getAttribute("title")) ?? "";
    assert.equal(commit, info.body.commit);
    assert.equal((await page.getByTestId("store-driver").textContent()).trim(), info.body.store.driver);
    assert.equal(
      (await page.getByTestId("store-migrations").textContent()).trim(),
      String(info.body.store.migrations),
    );

    const readiness = (await page.getByTestId("readiness-badge").textContent()).trim();
    if (ready.status === 200) assert.equal(readiness, "ready");
    else {
      assert.equal(ready.status, 503);
      assert.equal(readiness, "not ready");
      assert.match(await page.getByTestId("readiness-detail").textContent(), new RegExp(ready.body.error_code));
    }

    assert.equal(await page.getByTestId("error-panel").count(), 0, "no error panel on a healthy server");
    assert.deepEqual(pageErrors, []);
  });

  it("refresh re-fetches and the uptime advances", async () => {
    const counter = page.getByTestId("last-refreshed");
    const uptime = page.getByTestId("server-uptime");
    const count0 = Number(await counter.getAttribute("data-refresh-count"));
    const up0 = Number(await uptime.getAttribute("data-uptime-s"));
    assert.ok(count0 >= 1, `initial load counted (${count0})`);
    assert.ok(Number.isFinite(up0) && up0 >= 0, `uptime is a number (${up0})`);

    await new Promise((r) => setTimeout(r, 1100)); // so even whole-second uptimes must advance
    const refetch = page.waitForResponse((r) => new URL(r.url()).pathname === "/api/v1/server-info");
    await page.getByTestId("refresh-button").click();
    assert.equal((await refetch).status(), 200);

    await eventually(async () => Number(await counter.getAttribute("data-refresh-count")) === count0 + 1);
    const up1 = Number(await uptime.getAttribute("data-uptime-s"));
    assert.ok(up1 > up0, `uptime advanced: ${up0} -> ${up1}`);
    assert.equal(await page.getByTestId("refresh-button").isEnabled(), true);
    assert.equal((await page.getByTestId("health-badge").textContent()).trim(), "ok");

    mkdirSync(ARTIFACTS, { recursive: true });
    await page.screenshot({ path: join(ARTIFACTS, "dashboard.png"), fullPage: true });
  });

  it("shows an error panel with the error_code when the API fails", async () => {
    const pattern = "**/api/v1/server-info";
    await page.route(pattern, (route) =>
      route.fulfill({
        status: 500,
        contentType: "application/json",
        body: JSON.stringify({ error_code: "internal", message: "store unavailable" }),
      }),
    );
    await page.getByTestId("refresh-button").click();
    const panel = page.getByTestId("error-panel");
    await panel.waitFor({ timeout: 5000 });
    assert.equal((await page.getByTestId("error-code").textContent()).trim(), "internal");
    assert.equal((await page.getByTestId("error-message").textContent()).trim(), "store unavailable");

    await page.unroute(pattern);
    await page.route(pattern, (route) => route.abort("connectionrefused"));
    await page.getByTestId("refresh-button").click();
    await page.getByTestId("error-code").filter({ hasText: "network_error" }).waitFor({ timeout: 5000 });
    assert.match(await panel.textContent(), /Cannot reach the Kiln server/);
    mkdirSync(ARTIFACTS, { recursive: true });
    await page.screenshot({ path: join(ARTIFACTS, "dashboard-error.png"), fullPage: true });

    await page.unroute(pattern);
    await page.getByTestId("refresh-button").click();
    await panel.waitFor({ state: "detached", timeout: 5000 });
    pageErrors.length = 0; // the failures above were provoked on purpose
  });

  it("serves the app for deep links (SPA fallback) but not for API paths", async () => {
    const index = await (await fetch(base + "/")).text();
    const deep = await fetch(base + "/some/spa/route");
    assert.equal(deep.status, 200);
    assert.match(deep.headers.get("content-type") ?? "", /text\/html/);
    assert.equal(await deep.text(), index, "deep link answers the same index.html");

    const res = await page.goto(base + "/some/spa/route");
    assert.equal(res.status(), 200);
    await page.getByTestId("app-shell").waitFor({ timeout: 10_000 });
    await page.getByTestId("not-found-page").waitFor();
    assert.equal((await page.getByTestId("not-found-path").textContent()).trim(), "/some/spa/route");

    // In-app navigation back to the overview without a reload.
    await page.getByTestId("nav-overview").click();
    await page.getByTestId("overview-page").waitFor();
    assert.equal(new URL(page.url()).pathname, "/");
    await page.getByTestId("health-badge").filter({ hasText: /^ok$/ }).waitFor({ timeout: 10_000 });

    const api = await getJSON(base, "/api/v1/no-such-route");
    assert.equal(api.status, 404, "unknown API paths are not answered with index.html");
    assert.equal(typeof api.body.error_code, "string");
    assert.equal(typeof api.body.message, "string");
    assert.deepEqual(pageErrors, []);
  });

  it("renders the API reference from the live OpenAPI description, one area at a time", async () => {
    const spec = await getJSON(base, "/api/openapi.json");
    assert.equal(spec.status, 200);
    const ops = Object.entries(spec.body.paths).flatMap(([p, item]) => Object.entries(item).map(([m, op]) => ({ id: `${m} ${p}`, tag: op.tags[0] })));
    const tags = spec.body.tags.map((t) => t.name);
    assert.deepEqual([...new Set(ops.map((o) => o.tag))].sort(), [...tags].sort(), "every tag is listed at the top level");
    const res = await page.goto(base + "/api/docs");
    assert.equal(res.status(), 200);
    // Swagger UI shows one area (tag) at a time, picked in its top bar; every
    // operation of the spec must show up in its area.
    const select = page.locator(".topbar select");
    await select.waitFor({ timeout: 15_000 });
    assert.deepEqual(await select.locator("option").allTextContents(), tags);
    let shown = 0;
    for (const tag of tags) {
      const want = ops.filter((o) => o.tag === tag).length;
      const part = await getJSON(base, `/api/openapi.json?tag=${encodeURIComponent(tag)}`);
      assert.equal(part.status, 200, tag);
      await select.selectOption(tag);
      await eventually(async () => (await page.locator(".opblock").count()) === want, 15_000).catch(() => {});
      assert.equal(await page.locator(".opblock").count(), want, `area ${tag}`);
      shown += want;
    }
    assert.equal(shown, ops.length);
    assert.equal((await getJSON(base, "/api/openapi.json?tag=no-such-area")).status, 404);
    await select.selectOption("system");
    await page.locator(".opblock-summary-path", { hasText: "/api/v1/echo" }).first().waitFor();
    assert.match(await page.locator(".info .title").first().textContent(), /Kiln API/);
    mkdirSync(ARTIFACTS, { recursive: true });
    await page.screenshot({ path: join(ARTIFACTS, "api-docs.png"), fullPage: false });
    assert.deepEqual(pageErrors, []);
  });

  it("stops cleanly on SIGTERM", async () => {
    await browser.close();
    browser = null;
    assert.ok(server.child.kill("SIGTERM"));
    let timer;
    const result = await Promise.race([
      server.exited,
      new Promise((r) => {
        timer = setTimeout(() => r({ code: "timeout", signal: null }), STOP_TIMEOUT_MS);
      }),
    ]);
    clearTimeout(timer);
    assert.deepEqual(result, { code: 0, signal: null }, `server exit status\n${server.log.join("")}`);
  });
});
