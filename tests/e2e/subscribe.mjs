// A graphql-ws (graphql-transport-ws) client for the end-to-end tests.
//
//   node subscribe.mjs WS_URL USER_ID COUNT TIMEOUT_SECONDS
//
// Subscribes to activityAdded(userId) and userStatusChanged(userId), selecting
// every field, and prints one JSON line per event on stdout:
//
//   {"op": "userStatusChanged", "data": {...UserStatus}}
//   {"op": "activityAdded", "data": {...Activity}}
//
// and one line {"ready": true} as soon as both subscriptions are proven live
// (see below). It exits 0 after COUNT events (the initial status snapshot
// counts as one), 2 when TIMEOUT_SECONDS pass first, and 1 on any error
// (connection failure, GraphQL error, a subscription ending early).
//
// Readiness. graphql-ws has no per-subscription acknowledgement: the server
// starts listening for a subscription some time after the "subscribe"
// message, and a change committed before that is not delivered. So the
// script waits for two events that can only arrive once each subscription is
// listening:
//
// * userStatusChanged sends the user's current status first; the server
//   subscribes to the user's channel before it reads that status, so once the
//   snapshot has arrived every later change is delivered. The user MUST
//   already have a status (the caller seeds one), or the script times out.
// * activityAdded has no snapshot, so the script adds a probe activity for the
//   user (type "e2e.probe", over the same socket) and waits for it to come
//   back. A probe committed before the subscription was listening is never
//   delivered, so if the probe has not come back within PROBE_RETRY_MS a new
//   one is sent. Probes are not printed or counted (they are logged on
//   stderr), and they take sequence numbers: callers must not assume the
//   user's first real activity has seq 1.
//
// Only when both have happened is {"ready": true} printed.

import { randomUUID } from "node:crypto";

import { createClient } from "graphql-ws";
import WebSocket from "ws";

const PROBE_TYPE = "e2e.probe";
const PROBE_RETRY_MS = 500;

const ACTIVITY_FIELDS = "id userId seq type description timestamp metadata";
const STATUS_FIELDS =
  "userId lastCheckIn nextDue alertLevel alertTriggeredAt version updatedAt";

const ACTIVITY_ADDED = `subscription ActivityAdded($userId: String!) {
  activityAdded(userId: $userId) { ${ACTIVITY_FIELDS} }
}`;
const USER_STATUS_CHANGED = `subscription UserStatusChanged($userId: String!) {
  userStatusChanged(userId: $userId) { ${STATUS_FIELDS} }
}`;
const ADD_PROBE = `mutation Probe($input: AddActivityInput!) {
  addActivity(input: $input) { seq }
}`;

function usage(message) {
  process.stderr.write(`${message}\nusage: node subscribe.mjs WS_URL USER_ID COUNT TIMEOUT_SECONDS\n`);
  process.exit(64);
}

const [url, userId, countArg, timeoutArg] = process.argv.slice(2);
if (!url || !userId || countArg === undefined || timeoutArg === undefined) {
  usage("missing arguments");
}
const wanted = Number.parseInt(countArg, 10);
const timeoutSeconds = Number.parseFloat(timeoutArg);
if (!Number.isInteger(wanted) || wanted < 1) usage(`bad COUNT: ${countArg}`);
if (!(timeoutSeconds > 0)) usage(`bad TIMEOUT_SECONDS: ${timeoutArg}`);

const probeToken = randomUUID();
let received = 0;
let statusLive = false;
let activityLive = false;
let ready = false;
let finished = false;
let probeTimer = null;
let probesSent = 0;
const unsubscribes = [];

function emit(line) {
  process.stdout.write(`${JSON.stringify(line)}\n`);
}

function log(message) {
  process.stderr.write(`subscribe.mjs: ${message}\n`);
}

