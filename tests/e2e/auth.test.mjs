// Browser tests for signing in, API keys and the audit log: starts a real
// `kiln server` (admin password from KILN_ADMIN_PASSWORD) on a fresh data
// directory and drives Debian's Chromium through playwright-core.
//
//   KILN_BIN=build/kiln node --test tests/e2e/auth.test.mjs
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { chromium } from "playwright-core";

import {
  ARTIFACTS,
  CHROMIUM,
  CHROMIUM_ARGS,
  api,
  eventually,
  getJSON,
  signInForm,
  startServer,
  watchErrors,
} from "./harness.mjs";

const ADMIN_PASSWORD = "Kiln-e2e-Admin-7q!Pw";
const USER_NAME = "e2e-viewer";
const USER_PASSWORD = "Viewer-e2e-4k#Secret";

const signIn = (page, base, username, password, shownAs = username) =>
  signInForm(page, base, username, password, { shownAs });

describe("sign-in, API keys and audit log", { timeout: 180_000 }, () => {
  let dataDir;
  let server;
  let base;
  let browser;
  let context;
  let page;
  const pageErrors = [];
  let fullKey = "";
  let keyId = "";

  before(async () => {
    mkdirSync(ARTIFACTS, { recursive: true });
    dataDir = mkdtempSync(join(tmpdir(), "kiln-e2e-auth-"));
    server = startServer(dataDir, { KILN_ADMIN_PASSWORD: ADMIN_PASSWORD });
    base = await server.url;
    browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: CHROMIUM_ARGS });
    context = await browser.newContext({ viewport: { width: 1280, height: 720 } });
    page = await context.newPage();
    watchErrors(page, pageErrors);
  });

  after(async () => {
    await browser?.close().catch(() => {});
    if (server && server.child.exitCode === null && server.child.signalCode === null) {
      server.child.kill("SIGTERM");
      await server.exited;
    }
    if (dataDir) rmSync(dataDir, { recursive: true, force: true });
  });

  it("sends signed-out visitors of protected pages to the login page; the overview stays public", async () => {
    await page.goto(base + "/api-keys");
    await page.getByTestId("login-page").waitFor({ timeout: 10_000 });
    const url = new URL(page.url());
    assert.equal(url.pathname, "/login");
    assert.equal(url.searchParams.get("next"), "/api-keys");
    assert.equal(await page.getByTestId("nav-audit").count(), 0);

    await page.getByTestId("nav-overview").click();
    await page.getByTestId("health-badge").filter({ hasText: /^ok$/ }).waitFor({ timeout: 10_000 });
    assert.equal(await page.getByTestId("error-panel").count(), 0, "the overview works without signing in");
    assert.equal(await page.getByTestId("sign-in-link").count(), 1);
  });

  it("shows the server's message for a wrong password, and the wait when throttled", async () => {
    await page.goto(base + "/login");
    await page.getByTestId("login-username").fill("admin");
    await page.getByTestId("login-password").fill("not-the-password-1");
    await page.getByTestId("login-submit").click();
    const err = page.getByTestId("login-error");
    await err.waitFor({ timeout: 10_000 });
    assert.match(await err.textContent(), /invalid username or password/i);
    assert.equal(new URL(page.url()).pathname, "/login");
    assert.equal((await context.cookies()).some((c) => c.name === "kiln_session"), false);
    await page.screenshot({ path: join(ARTIFACTS, "login.png"), fullPage: true });

    // The server throttles after five failures; provoke the 429 answer without spending them.
    const pattern = "**/api/v1/auth/session";
    await page.route(pattern, (route) =>
      route.fulfill({
        status: 429,
        contentType: "application/json",
        headers: { "Retry-After": "7" },
        body: JSON.stringify({ error_code: "REQUEST_LIMIT_EXCEEDED", message: "too many failed logins" }),
      }),
    );
    await page.getByTestId("login-submit").click();
    await err.filter({ hasText: "Too many attempts, try again in 7 s" }).waitFor({ timeout: 5000 });
    await page.unroute(pattern);
  });

  it("signs in as the admin and shows the username with a sign-out button", async () => {
    await signIn(page, base, "admin", ADMIN_PASSWORD);
    assert.equal(new URL(page.url()).pathname, "/api-keys");
    await page.getByTestId("api-keys-page").waitFor();
    assert.equal(await page.getByTestId("sign-out").isVisible(), true);
    await page.getByTestId("nav-audit").waitFor({ timeout: 5000 });
    // The session lives in an HttpOnly cookie: no script on the page can read it,
    // and nothing secret sits in web storage.
    const cookies = Object.fromEntries((await context.cookies()).map((c) => [c.name, c]));
    assert.match(cookies.kiln_session.value, /^kses_/);
    assert.equal(cookies.kiln_session.httpOnly, true);
    assert.equal(cookies.kiln_session.sameSite, "Strict");
    assert.equal(cookies.kiln_csrf.httpOnly, false);
    const visible = await page.evaluate(() => document.cookie);
    assert.equal(visible.includes("kiln_session"), false);
    assert.equal(visible.includes(cookies.kiln_csrf.value), true);
    const storage = await page.evaluate(() => JSON.stringify({ ...sessionStorage }) + JSON.stringify({ ...localStorage }));
    assert.equal(storage.includes("kses_"), false);
    assert.equal(storage.includes("kiln_rt_"), false);
  });

  it("creates an API key shown once, listed by prefix only, that works as a bearer token", async () => {
    await page.getByTestId("key-name-input").fill("e2e-ci");
    await page.getByTestId("scope-write").check();
    await page.getByTestId("key-create-submit").click();
    const dialog = page.getByTestId("new-key-dialog");
    await dialog.waitFor({ timeout: 10_000 });
    fullKey = (await page.getByTestId("new-key-value").textContent()).trim();
    assert.match(fullKey, /^kiln_[0-9A-Za-z]{20,}$/);
    assert.match(await page.getByTestId("new-key-warning").textContent(), /shown only once/);
    await page.getByTestId("new-key-close").click();
    await dialog.waitFor({ state: "detached" });

    const row = page.getByTestId("key-row").filter({ hasText: "e2e-ci" });
    await row.waitFor();
    keyId = await row.getAttribute("data-key-id");
    const prefix = (await row.getByTestId("key-prefix").textContent()).replace("…", "").trim();
    assert.ok(prefix.length >= 8 && fullKey.startsWith(prefix), `prefix ${prefix} of the key`);
    assert.equal((await row.getByTestId("key-status").textContent()).trim(), "active");
    assert.match(await row.getByTestId("key-scopes").textContent(), /read.*write/);
    assert.equal((await page.content()).includes(fullKey), false, "the full key is gone once the dialog closes");

    const who = await api(base, "GET", "/api/v1/auth/whoami", { token: fullKey });
    assert.equal(who.status, 200);
    assert.equal(who.body.user.username, "admin");
    assert.equal(who.body.auth.kind, "api_key");
  });

  it("rotates a key: the new key is shown once and the old one is in grace", async () => {
    await page.getByTestId("key-name-input").fill("e2e-rotating");
    await page.getByTestId("key-create-submit").click();
    await page.getByTestId("new-key-dialog").waitFor({ timeout: 10_000 });
    const first = (await page.getByTestId("new-key-value").textContent()).trim();
    await page.getByTestId("new-key-close").click();

    const row = page.getByTestId("key-row").filter({ hasText: "e2e-rotating" });
    await row.getByTestId("key-rotate").click();
    await page.getByTestId("rotate-dialog").waitFor();
    await page.getByTestId("rotate-grace-input").fill("600");
    await page.getByTestId("rotate-confirm").click();
    await page.getByTestId("new-key-dialog").waitFor({ timeout: 10_000 });
    const second = (await page.getByTestId("new-key-value").textContent()).trim();
    assert.match(second, /^kiln_/);
    assert.notEqual(second, first);
    await page.getByTestId("new-key-close").click();
    await row.and(page.locator('[data-status="in grace"]')).waitFor({ timeout: 5000 });
    assert.equal((await api(base, "GET", "/api/v1/auth/whoami", { token: first })).status, 200, "old key in grace");
    assert.equal((await api(base, "GET", "/api/v1/auth/whoami", { token: second })).status, 200, "new key");
    await page.screenshot({ path: join(ARTIFACTS, "api-keys.png"), fullPage: true });
  });

  it("revokes a key after confirmation; the key stops working", async () => {
    const row = page.locator(`[data-testid="key-row"][data-key-id="${keyId}"]`);
    await row.getByTestId("key-revoke").click();
    await page.getByTestId("revoke-dialog").waitFor();
    await page.getByTestId("revoke-cancel").click();
    assert.equal((await api(base, "GET", "/api/v1/auth/whoami", { token: fullKey })).status, 200, "cancel keeps it");

    await row.getByTestId("key-revoke").click();
    await page.getByTestId("revoke-confirm").click();
    await row.getByTestId("key-status").filter({ hasText: "revoked" }).waitFor({ timeout: 5000 });
    assert.equal(await row.getByTestId("key-revoke").count(), 0);
    assert.equal((await api(base, "GET", "/api/v1/auth/whoami", { token: fullKey })).status, 401);
  });

  it("lists key.create and auth.login entries in the audit log, with filters", async () => {
    await page.getByTestId("nav-audit").click();
    await page.getByTestId("audit-page").waitFor();
    await page.locator('[data-testid="audit-row"][data-action="key.create"]').first().waitFor({ timeout: 10_000 });
    await page.locator('[data-testid="audit-row"][data-action="auth.login"]').first().waitFor();
    await page.locator('[data-testid="audit-row"][data-action="key.revoke"]').first().waitFor();
    const outcomes = await page
      .locator('[data-testid="audit-row"][data-action="auth.login"]')
      .getByTestId("audit-outcome")
      .allTextContents();
    assert.ok(outcomes.map((o) => o.trim()).includes("failure"), `failed login recorded: ${outcomes}`);
    assert.ok(outcomes.map((o) => o.trim()).includes("success"), `login recorded: ${outcomes}`);
    const login = page.locator('[data-testid="audit-row"][data-action="auth.login"]').first();
    assert.match(await login.getByTestId("audit-client").textContent(), /127\.0\.0\.1/);
    await page.screenshot({ path: join(ARTIFACTS, "audit.png"), fullPage: true });

    await page.getByTestId("audit-filter-action").fill("key.create");
    await page.getByTestId("audit-apply").click();
    await eventually(async () => {
      const actions = await page.getByTestId("audit-row").evaluateAll((rows) => rows.map((r) => r.dataset.action));
      return actions.length === 2 && actions.every((a) => a === "key.create");
    });
  });

  it("pages the audit log with Load more", async () => {
    await page.getByTestId("audit-filter-action").fill("");
    await page.getByTestId("audit-apply").click();
    await page.locator('[data-testid="audit-row"][data-action="auth.login"]').first().waitFor();
    const total = await page.getByTestId("audit-row").count();
    // Ask for tiny pages by rewriting max_results on the way out.
    await page.route("**/api/v1/audit?*", (route) => {
      const u = new URL(route.request().url());
      u.searchParams.set("max_results", "2");
      return route.continue({ url: u.toString() });
    });
    await page.getByTestId("audit-apply").click();
    await eventually(async () => (await page.getByTestId("audit-row").count()) === 2);
    await page.getByTestId("audit-load-more").click();
    await eventually(async () => (await page.getByTestId("audit-row").count()) === 4);
    const seqs = await page.getByTestId("audit-row").evaluateAll((rows) => rows.map((r) => Number(r.dataset.seq)));
    assert.deepEqual([...seqs].sort((a, b) => b - a), seqs, "newest first, no repeats across pages");
    assert.equal(new Set(seqs).size, seqs.length);
    await page.unroute("**/api/v1/audit?*");
    assert.ok(total > 4, `enough entries to page (${total})`);
  });

  it("hides the audit log from a non-admin and answers /audit with not allowed", async () => {
    const tok = await api(base, "POST", "/api/v1/auth/token", { body: { username: "admin", password: ADMIN_PASSWORD } });
    assert.equal(tok.status, 200);
    const created = await api(base, "POST", "/api/v1/users", {
      token: tok.body.access_token,
      body: { username: USER_NAME, email: "viewer@example.com", password: USER_PASSWORD },
    });
    assert.equal(created.status, 200, JSON.stringify(created.body));

    const ctx = await browser.newContext({ viewport: { width: 1280, height: 720 } });
    const p2 = await ctx.newPage();
    const errs = [];
    watchErrors(p2, errs);
    await signIn(p2, base, "viewer@example.com", USER_PASSWORD, USER_NAME); // e-mail works as the username
    assert.equal((await p2.getByTestId("user-name").textContent()).trim(), USER_NAME);
    await p2.getByTestId("nav-api-keys").waitFor();
    assert.equal(await p2.getByTestId("nav-audit").count(), 0);
    await p2.getByTestId("keys-empty").waitFor({ timeout: 5000 }); // the admin's keys are not listed

    await p2.goto(base + "/audit");
    await p2.getByTestId("not-allowed").waitFor({ timeout: 10_000 });
    assert.match(await p2.getByTestId("not-allowed").textContent(), /not allowed/);
    assert.equal(await p2.getByTestId("audit-row").count(), 0);
    assert.equal(new URL(p2.url()).pathname, "/audit", "a 403 does not sign the user out");
    assert.deepEqual(errs, []);
    await ctx.close();
  });

  it("keeps the session across a reload, and refuses a state change without the CSRF token", async () => {
    await page.goto(base + "/api-keys");
    await page.getByTestId("key-row").first().waitFor({ timeout: 10_000 });
    await page.reload();
    await page.getByTestId("key-row").first().waitFor({ timeout: 10_000 });
    assert.equal(await page.getByTestId("login-page").count(), 0);
    assert.match((await page.getByTestId("user-name").textContent()).trim(), /^admin/);
    // What a forged request riding on the cookie would look like: no X-CSRF-Token.
    const forged = await page.evaluate(async () => {
      const r = await fetch("/api/v1/api-keys", {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ name: "forged" }),
      });
      return { status: r.status, body: await r.json() };
    });
    assert.equal(forged.status, 403);
    assert.equal(forged.body.error_code, "PERMISSION_DENIED");
    await page.reload();
    await page.getByTestId("key-row").first().waitFor({ timeout: 10_000 });
    assert.equal(await page.getByTestId("key-row").filter({ hasText: "forged" }).count(), 0);
  });

  it("signs out to the login page and the old session cookie stops working", async () => {
    const session = (await context.cookies()).find((c) => c.name === "kiln_session").value;
    await page.getByTestId("sign-out").click();
    await page.getByTestId("login-page").waitFor({ timeout: 10_000 });
    assert.equal(new URL(page.url()).pathname, "/login");
    assert.equal((await context.cookies()).some((c) => c.name === "kiln_session"), false);
    assert.equal(await page.getByTestId("sign-out").count(), 0);
    // revoked on the server, not only forgotten by the browser
    const r = await fetch(base + "/api/v1/auth/whoami", { headers: { Cookie: `kiln_session=${session}` } });
    assert.equal(r.status, 401);

    // Protected pages send the visitor back to the login page.
    await page.goto(base + "/api-keys");
    await page.getByTestId("login-page").waitFor({ timeout: 10_000 });
    assert.deepEqual(pageErrors, []);
  });
});
