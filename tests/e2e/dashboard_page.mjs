// Drives the /dashboard page of the server in a real Chromium (playwright-core,
// no downloaded browser) for tests/e2e/test_dashboard_page.py.
//
//   node dashboard_page.mjs PAGE_URL CHROMIUM OUT_DIR TIMEOUT_SECONDS [TOKEN]
//
// With TOKEN (a server that needs credentials) it waits for the page to ask for
// a token, types it, and checks that u1 (seeded by the test) shows and opens;
// its one line then also says where the token could be found afterwards
// ("tokenSeen": the DOM, the input, the URL, storage, cookies or the console).
//
// Without TOKEN it prints one JSON line per step and waits, between steps, for what the test
// sends over HTTP to show on the page:
//
//   {"event": "ready"}                 the page is connected (the test checks in u1)
//   {"event": "escalated", ...}        u1 reached ALERT on the page (one delta on the
//                                      way was dropped: the page starts over from a
//                                      snapshot); alert.png saved; then the page's
//                                      socket is dropped
//   {"event": "resumed", "after": N}   the page reconnected and resubscribed with
//                                      after = N (the test checks in u1 again)
//   {"event": "done", "ok": true, ...} the new check-in is on the page; final.png saved
//
// On failure: {"event": "done", "ok": false, "error": "..."} and exit 1. The last
// line carries "blockedRequests" (requests to other hosts, aborted), "consoleErrors"
// (CSP violations included), "pageErrors" and "storage" (what the page stored).

import { chromium } from "playwright-core";

const [pageUrl, executablePath, outDir, timeoutArg, token] = process.argv.slice(2);
if (!pageUrl || !executablePath || !outDir || !timeoutArg) {
  process.stderr.write("usage: node dashboard_page.mjs PAGE_URL CHROMIUM OUT_DIR TIMEOUT_SECONDS\n");
  process.exit(64);
}
const timeoutMs = Number.parseFloat(timeoutArg) * 1000;
const started = Date.now();
const remaining = () => Math.max(1, timeoutMs - (Date.now() - started));
const LOOPBACK = new Set(["127.0.0.1", "localhost", "[::1]"]);
const VIEWPORT = { width: 1280, height: 800 };

const report = { event: "done", ok: false, blockedRequests: [], consoleErrors: [], pageErrors: [] };

function emit(line) {
  process.stdout.write(`${JSON.stringify(line)}\n`);
}

function log(message) {
  process.stderr.write(`dashboard_page.mjs: ${message}\n`);
}

const watchdog = setTimeout(() => {
  report.error = `watchdog: still running after ${timeoutArg}s + 5s`;
  process.stdout.write(`${JSON.stringify(report)}\n`, () => process.exit(1));
}, timeoutMs + 5000);

// Every WebSocket the page opens goes through this proxy, which records what the
// page sends and can drop the connection, as a network failure would.
const sockets = [];
const consoleText = [];
let dropDelta = false;

function isDelta(message) {
  try {
    const parsed = JSON.parse(String(message));
    return parsed.type === "next" && parsed.payload?.data?.dashboard?.reset === false;
  } catch {
    return false;
  }
}

async function waitFor(page, selector, what) {
  try {
    await page.locator(selector).first().waitFor({ state: "attached", timeout: remaining() });
  } catch (error) {
    const body = await page.locator("main").innerText().catch(() => "<none>");
    throw new Error(`${what} never showed (${selector}); the page shows: ${JSON.stringify(body.slice(0, 600))}`);
  }
}

async function state(page) {
  return page.evaluate(() => {
    const row = document.querySelector('#users tr[data-user-id="u1"]');
    const person = document.getElementById("person");
    return {
      rowLevel: row?.dataset.alertLevel ?? null,
      rowText: row?.innerText ?? null,
      users: [...document.querySelectorAll("#users tr")].map((tr) => tr.dataset.userId),
      personUser: person.dataset.userId ?? null,
      personLevel: person.dataset.alertLevel ?? null,
      personSeq: person.dataset.seq ? Number(person.dataset.seq) : null,
      feed: [...document.querySelectorAll("#feed li")].map((li) => ({
        seq: Number(li.dataset.seq),
        type: li.dataset.type,
      })),
      connection: document.getElementById("connection").dataset.state,
    };
  });
}

