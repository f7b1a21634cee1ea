// Shared by the browser tests: where things are, how Chromium starts, and a
// real `kiln server` on a fresh data directory.
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { dirname, isAbsolute, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

export const HERE = dirname(fileURLToPath(import.meta.url));
export const REPO = resolve(HERE, "..", "..");
export const ARTIFACTS = join(HERE, "artifacts");
export const KILN_BIN = process.env.KILN_BIN
  ? isAbsolute(process.env.KILN_BIN)
    ? process.env.KILN_BIN
    : resolve(process.cwd(), process.env.KILN_BIN)
  : join(REPO, "build", "kiln");
export const CHROMIUM = process.env.CHROMIUM_BIN ?? "/usr/bin/chromium";
export const CHROMIUM_ARGS = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
];
export const START_TIMEOUT_MS = 20_000;
export const STOP_TIMEOUT_MS = 10_000;

/** Starts `kiln server` and resolves with its base URL once it prints the listening line. */
export function startServer(dataDir, env = {}) {
  const child = spawn(KILN_BIN, ["server", "--data", dataDir, "--listen", "127.0.0.1:0"], {
    stdio: ["ignore", "pipe", "pipe"],
    env: { ...process.env, ...env },
  });
  const log = [];
  const exited = new Promise((res) => child.on("exit", (code, signal) => res({ code, signal })));
  const url = new Promise((res, rej) => {
    let buf = "";
    const timer = setTimeout(
      () => rej(new Error(`no "listening on http://127.0.0.1:PORT" line within ${START_TIMEOUT_MS} ms\n${log.join("")}`)),
      START_TIMEOUT_MS,
    );
    child.stdout.setEncoding("utf8");
    child.stdout.on("data", (chunk) => {
      log.push(chunk);
      buf += chunk;
      let nl;
      while ((nl = buf.indexOf("\n")) >= 0) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        const m = /listening on (http:\/\/127\.0\.0\.1:\d+)/.exec(line);
        if (m) {
          clearTimeout(timer);
          res(m[1]);
        }
      }
    });
    child.stderr.setEncoding("utf8");
    child.stderr.on("data", (chunk) => log.push(chunk));
    child.on("error", (e) => {
      clearTimeout(timer);
      rej(new Error(`cannot start ${KILN_BIN}: ${e.message}`));
    });
    exited.then(({ code, signal }) => {
      clearTimeout(timer);
      rej(new Error(`kiln server exited early (code ${code}, signal ${signal})\n${log.join("")}`));
    });
  });
  return { child, url, exited, log };
}

export async function getJSON(base, path) {
  const res = await fetch(base + path, { headers: { Accept: "application/json" } });
  const text = await res.text();
  let body;
  try {
    body = JSON.parse(text);
  } catch {
    assert.fail(`${path}: expected JSON, got ${res.headers.get("content-type")}: ${text.slice(0, 200)}`);
  }
  return { status: res.status, body, headers: res.headers };
}

/** Polls fn until it returns a truthy value (or throws the last assertion after timeoutMs). */
export async function eventually(fn, timeoutMs = 5000, stepMs = 50) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      const v = await fn();
      if (v) return v;
      if (Date.now() > deadline) assert.fail("condition not met in time");
    } catch (e) {
      if (Date.now() > deadline) throw e;
    }
    await new Promise((r) => setTimeout(r, stepMs));
  }
}


/** A JSON request from node (not the browser); returns status, parsed body and headers. */
export async function api(base, method, path, { token, body } = {}) {
  const headers = { Accept: "application/json" };
  if (token) headers.Authorization = `Bearer ${token}`;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const res = await fetch(base + path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  const text = await res.text();
  return { status: res.status, body: text ? JSON.parse(text) : undefined, headers: res.headers };
}

/** Collects uncaught page errors and console errors (not the failed-resource lines
 * Chromium logs for every non-2xx response: tests assert those statuses directly). */
export function watchErrors(page, sink) {
  page.on("pageerror", (e) => sink.push(`pageerror: ${e.message}`));
  page.on("console", (m) => {
    if (m.type() === "error" && !m.text().startsWith("Failed to load resource")) sink.push(`console: ${m.text()}`);
  });
}

/** Signs in through the login form and waits for the top bar to show shownAs. */
export async function signInForm(page, base, username, password, { shownAs = username, goto = true } = {}) {
  if (goto) await page.goto(base + "/login");
  await page.getByTestId("login-username").fill(username);
  await page.getByTestId("login-password").fill(password);
  await page.getByTestId("login-submit").click();
  await page.getByTestId("user-name").filter({ hasText: shownAs }).waitFor({ timeout: 10_000 });
}
