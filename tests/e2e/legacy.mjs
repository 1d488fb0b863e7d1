// The legacy subscriptions-transport-ws client, on the graphql-ws subprotocol,
// against the real server.
//
//   node legacy.mjs HTTP_URL WS_URL USER_ID TIMEOUT_SECONDS
//
// The user MUST already have a status. Steps, each printed as a JSON line
// {"op": ..., "data": ...}:
//
// 1. "protocol": the subprotocol the server chose.
// 2. "snapshot": the first result of userStatusChanged(userId).
// 3. "syntaxError": a second subscription whose document does not parse ends
//    with an error, and the socket stays open for the first one.
// 4. "mutation": recordCheckIn, over HTTP (not through this client).
// 5. "userStatusChanged": the change the check-in caused, on the subscription.
// 6. "stopped": unsubscribing sends stop; the client is then closed.

import assert from "node:assert/strict";

import { SubscriptionClient } from "subscriptions-transport-ws";
import WebSocket from "ws";

import { emit, post, queue, runSuite, suiteArgs } from "./suite.mjs";

const { httpUrl, wsUrl, userId, timeoutSeconds } = suiteArgs("legacy.mjs");

const STATUS_FIELDS = "userId lastCheckIn nextDue alertLevel alertTriggeredAt version updatedAt";
const STATUS_CHANGED = `subscription StatusChanged($userId: String!) {
  userStatusChanged(userId: $userId) { ${STATUS_FIELDS} }
}`;
const RECORD_CHECK_IN = `mutation CheckIn($input: RecordCheckInInput!) {
  recordCheckIn(input: $input) { status { ${STATUS_FIELDS} } }
}`;

await runSuite("legacy.mjs", timeoutSeconds, async (cleanups) => {
  let disconnected = false;
  const client = new SubscriptionClient(
    wsUrl,
    { reconnect: false, connectionParams: {}, timeout: timeoutSeconds * 1000 },
    WebSocket,
  );
  cleanups.push(() => client.close());
  client.onDisconnected(() => {
    disconnected = true;
  });
  const connected = new Promise((resolve, reject) => {
    client.onConnected(resolve);
    client.onError(reject);
  });

  const results = queue();
  const live = client.request({ query: STATUS_CHANGED, variables: { userId } }).subscribe({
    next: (result) => results.push({ result }),
    error: (error) => results.push({ error }),
    complete: () => results.push({ complete: true }),
  });
  await connected;
  emit("protocol", client.client.protocol);
  assert.equal(client.client.protocol, "graphql-ws");

  const first = await results.next();
  assert.equal(first.error, undefined, `subscription failed: ${first.error}`);
  assert.equal(first.result.errors, undefined);
  const snapshot = first.result.data.userStatusChanged;
  assert.equal(snapshot.userId, userId);
  emit("snapshot", snapshot);

  const failed = await new Promise((resolve) => {
    client.request({ query: "subscription Broken { userStatusChanged(" }).subscribe({
      next: () => resolve(null),
      error: resolve,
      complete: () => resolve(null),
    });
  });
  assert.ok(failed, "a document that does not parse must end with an error");
  // The client hands over the error message's payload (one error or a list).
  const parseError = Array.isArray(failed) ? failed[0] : failed;
  assert.match(parseError.message, /Syntax Error/);
  assert.equal(disconnected, false, "the syntax error must not close the socket");
  emit("syntaxError", { message: parseError.message, code: parseError.extensions?.code });

  const mutated = await post(httpUrl, RECORD_CHECK_IN, { input: { userId, intervalSeconds: 3600 } });
  emit("mutation", mutated.recordCheckIn);

  const next = await results.next();
  assert.equal(next.error, undefined, `subscription failed: ${next.error}`);
  assert.deepEqual(next.result.data.userStatusChanged, mutated.recordCheckIn.status);
  assert.equal(disconnected, false);
  emit("userStatusChanged", next.result.data.userStatusChanged);

  live.unsubscribe();
  assert.equal(Object.keys(client.operations).length, 0);
  emit("stopped", true);
});
