// Drives the GraphiQL page of the server in a real Chromium (playwright-core,
// no downloaded browser) for the end-to-end tests.
//
//   node graphiql.mjs PAGE_URL CHROMIUM SCREENSHOT QUERY EXPECTED TIMEOUT_SECONDS [THEN_EXPECTED]
//
// Opens PAGE_URL, puts QUERY into the query editor through the keyboard, runs
// it with the execute button, waits until the response pane contains the text
// EXPECTED. With THEN_EXPECTED (a subscription: the pane shows each event), it
// then prints {"step": "shown", "response": "<pane text>"} and waits until the
// pane contains THEN_EXPECTED, the caller having caused that event meanwhile.
// Then it saves a screenshot at SCREENSHOT, and prints one JSON line:
//
//   {"ok": true, "response": "<response pane text>", "screenshot": "...", ...}
//
// On failure it still prints one JSON line, {"ok": false, "error": "...", ...},
// saves a screenshot if it can, and exits 1. Both lines carry
// "blockedRequests": every request to a host other than the loopback one is
// aborted (the tests use no network but loopback) and listed there, and
// "failedRequests", "consoleErrors" and "pageErrors".

import { chromium } from "playwright-core";

const [pageUrl, executablePath, screenshotPath, query, expected, timeoutArg, thenExpected] =
  process.argv.slice(2);
if (!pageUrl || !executablePath || !screenshotPath || !query || !expected || !timeoutArg) {
  process.stderr.write(
    "usage: node graphiql.mjs PAGE_URL CHROMIUM SCREENSHOT QUERY EXPECTED TIMEOUT_SECONDS\n",
  );
  process.exit(64);
}
const timeoutMs = Number.parseFloat(timeoutArg) * 1000;
const started = Date.now();
const remaining = () => Math.max(1, timeoutMs - (Date.now() - started));

const LOOPBACK = new Set(["127.0.0.1", "localhost", "[::1]"]);

const report = {
  ok: false,
  blockedRequests: [],
  failedRequests: [],
  consoleErrors: [],
  pageErrors: [],
};

function log(message) {
  process.stderr.write(`graphiql.mjs: ${message}\n`);
}

// Hard stop, whatever Playwright is doing.
const watchdog = setTimeout(() => {
  report.error = `watchdog: still running after ${timeoutArg}s + 5s`;
  process.stdout.write(`${JSON.stringify(report)}\n`, () => process.exit(1));
}, timeoutMs + 5000);

let browser;
let page;
try {
  browser = await chromium.launch({
    executablePath,
    headless: true,
    timeout: remaining(),
    args: [
      "--headless",
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
      "--disable-dev-shm-usage",
    ],
  });
  // A new context is a fresh, empty profile: no stored headers or tabs from
  // an earlier GraphiQL session.
  const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
  await context.route("**/*", (route) => {
    const url = new URL(route.request().url());
    if (LOOPBACK.has(url.hostname) || url.protocol === "data:" || url.protocol === "blob:") {
      return route.continue();
    }
    report.blockedRequests.push(route.request().url());
    return route.abort("blockedbyclient");
  });
  page = await context.newPage();
  page.on("requestfailed", (request) => {
    report.failedRequests.push(`${request.url()}: ${request.failure()?.errorText}`);
  });
  page.on("console", (message) => {
    if (message.type() === "error") report.consoleErrors.push(message.text());
  });
  // An uncaught error before the editor appears means GraphiQL will not start
  // (e.g. a script that did not load): stop waiting at once.
  let pageBroke;
  const pageError = new Promise((_, reject) => {
    pageBroke = reject;
  });
  pageError.catch(() => {});
  page.on("pageerror", (error) => {
    report.pageErrors.push(String(error));
    pageBroke(error);
  });

  log(`opening ${pageUrl}`);
  const response = await page.goto(pageUrl, { waitUntil: "load", timeout: remaining() });
  report.status = response?.status();
  if (!response || !response.ok()) throw new Error(`GET ${pageUrl} answered ${report.status}`);

  // GraphiQL renders its editors once its scripts have run.
  const editor = page.locator(".graphiql-query-editor .CodeMirror, .graphiql-query-editor [role=textbox]").first();
  try {
    await Promise.race([editor.waitFor({ state: "visible", timeout: remaining() }), pageError]);
  } catch (error) {
    throw new Error(
      `the GraphiQL query editor never appeared (${error instanceof Error ? error.message.split("\n")[0] : error}; ` +
        `body text: ${JSON.stringify((await page.locator("body").innerText()).slice(0, 200))})`,
    );
  }
  log("editor is visible");

  // Replace the example query: focus the editor, select all, delete, then
  // insert the text as one input event (typing key by key would fight the
  // editor's bracket auto-closing and completion popups).
  await editor.click();
  await page.keyboard.press("ControlOrMeta+A");
  await page.keyboard.press("Delete");
  await page.keyboard.insertText(query);
  await page.keyboard.press("Escape"); // close a completion popup, if any
  report.editorText = await page.evaluate(() => {
    const cm = document.querySelector(".graphiql-query-editor .CodeMirror");
    return cm?.CodeMirror ? cm.CodeMirror.getValue() : null;
  });
  if (report.editorText !== null && report.editorText !== query) {
    throw new Error(`the editor holds ${JSON.stringify(report.editorText)}, not the query`);
  }

  // GraphiQL parses the editor's text after a pause; until then it still sees the
  // example document's three operations, and its button opens a menu to pick one.
  await page
    .locator("button.graphiql-execute-button:not([aria-haspopup])")
    .click({ timeout: remaining() });
  log("execute clicked");

  const responsePane = page.locator(".graphiql-response");
  // The pane is an editor too: prefer its full value over the rendered text.
  const paneText = () =>
    page.evaluate(() => {
      const cm = document.querySelector(".graphiql-response .CodeMirror");
      return cm?.CodeMirror ? cm.CodeMirror.getValue() : document.querySelector(".graphiql-response").innerText;
    });
  const waitForPane = async (text) => {
    try {
      await page.waitForFunction(
        (wanted) => document.querySelector(".graphiql-response")?.innerText.includes(wanted),
        text,
        { timeout: remaining() },
      );
    } catch (error) {
      throw new Error(
        `the response pane never contained ${JSON.stringify(text)}; it shows ` +
          `${JSON.stringify(await responsePane.innerText().catch(() => "<none>"))} ` +
          `(${error instanceof Error ? error.message.split("\n")[0] : error})`,
      );
    }
  };
  await waitForPane(expected);
  if (thenExpected) {
    process.stdout.write(`${JSON.stringify({ step: "shown", response: await paneText() })}\n`);
    await waitForPane(thenExpected);
  }
  report.response = await paneText();
  await page.screenshot({ path: screenshotPath, fullPage: true, timeout: remaining() });
  report.screenshot = screenshotPath;
  report.ok = true;
} catch (error) {
  report.error = error instanceof Error ? error.message : String(error);
  if (page) {
    try {
      await page.screenshot({ path: screenshotPath, timeout: 5000 });
      report.screenshot = screenshotPath;
    } catch {
      // No screenshot of a page that is gone.
    }
  }
} finally {
  if (browser) await browser.close().catch(() => {});
}
clearTimeout(watchdog);
process.stdout.write(`${JSON.stringify(report)}\n`, () => process.exit(report.ok ? 0 : 1));
