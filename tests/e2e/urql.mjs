// urql core with its subscriptionExchange over graphql-ws, against the real server.
//
//   node urql.mjs HTTP_URL WS_URL USER_ID TIMEOUT_SECONDS
//
// The user MUST already have a status. Steps, each printed as a JSON line
// {"op": ..., "data": ...}:
//
// 1. "query": userStatus(userId) over HTTP, with variables.
// 2. "snapshot": the first result of userStatusChanged(userId) over graphql-ws.
// 3. "syntaxError": a second subscription on the same socket, whose document
//    does not parse, gets a GraphQL error; the socket stays open for the first.
// 4. "mutation": recordCheckIn over HTTP.
// 5. "userStatusChanged": the change the check-in caused, on the subscription.

import assert from "node:assert/strict";

import { Client, cacheExchange, fetchExchange, gql, subscriptionExchange } from "@urql/core";
import { createClient } from "graphql-ws";
import WebSocket from "ws";

import { emit, queue, runSuite, suiteArgs } from "./suite.mjs";

const { httpUrl, wsUrl, userId, timeoutSeconds } = suiteArgs("urql.mjs");

const STATUS_FIELDS = "userId lastCheckIn nextDue alertLevel alertTriggeredAt version updatedAt";
const USER_STATUS = gql`
  query Status($userId: String!) {
    userStatus(userId: $userId) { ${STATUS_FIELDS} }
  }
`;
const STATUS_CHANGED = gql`
  subscription StatusChanged($userId: String!) {
    userStatusChanged(userId: $userId) { ${STATUS_FIELDS} }
  }
`;
const RECORD_CHECK_IN = gql`
  mutation CheckIn($input: RecordCheckInInput!) {
    recordCheckIn(input: $input) {
      activity { id userId seq type timestamp }
      status { ${STATUS_FIELDS} }
    }
  }
`;

await runSuite("urql.mjs", timeoutSeconds, async (cleanups) => {
  let closedEarly = null;
  const wsClient = createClient({
    url: wsUrl,
    webSocketImpl: WebSocket,
    retryAttempts: 0,
    on: { closed: (event) => (closedEarly ??= `socket closed: ${event?.code} ${event?.reason}`) },
  });
  cleanups.push(() => wsClient.dispose());

  const client = new Client({
    url: httpUrl,
    exchanges: [
      cacheExchange,
      fetchExchange,
      subscriptionExchange({
        forwardSubscription(request) {
          const input = { ...request, query: request.query || "" };
          return {
            subscribe(sink) {
              const unsubscribe = wsClient.subscribe(input, sink);
              return { unsubscribe };
            },
          };
        },
      }),
    ],
  });

  const queried = await client.query(USER_STATUS, { userId }).toPromise();
  assert.equal(queried.error, undefined, `query failed: ${queried.error}`);
  assert.equal(queried.data.userStatus.userId, userId);
  emit("query", queried.data.userStatus);

  const results = queue();
  const live = client.subscription(STATUS_CHANGED, { userId }).subscribe((result) => results.push(result));
  cleanups.unshift(() => live.unsubscribe());

  const snapshot = await results.next();
  assert.equal(snapshot.error, undefined, `subscription failed: ${snapshot.error}`);
  // urql adds __typename to what it sends over HTTP, not over the socket.
  const { __typename, ...queriedStatus } = queried.data.userStatus;
  assert.equal(__typename, "UserStatus");
  assert.deepEqual(snapshot.data.userStatusChanged, queriedStatus);
  emit("snapshot", snapshot.data.userStatusChanged);

  // urql parses every document itself, so the broken one goes through the
  // graphql-ws client under urql's exchange: the same socket.
  const failed = await new Promise((resolve) => {
    wsClient.subscribe(
      { query: "subscription Broken { userStatusChanged(", variables: { userId } },
      { next: () => resolve(null), error: resolve, complete: () => resolve(null) },
    );
  });
  assert.ok(Array.isArray(failed), `a document that does not parse must fail: ${failed}`);
  const [parseError] = failed;
  assert.match(parseError.message, /Syntax Error/);
  assert.equal(parseError.extensions.code, "GRAPHQL_PARSE_FAILED");
  assert.equal(closedEarly, null, "the syntax error must not close the socket");
  emit("syntaxError", { message: parseError.message, code: parseError.extensions.code });

  const mutated = await client
    .mutation(RECORD_CHECK_IN, { input: { userId, intervalSeconds: 3600 } })
    .toPromise();
  assert.equal(mutated.error, undefined, `mutation failed: ${mutated.error}`);
  emit("mutation", mutated.data.recordCheckIn);

  const changed = await results.next();
  assert.equal(changed.error, undefined, `subscription failed: ${changed.error}`);
  const { __typename: statusType, ...mutatedStatus } = mutated.data.recordCheckIn.status;
  assert.equal(statusType, "UserStatus");
  assert.deepEqual(changed.data.userStatusChanged, mutatedStatus);
  assert.equal(closedEarly, null, closedEarly);
  emit("userStatusChanged", changed.data.userStatusChanged);
});
