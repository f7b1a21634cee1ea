// Browser tests for the project switcher, the Members page and invitations:
// a real `kiln server` on a fresh data directory, set up through the HTTP API
// as the admin, and driven through Debian's Chromium as several users.
//
//   KILN_BIN=build/kiln node --test tests/e2e/members.test.mjs
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
  signInForm,
  startServer,
  watchErrors,
} from "./harness.mjs";

const ADMIN_PASSWORD = "Kiln-e2e-Admin-7q!Pw";
const VIEWER = { username: "e2e-viewer", email: "viewer@example.com", password: "Viewer-e2e-4k#Secret" };
const EDITOR = { username: "e2e-editor", email: "editor@example.com", password: "Editor-e2e-9z#Secret" };
const NEWBIE = { username: "e2e-newbie", email: "newbie@example.com", password: "Newbie-e2e-3m#Secret" };

async function ok(promise, what) {
  const r = await promise;
  assert.equal(r.status, 200, `${what}: ${JSON.stringify(r.body)}`);
  return r.body;
}

/** Signs in through the login form (whatever the app keeps the session in). */
const signIn = (page, base, user, { goto = true } = {}) =>
  signInForm(page, base, user.username, user.password, { goto });

/** Makes a project current through the switcher and waits until the app shows it. */
async function switchTo(page, projectId) {
  const sw = page.getByTestId("project-switcher");
  await sw.waitFor({ timeout: 10_000 });
  await sw.selectOption(projectId);
  await page.locator(`[data-testid="project-switcher"][data-project-id="${projectId}"]`).waitFor({ timeout: 5000 });
}

async function openMembers(page, projectId) {
  await page.getByTestId("nav-members").click();
  await page.locator(`[data-testid="members-page"][data-project-id="${projectId}"]`).waitFor({ timeout: 10_000 });
  // both lists loaded
  await page.getByTestId("project-member-row").first().waitFor({ timeout: 10_000 });
  await page.getByTestId("org-member-row").first().waitFor({ timeout: 10_000 });
}

const WRITE_CONTROLS = [
  "project-member-role-select",
  "project-member-remove",
  "project-member-add-form",
  "org-member-role-select",
  "org-member-remove",
  "members-invite",
];

async function countControls(page) {
  const out = {};
  for (const id of WRITE_CONTROLS) out[id] = await page.getByTestId(id).count();
  out.selects = await page.getByTestId("members-page").locator("select").count();
  out.buttons = await page.getByTestId("members-page").locator("button").count();
  return out;
}

