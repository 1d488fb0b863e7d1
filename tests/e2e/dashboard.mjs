// A graphql-ws dashboard client for the end-to-end tests, built like the
// README's example: it keeps a view (status + newest activities) from the
// `dashboard` subscription, and every RECONNECT_EVERY messages it drops its
// socket and resubscribes with `after` = the view's seq.
//
//   node dashboard.mjs WS_URL USER_ID KEEP UNTIL_SEQ RECONNECT_EVERY TIMEOUT_SECONDS
//
// Prints one JSON line per message: {"seq", "reset", "session"}; the first
// line of the first session is the snapshot (the caller writes after it).
// Once the view reaches UNTIL_SEQ it prints {"view": {seq, status,
// activities}} and exits 0; 2 on timeout; 1 on any error or on a delta that
// is not the view's seq + 1.

import { createClient } from "graphql-ws";
import WebSocket from "ws";

const [url, userId, keepArg, untilArg, everyArg, timeoutArg] = process.argv.slice(2);
if (!url || !userId || !keepArg || !untilArg || !everyArg || !timeoutArg) {
  process.stderr.write(
    "usage: node dashboard.mjs WS_URL USER_ID KEEP UNTIL_SEQ RECONNECT_EVERY TIMEOUT_SECONDS\n",
  );
  process.exit(64);
}
const KEEP = Number.parseInt(keepArg, 10);
const untilSeq = Number.parseInt(untilArg, 10);
const reconnectEvery = Number.parseInt(everyArg, 10);

const DASHBOARD = `subscription($u: String!, $after: Int, $n: Int) {
  dashboard(userId: $u, after: $after, activities: $n) {
    seq reset status { alertLevel version seq } activities { id seq type } } }`;

const view = { seq: null, status: null, activities: [] };
let session = 0;
let finished = false;

function emit(line) {
  process.stdout.write(`${JSON.stringify(line)}\n`);
}

function finish(code, message) {
  if (finished) return;
  finished = true;
  if (message) process.stderr.write(`dashboard.mjs: ${message}\n`);
  process.stdout.write("", () => process.exit(code));
}

setTimeout(() => finish(2, `timed out at seq ${view.seq}`), Number.parseFloat(timeoutArg) * 1000);

function apply(m) {
  if (m.reset) Object.assign(view, { status: m.status, activities: m.activities });
  else if (m.seq !== view.seq + 1) return finish(1, `delta ${m.seq} after ${view.seq}`);
  else if (m.status) view.status = m.status;
  else view.activities = [...m.activities, ...view.activities].slice(0, KEEP);
  view.seq = m.seq;
}

function open() {
  session += 1;
  const mine = session;
  let received = 0;
  let live = true;
  const client = createClient({ url, webSocketImpl: WebSocket, retryAttempts: 0 });
  const reopen = async () => {
    live = false; // ignore anything this socket still delivers
    await client.dispose();
    if (!finished) setTimeout(open, 10);
  };
  client.subscribe(
    { query: DASHBOARD, variables: { u: userId, after: view.seq, n: KEEP } },
    {
      next: ({ data, errors }) => {
        if (finished || !live) return;
        if (errors?.length) return finish(1, `errors: ${JSON.stringify(errors)}`);
        apply(data.dashboard);
        emit({ seq: data.dashboard.seq, reset: data.dashboard.reset, session: mine });
        if (view.seq >= untilSeq) {
          emit({ view });
          return finish(0);
        }
        received += 1;
        if (received >= reconnectEvery) reopen();
      },
      error: (error) => {
        if (live) finish(1, `subscription failed: ${JSON.stringify(error)}`);
      },
      complete: () => {},
    },
  );
}

open();