function subscribes(entry, name) {
  return entry.sent
    .map((text) => JSON.parse(text))
    .filter((message) => message.type === "subscribe" && message.payload.query.includes(name));
}

async function escalation(page) {
  await waitFor(page, '#connection[data-state="connected"]', "a connected socket");
  emit({ event: "ready" });

  // The test checks u1 in: the overview shows it live (userStatusFeed).
  await waitFor(page, '#users tr[data-user-id="u1"]', "u1 in the overview");
  await page.locator('#users tr[data-user-id="u1"]').click({ timeout: remaining() });
  await waitFor(page, '#feed li[data-type="check_in"]', "the check-in in u1's feed");
  report.checkedIn = await state(page);
  // The next delta gets lost: the page must notice the gap and start over.
  dropDelta = true;

  // The escalation (WARNING at nextDue, ALERT 2 s later) arrives by itself.
  await waitFor(page, '#users tr[data-user-id="u1"][data-alert-level="ALERT"]', "ALERT in the overview");
  await waitFor(page, '#person[data-alert-level="ALERT"]', "ALERT in u1's view");
  await waitFor(page, '#feed li[data-type="alert_triggered"]', "alert_triggered in u1's feed");
  report.escalated = await state(page);
  report.restartedWith = subscribes(sockets[0], "dashboard(").map((m) => m.payload.variables);
  report.alertScreenshot = `${outDir}/alert.png`;
  await page.screenshot({ path: report.alertScreenshot, timeout: remaining() });
  const seqBefore = report.escalated.personSeq;
  emit({ event: "escalated", ...report.escalated });

  // Drop the socket; the page must reconnect and resume from its watermark.
  const dropped = sockets.length;
  sockets[dropped - 1].ws.close({ code: 4000, reason: "dropped by the test" });
  while (sockets.length === dropped || subscribes(sockets.at(-1), "dashboard(").length === 0) {
    if (remaining() <= 1) throw new Error("the page never resubscribed after the socket dropped");
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  const [resubscribe] = subscribes(sockets.at(-1), "dashboard(");
  report.resumedWith = resubscribe.payload.variables;
  report.firstSubscribe = subscribes(sockets[0], "dashboard(")[0]?.payload.variables ?? null;
  emit({ event: "resumed", after: report.resumedWith.after, seqBefore });

  // The test checks u1 in again: a delta after the seam, no duplicate, no gap.
  await waitFor(page, '#users tr[data-user-id="u1"][data-alert-level="NONE"]', "NONE in the overview");
  await waitFor(page, '#person[data-alert-level="NONE"]', "NONE in u1's view");
  await page.waitForFunction(
    (seq) => Number(document.getElementById("person").dataset.seq) > seq + 1,
    seqBefore,
    { timeout: remaining() },
  );
  report.final = await state(page);
  report.sockets = sockets.length;
  report.storage = await page.evaluate(() => ({
    local: Object.keys(localStorage).length,
    session: Object.keys(sessionStorage).length,
    cookie: document.cookie,
    url: location.href,
  }));
  report.finalScreenshot = `${outDir}/final.png`;
  await page.screenshot({ path: report.finalScreenshot, timeout: remaining() });
  report.viewport = VIEWPORT;
}

async function signIn(page) {
  await waitFor(page, '#connection[data-state="refused"]', "the refused socket");
  await page.locator("#token-form").waitFor({ state: "visible", timeout: remaining() });
  report.notice = await page.locator("#notice").innerText();
  await page.locator("#token").fill(token);
  await page.locator("#token-form button").click({ timeout: remaining() });
  await waitFor(page, '#connection[data-state="connected"]', "a connected socket");
  // An admin sees everyone; a user's token is refused the list and opens its own user.
  await waitFor(page, '#users tr[data-user-id="u1"], #overview-error:not([hidden])', "the list");
  if (await page.locator("#overview-error").isVisible()) {
    report.overviewError = await page.locator("#overview-error").innerText();
    await page.locator("#open-user").fill("u1");
    await page.locator("#open-form button").click({ timeout: remaining() });
  } else {
    await page.locator('#users tr[data-user-id="u1"]').click({ timeout: remaining() });
  }
  await waitFor(page, '#feed li[data-type="check_in"]', "the check-in in u1's feed");
  // A refusal is final: the page must not retry it in a loop.
  await new Promise((resolve) => setTimeout(resolve, 2500));
  report.feedSubscribes = sockets.reduce(
    (count, entry) => count + subscribes(entry, "userStatusFeed").length,
    0,
  );
  report.final = await state(page);
  report.tokenFormHidden = await page.locator("#token-form").isHidden();
  const where = await page.evaluate(
    (secret) => ({
      dom: document.documentElement.outerHTML.includes(secret),
      input: document.getElementById("token").value.includes(secret),
      url: location.href.includes(secret),
      storage: [...Object.values(localStorage), ...Object.values(sessionStorage)].some((value) =>
        value.includes(secret),
      ),
      cookie: document.cookie.includes(secret),
    }),
    token,
  );
  where.cookies = (await page.context().cookies()).some((cookie) => cookie.value.includes(token));
  where.console = consoleText.some((text) => text.includes(token));
  report.tokenSeen = Object.keys(where).filter((name) => where[name]);
  report.sentInit = sockets
    .flatMap((entry) => entry.sent.map((text) => JSON.parse(text)))
    .filter((message) => message.type === "connection_init")
    .map((message) => message.payload);
}

let browser;
let page;
try {
  browser = await chromium.launch({
    executablePath,
    headless: true,
    timeout: remaining(),
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
           "--disable-background-networking", "--disable-component-update", "--disable-sync",
           "--disable-dev-shm-usage"],
  });
  const context = await browser.newContext({ viewport: VIEWPORT });
  await context.route("**/*", (route) => {
    const url = new URL(route.request().url());
    if (LOOPBACK.has(url.hostname)) return route.continue();
    report.blockedRequests.push(route.request().url());
    return route.abort("blockedbyclient");
  });
  await context.routeWebSocket(/\/graphql$/, (ws) => {
    const entry = { ws, sent: [] };
    const server = ws.connectToServer();
    ws.onMessage((message) => {
      entry.sent.push(String(message));
      server.send(message);
    });
    server.onMessage((message) => {
      if (dropDelta && isDelta(message)) {
        dropDelta = false;
        report.droppedDelta = JSON.parse(String(message)).payload.data.dashboard.seq;
        return; // lost on the way, as a message over MAX_RESPONSE_BYTES is
      }
      ws.send(message);
    });
    sockets.push(entry);
  });
  page = await context.newPage();
  page.on("console", (message) => {
    consoleText.push(message.text());
    if (message.type() === "error") report.consoleErrors.push(message.text());
  });
  page.on("pageerror", (error) => report.pageErrors.push(String(error)));

  log(`opening ${pageUrl}`);
  const response = await page.goto(pageUrl, { waitUntil: "load", timeout: remaining() });
  report.status = response?.status();
  report.csp = response?.headers()["content-security-policy"] ?? null;
  if (!response || !response.ok()) throw new Error(`GET ${pageUrl} answered ${report.status}`);
  if (token) {
    await signIn(page);
  } else {
    await escalation(page);
  }
  report.ok = true;
} catch (error) {
  report.error = error instanceof Error ? error.message : String(error);
  if (page) {
    try {
      report.failureScreenshot = `${outDir}/failure.png`;
      await page.screenshot({ path: report.failureScreenshot, timeout: 5000 });
    } catch {
      // No screenshot of a page that is gone.
    }
  }
} finally {
  if (browser) await browser.close().catch(() => {});
}
clearTimeout(watchdog);
process.stdout.write(`${JSON.stringify(report)}\n`, () => process.exit(report.ok ? 0 : 1));