const client = createClient({
  url,
  webSocketImpl: WebSocket,
  lazy: false,
  retryAttempts: 0,
  onNonLazyError: (error) => finish(1, `connection failed: ${describe(error)}`),
  on: {
    connected: () => log("connected"),
    closed: (event) => {
      if (!finished) finish(1, `socket closed early: ${describe(event)}`);
    },
    error: (error) => {
      if (!finished) finish(1, `socket error: ${describe(error)}`);
    },
  },
});

const deadline = setTimeout(() => {
  finish(
    2,
    `timed out after ${timeoutSeconds}s: ready=${ready} (status snapshot: ${statusLive}, ` +
      `probe returned: ${activityLive}, probes sent: ${probesSent}), ` +
      `${received} of ${wanted} events`,
  );
}, timeoutSeconds * 1000);

function describe(value) {
  if (value instanceof Error) return value.stack || value.message;
  if (value && typeof value === "object" && "code" in value && "reason" in value) {
    return `close code ${value.code} reason ${JSON.stringify(String(value.reason))}`;
  }
  try {
    return JSON.stringify(value);
  } catch {
    return String(value);
  }
}

async function finish(code, message) {
  if (finished) return;
  finished = true;
  clearTimeout(deadline);
  clearTimeout(probeTimer);
  if (message) log(message);
  for (const unsubscribe of unsubscribes) {
    try {
      unsubscribe();
    } catch {
      // The socket may already be gone.
    }
  }
  try {
    await client.dispose();
  } catch {
    // Ditto.
  }
  // Exit once stdout has been flushed to the pipe.
  process.stdout.write("", () => process.exit(code));
}

function checkReady() {
  if (!ready && statusLive && activityLive) {
    ready = true;
    emit({ ready: true });
  }
}

function countEvent(op, data) {
  emit({ op, data });
  received += 1;
  if (received >= wanted) finish(0);
}

function subscribe(name, query, onData) {
  const unsubscribe = client.subscribe(
    { query, variables: { userId } },
    {
      next: (result) => {
        if (finished) return;
        if (result.errors?.length) {
          finish(1, `${name} returned errors: ${describe(result.errors)}`);
          return;
        }
        onData(result.data[name]);
      },
      error: (error) => finish(1, `${name} failed: ${describe(error)}`),
      complete: () => {
        if (!finished) finish(1, `${name} completed before ${wanted} events`);
      },
    },
  );
  unsubscribes.push(unsubscribe);
}

function sendProbe() {
  if (finished || activityLive) return;
  probesSent += 1;
  const n = probesSent;
  const input = {
    userId,
    type: PROBE_TYPE,
    description: "readiness probe of the end-to-end client",
    metadata: { probe: probeToken, n },
  };
  log(`sending probe ${n}`);
  client.subscribe(
    { query: ADD_PROBE, variables: { input } },
    {
      next: (result) => {
        if (result.errors?.length) finish(1, `probe failed: ${describe(result.errors)}`);
      },
      error: (error) => finish(1, `probe failed: ${describe(error)}`),
      complete: () => {
        // Committed; if it has not come back by the time the retry fires, the
        // subscription was not yet listening when it was committed.
        if (!finished && !activityLive) probeTimer = setTimeout(sendProbe, PROBE_RETRY_MS);
      },
    },
  );
}

subscribe("activityAdded", ACTIVITY_ADDED, (activity) => {
  if (activity.type === PROBE_TYPE && activity.metadata?.probe === probeToken) {
    log(`probe ${activity.metadata.n} returned with seq ${activity.seq}`);
    if (!activityLive) {
      activityLive = true;
      clearTimeout(probeTimer);
      checkReady();
    }
    return;
  }
  countEvent("activityAdded", activity);
});

subscribe("userStatusChanged", USER_STATUS_CHANGED, (status) => {
  const first = !statusLive;
  statusLive = true;
  countEvent("userStatusChanged", status);
  if (first && !finished) {
    // The status subscription is live; prove the activity one with a probe.
    sendProbe();
  }
  checkReady();
});