describe("project switcher, members and invitations", { timeout: 240_000 }, () => {
  let dataDir;
  let server;
  let base;
  let browser;
  let adminCtx;
  let adminPage;
  const pageErrors = [];
  let adminToken;
  let admin; // whoami user
  let adminProject; // the admin's default project
  const ids = {}; // username -> user id
  const personal = {}; // username -> their own default project id

  before(async () => {
    mkdirSync(ARTIFACTS, { recursive: true });
    dataDir = mkdtempSync(join(tmpdir(), "kiln-e2e-members-"));
    server = startServer(dataDir, { KILN_ADMIN_PASSWORD: ADMIN_PASSWORD });
    base = await server.url;

    adminToken = (await ok(api(base, "POST", "/api/v1/auth/token", { body: { username: "admin", password: ADMIN_PASSWORD } }), "admin sign-in")).access_token;
    admin = (await ok(api(base, "GET", "/api/v1/auth/whoami", { token: adminToken }), "whoami")).user;
    const projects = (await ok(api(base, "GET", "/api/v1/projects", { token: adminToken }), "projects")).projects;
    adminProject = projects.find((p) => p.id === admin.default_project_id);
    assert.ok(adminProject, "the admin has a default project");

    // Two more users in the admin's org: a viewer and an editor of its project.
    for (const [u, role] of [[VIEWER, "viewer"], [EDITOR, "editor"]]) {
      const created = await ok(
        api(base, "POST", "/api/v1/users", { token: adminToken, body: { username: u.username, email: u.email, password: u.password } }),
        `create ${u.username}`,
      );
      ids[u.username] = created.user.id;
      personal[u.username] = created.user.default_project_id;
      await ok(api(base, "PUT", `/api/v1/orgs/${adminProject.org_id}/members/${ids[u.username]}`, { token: adminToken, body: { role: "member" } }), "org member");
      await ok(api(base, "PUT", `/api/v1/projects/${adminProject.id}/members/${ids[u.username]}`, { token: adminToken, body: { role } }), "project member");
    }

    browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: CHROMIUM_ARGS });
    adminCtx = await browser.newContext({ viewport: { width: 1280, height: 800 } });
    adminPage = await adminCtx.newPage();
    watchErrors(adminPage, pageErrors);
    await signIn(adminPage, base, { username: "admin", password: ADMIN_PASSWORD });
  });

  after(async () => {
    await browser?.close().catch(() => {});
    if (server && server.child.exitCode === null && server.child.signalCode === null) {
      server.child.kill("SIGTERM");
      await server.exited;
    }
    if (dataDir) rmSync(dataDir, { recursive: true, force: true });
  });

  it("shows a viewer no write controls, while the admin on the same page has them", async () => {
    const ctx = await browser.newContext({ viewport: { width: 1280, height: 800 } });
    const page = await ctx.newPage();
    const errs = [];
    watchErrors(page, errs);
    await signIn(page, base, VIEWER);

    // The viewer starts in their own default project, where they are admin.
    const sw = page.getByTestId("project-switcher");
    await page.locator(`[data-testid="project-switcher"][data-project-id="${personal[VIEWER.username]}"]`).waitFor({ timeout: 10_000 });
    const groups = await sw.locator("optgroup").evaluateAll((gs) => gs.map((g) => g.label).sort());
    assert.deepEqual(groups, ["admin", VIEWER.username].sort(), "projects are grouped by org");
    assert.equal(await page.getByLabel("Project", { exact: true }).getAttribute("data-testid"), "project-switcher", "the switcher is a labelled control");

    await switchTo(page, adminProject.id);
    assert.equal(await sw.getAttribute("data-role"), "viewer");
    await openMembers(page, adminProject.id);
    const names = await page.getByTestId("project-member-name").allTextContents();
    assert.ok(names.some((n) => n.includes(VIEWER.username)) && names.some((n) => n.includes(EDITOR.username)), names.join());
    assert.equal((await page.getByTestId("members-my-role").textContent()).trim(), "viewer");
    const viewerControls = await countControls(page);
    assert.deepEqual(viewerControls, Object.fromEntries([...WRITE_CONTROLS, "selects", "buttons"].map((k) => [k, 0])));
    assert.equal(await page.getByTestId("nav-invitations").count(), 0, "no invitations in the nav");
    await page.screenshot({ path: join(ARTIFACTS, "members-viewer.png"), fullPage: true });

    // Opening /invitations directly says why, with no form.
    await page.goto(base + "/invitations");
    await page.getByTestId("invitations-not-allowed").waitFor({ timeout: 10_000 });
    assert.equal(await page.getByTestId("invite-form").count(), 0);
    assert.equal(await page.getByTestId("invite-email").count(), 0);

    // In their own project the same user is admin and gets the controls.
    await switchTo(page, personal[VIEWER.username]);
    await page.getByTestId("nav-members").click();
    await page.locator(`[data-testid="members-page"][data-project-id="${personal[VIEWER.username]}"]`).waitFor();
    await page.getByTestId("project-member-role-select").first().waitFor({ timeout: 10_000 });
    await page.getByTestId("nav-invitations").waitFor();

    // The admin, on the Members page of the same project, sees every control.
    await switchTo(adminPage, adminProject.id);
    await openMembers(adminPage, adminProject.id);
    const adminControls = await countControls(adminPage);
    for (const id of WRITE_CONTROLS) assert.ok(adminControls[id] > 0, `admin sees ${id}: ${JSON.stringify(adminControls)}`);
    assert.equal(adminControls["project-member-role-select"], 3, "one role select per project member");
    await adminPage.getByTestId("nav-invitations").waitFor();
    await adminPage.screenshot({ path: join(ARTIFACTS, "members-admin.png"), fullPage: true });
    assert.deepEqual(errs, []);
    await ctx.close();
  });

  it("changes a member's role through the UI, and the API reports the new role", async () => {
    const row = adminPage.locator(`[data-testid="project-member-row"][data-user-id="${ids[EDITOR.username]}"]`);
    await row.waitFor();
    assert.equal(await row.getAttribute("data-role"), "editor");
    await row.getByTestId("project-member-role-select").selectOption("admin");
    await adminPage.locator(`[data-testid="project-member-row"][data-user-id="${ids[EDITOR.username]}"][data-role="admin"]`).waitFor({ timeout: 10_000 });
    const members = (await ok(api(base, "GET", `/api/v1/projects/${adminProject.id}/members`, { token: adminToken }), "members")).members;
    assert.equal(members.find((m) => m.user_id === ids[EDITOR.username]).role, "admin");

    // Org roles too: the viewer becomes an org admin, then a member again.
    const orgRow = adminPage.locator(`[data-testid="org-member-row"][data-user-id="${ids[VIEWER.username]}"]`);
    await orgRow.getByTestId("org-member-role-select").selectOption("admin");
    await adminPage.locator(`[data-testid="org-member-row"][data-user-id="${ids[VIEWER.username]}"][data-role="admin"]`).waitFor({ timeout: 10_000 });
    let org = (await ok(api(base, "GET", `/api/v1/orgs/${adminProject.org_id}/members`, { token: adminToken }), "org members")).members;
    assert.equal(org.find((m) => m.user_id === ids[VIEWER.username]).role, "admin");
    await adminPage.locator(`[data-testid="org-member-row"][data-user-id="${ids[VIEWER.username]}"]`).getByTestId("org-member-role-select").selectOption("member");
    await adminPage.locator(`[data-testid="org-member-row"][data-user-id="${ids[VIEWER.username]}"][data-role="member"]`).waitFor({ timeout: 10_000 });

    // The last owner cannot step down: the refusal is shown in words and nothing changes.
    const me = adminPage.locator(`[data-testid="org-member-row"][data-user-id="${admin.id}"]`);
    assert.equal(await me.getAttribute("data-role"), "owner");
    await me.getByTestId("org-member-role-select").selectOption("member");
    const err = adminPage.getByTestId("org-member-error");
    await err.waitFor({ timeout: 10_000 });
    assert.match(await err.textContent(), /Could not make admin a member: .*at least one owner/i);
    assert.match(await err.textContent(), /CONFLICT/);
    await eventually(async () => (await me.getByTestId("org-member-role-select").inputValue()) === "owner");
    org = (await ok(api(base, "GET", `/api/v1/orgs/${adminProject.org_id}/members`, { token: adminToken }), "org members")).members;
    assert.equal(org.find((m) => m.user_id === admin.id).role, "owner");
    await adminPage.screenshot({ path: join(ARTIFACTS, "members-last-owner.png"), fullPage: true });

    // Removing a project member after confirming.
    const editorRow = adminPage.locator(`[data-testid="project-member-row"][data-user-id="${ids[EDITOR.username]}"]`);
    await editorRow.getByTestId("project-member-remove").click();
    await adminPage.getByTestId("remove-dialog").waitFor();
    await adminPage.getByTestId("remove-confirm").click();
    await editorRow.waitFor({ state: "detached", timeout: 10_000 });
    const after = (await ok(api(base, "GET", `/api/v1/projects/${adminProject.id}/members`, { token: adminToken }), "members")).members;
    assert.equal(after.some((m) => m.user_id === ids[EDITOR.username]), false);

    // ...and adding them back from the org's members.
    await adminPage.getByTestId("project-member-add-user").selectOption(ids[EDITOR.username]);
    await adminPage.getByTestId("project-member-add-role").selectOption("editor");
    await adminPage.getByTestId("project-member-add-submit").click();
    await adminPage.locator(`[data-testid="project-member-row"][data-user-id="${ids[EDITOR.username]}"][data-role="editor"]`).waitFor({ timeout: 10_000 });
  });

  it("switches the current project, and the choice survives a reload", async () => {
    const target = personal[EDITOR.username];
    await switchTo(adminPage, target);
    await adminPage.locator(`[data-testid="members-page"][data-project-id="${target}"]`).waitFor({ timeout: 10_000 });
    await adminPage.getByTestId("members-org-name").filter({ hasText: EDITOR.username }).waitFor();
    await adminPage.reload();
    await adminPage.locator(`[data-testid="project-switcher"][data-project-id="${target}"]`).waitFor({ timeout: 10_000 });
    assert.equal(await adminPage.getByTestId("project-switcher").inputValue(), target);
    await adminPage.locator(`[data-testid="members-page"][data-project-id="${target}"]`).waitFor({ timeout: 10_000 });

    // Keyboard: the switcher is reachable and changes with the arrow keys.
    await adminPage.getByTestId("project-switcher").focus();
    assert.equal(await adminPage.evaluate(() => document.activeElement?.getAttribute("data-testid")), "project-switcher");

    await switchTo(adminPage, adminProject.id);
    await adminPage.reload();
    await adminPage.locator(`[data-testid="project-switcher"][data-project-id="${adminProject.id}"]`).waitFor({ timeout: 10_000 });
  });

  it("invites by e-mail through the UI; the invitee accepts the link after signing in", async () => {
    const created = await ok(
      api(base, "POST", "/api/v1/users", { token: adminToken, body: { username: NEWBIE.username, email: NEWBIE.email, password: NEWBIE.password } }),
      "create newbie",
    );
    ids[NEWBIE.username] = created.user.id;

    await adminPage.getByTestId("nav-invitations").click();
    await adminPage.locator(`[data-testid="invitations-page"][data-org-id="${adminProject.org_id}"]`).waitFor({ timeout: 10_000 });
    await adminPage.getByTestId("invite-email").fill(NEWBIE.email);
    await adminPage.getByTestId("invite-target").selectOption(adminProject.id);
    await adminPage.getByTestId("invite-role").selectOption("editor");
    await adminPage.getByTestId("invite-submit").click();
    const result = adminPage.getByTestId("invite-result");
    await result.waitFor({ timeout: 10_000 });
    assert.equal(await result.getAttribute("data-delivery"), "link", "no mail server in the test: a link to pass on");
    const link = new URL((await adminPage.getByTestId("invite-link").textContent()).trim());
    assert.equal(link.pathname, "/invitations/accept");
    assert.ok(link.searchParams.get("token"), "the link carries a token");
    await adminPage.screenshot({ path: join(ARTIFACTS, "invitation-link.png"), fullPage: true });
    await adminPage.getByTestId("invite-result-close").click();

    const inviteRow = adminPage.getByTestId("invitation-row").filter({ hasText: NEWBIE.email });
    await inviteRow.and(adminPage.locator('[data-status="pending"]')).waitFor({ timeout: 10_000 });

    // The invitee opens the link signed out, signs in, and lands back on it.
    const ctx = await browser.newContext({ viewport: { width: 1280, height: 800 } });
    const page = await ctx.newPage();
    const errs = [];
    watchErrors(page, errs);
    await page.goto(base + link.pathname + link.search);
    await page.getByTestId("login-page").waitFor({ timeout: 10_000 });
    const next = new URL(page.url()).searchParams.get("next");
    assert.equal(next, link.pathname + link.search, "next= points back at the invitation");
    await signIn(page, base, NEWBIE, { goto: false });
    await page.getByTestId("accept-page").waitFor({ timeout: 10_000 });
    assert.match(await page.getByTestId("accept-user").textContent(), new RegExp(NEWBIE.username));
    // What the invitation offers is shown before accepting it.
    await page.getByTestId("accept-offer-role").filter({ hasText: "editor" }).waitFor({ timeout: 10_000 });
    assert.match(await page.getByTestId("accept-offer").textContent(), new RegExp(adminProject.name));
    await page.getByTestId("accept-submit").click();
    await page.getByTestId("accept-done").waitFor({ timeout: 10_000 });
    // The dashboard switched to the project the invitation was for.
    await page.locator(`[data-testid="project-switcher"][data-project-id="${adminProject.id}"]`).waitFor({ timeout: 10_000 });
    assert.equal(await page.getByTestId("project-switcher").getAttribute("data-role"), "editor");
    assert.equal(new URL(page.url()).search, "", "the spent token left the address bar");
    await page.screenshot({ path: join(ARTIFACTS, "invitation-accepted.png"), fullPage: true });
    const members = (await ok(api(base, "GET", `/api/v1/projects/${adminProject.id}/members`, { token: adminToken }), "members")).members;
    assert.equal(members.find((m) => m.user_id === ids[NEWBIE.username])?.role, "editor");

    // The link works once: a second visit says so and offers no Accept.
    await page.goto(base + link.pathname + link.search);
    await page.getByTestId("accept-offer-status").filter({ hasText: "accepted" }).waitFor({ timeout: 10_000 });
    assert.equal(await page.getByTestId("accept-submit").isDisabled(), true);
    assert.deepEqual(errs, []);
    await ctx.close();

    await adminPage.reload();
    const accepted = inviteRow.and(adminPage.locator('[data-status="accepted"]'));
    await accepted.waitFor({ timeout: 10_000 });
    assert.match(await accepted.getByTestId("invitation-role").textContent(), /editor in project default/);
    assert.equal((await accepted.getByTestId("invitation-invited-by").textContent()).trim(), "admin");
  });

  it("revokes a pending invitation; its link stops working", async () => {
    await adminPage.goto(base + "/invitations");
    await adminPage.getByTestId("invite-email").fill("later@example.com");
    await adminPage.getByTestId("invite-role").selectOption("member");
    await adminPage.getByTestId("invite-submit").click();
    await adminPage.getByTestId("invite-result").waitFor({ timeout: 10_000 });
    const token = new URL((await adminPage.getByTestId("invite-link").textContent()).trim()).searchParams.get("token");
    await adminPage.getByTestId("invite-result-close").click();

    const row = adminPage.getByTestId("invitation-row").filter({ hasText: "later@example.com" });
    await row.and(adminPage.locator('[data-status="pending"]')).waitFor({ timeout: 10_000 });
    await row.getByTestId("invitation-revoke").click();
    await adminPage.getByTestId("revoke-invite-dialog").waitFor();
    await adminPage.getByTestId("revoke-invite-confirm").click();
    await row.and(adminPage.locator('[data-status="revoked"]')).waitFor({ timeout: 10_000 });
    assert.equal(await row.getByTestId("invitation-revoke").count(), 0);
    await adminPage.getByTestId("invitations-status-filter").selectOption("revoked");
    await eventually(async () => {
      const st = await adminPage.getByTestId("invitation-row").evaluateAll((rs) => rs.map((r) => r.dataset.status));
      return st.length === 1 && st[0] === "revoked";
    });
    await adminPage.getByTestId("invitations-status-filter").selectOption("");
    await adminPage.getByTestId("invitation-row").nth(1).waitFor();
    await adminPage.screenshot({ path: join(ARTIFACTS, "invitations.png"), fullPage: true });

    const newbieToken = (await ok(api(base, "POST", "/api/v1/auth/token", { body: { username: NEWBIE.username, password: NEWBIE.password } }), "newbie sign-in")).access_token;
    const r = await api(base, "POST", "/api/v1/invitations/accept", { token: newbieToken, body: { token } });
    assert.notEqual(r.status, 200, "a revoked invitation cannot be accepted");
    assert.deepEqual(pageErrors, []);
  });
});
