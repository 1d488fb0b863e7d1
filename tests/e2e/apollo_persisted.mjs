// Apollo Client (v4) with Automatic Persisted Queries, for the end-to-end tests:
// PersistedQueryLink (SHA-256 from node:crypto, GET for hashed queries) in front
// of HttpLink and of GraphQLWsLink.
//
//   node apollo_persisted.mjs HTTP_URL WS_URL USER_ID TIMEOUT_SECONDS
//
// 1. "first": client A queries userStatus: the server has not seen the hash.
// 2. "again": client B (its own caches) sends the same query: the hash alone.
// 3. "mutation": client A records a check-in (mutations always go by POST).
// 4. "subscription": client A subscribes to userStatusChanged over graphql-ws
//    and reads the first event (the status).
//
// Prints one JSON line per step: {"op", "data", "requests"}, where requests are
// the HTTP requests of the step ({method, query: whether the query was sent,
// hash, codes: the error codes of the response}) or, for the subscription, the
// subscribe payloads sent over the socket ({query, hash}). Exits 0 when done,
// 2 on timeout, 1 on any error.

import { createHash } from "node:crypto";
import { ApolloClient, ApolloLink, HttpLink, InMemoryCache, gql } from "@apollo/client";
import { PersistedQueryLink } from "@apollo/client/link/persisted-queries";
import { GraphQLWsLink } from "@apollo/client/link/subscriptions";
import { getMainDefinition } from "@apollo/client/utilities";
import { createClient } from "graphql-ws";
import WebSocket from "ws";

const [httpUrl, wsUrl, userId, timeoutArg] = process.argv.slice(2);
if (!httpUrl || !wsUrl || !userId || !timeoutArg) {
  process.stderr.write("usage: node apollo_persisted.mjs HTTP_URL WS_URL USER_ID TIMEOUT_SECONDS\n");
  process.exit(64);
}

const STATUS = gql(`query Status($userId: String!) {
  userStatus(userId: $userId) { userId alertLevel version }
}`);
const CHECK_IN = gql(`mutation CheckIn($input: RecordCheckInInput!) {
  recordCheckIn(input: $input) { status { userId alertLevel version } }
}`);
const CHANGED = gql(`subscription Changed($userId: String!) {
  userStatusChanged(userId: $userId) { userId alertLevel version }
}`);

const sha256 = (text) => createHash("sha256").update(text).digest("hex");

let requests = [];

async function recordingFetch(input, init) {
  const url = new URL(typeof input === "string" ? input : input.url);
  const method = init?.method ?? "GET";
  const sent =
    method === "GET"
      ? {
          query: url.searchParams.get("query"),
          extensions: JSON.parse(url.searchParams.get("extensions") ?? "null"),
        }
      : JSON.parse(init.body);
  const response = await fetch(input, init);
  const body = await response
    .clone()
    .json()
    .catch(() => null);
  requests.push({
    method,
    query: typeof sent.query === "string",
    hash: sent.extensions?.persistedQuery?.sha256Hash ?? null,
    codes: (body?.errors ?? []).map((error) => error.extensions?.code ?? null),
  });
  return response;
}

class RecordingWebSocket extends WebSocket {
  send(data) {
    const message = JSON.parse(data);
    if (message.type === "subscribe") {
      requests.push({
        query: typeof message.payload.query === "string",
        hash: message.payload.extensions?.persistedQuery?.sha256Hash ?? null,
      });
    }
    super.send(data);
  }
}

const wsClient = createClient({ url: wsUrl, webSocketImpl: RecordingWebSocket, retryAttempts: 0 });

function apolloClient() {
  const persisted = new PersistedQueryLink({ sha256, useGETForHashedQueries: true });
  return new ApolloClient({
    link: ApolloLink.split(
      ({ query }) => {
        const definition = getMainDefinition(query);
        return definition.kind === "OperationDefinition" && definition.operation === "subscription";
      },
      persisted.concat(new GraphQLWsLink(wsClient)),
      persisted.concat(new HttpLink({ uri: httpUrl, fetch: recordingFetch })),
    ),
    cache: new InMemoryCache({ typePolicies: { UserStatus: { keyFields: ["userId"] } } }),
  });
}

function emit(op, data) {
  process.stdout.write(`${JSON.stringify({ op, data, requests })}\n`);
  requests = [];
}

function firstEvent(observable) {
  return new Promise((resolve, reject) => {
    const subscription = observable.subscribe({
      next: (result) => {
        subscription.unsubscribe();
        if (result.error) reject(result.error);
        else resolve(result.data);
      },
      error: reject,
      complete: () => reject(new Error("subscription completed without an event")),
    });
  });
}

async function main() {
  const a = apolloClient();
  const b = apolloClient();
  const first = await a.query({ query: STATUS, variables: { userId }, fetchPolicy: "network-only" });
  if (first.error) throw first.error;
  emit("first", first.data.userStatus);

  const again = await b.query({ query: STATUS, variables: { userId }, fetchPolicy: "network-only" });
  if (again.error) throw again.error;
  emit("again", again.data.userStatus);

  const mutated = await a.mutate({
    mutation: CHECK_IN,
    variables: { input: { userId, intervalSeconds: 3600 } },
  });
  if (mutated.error) throw mutated.error;
  emit("mutation", mutated.data.recordCheckIn.status);

  const event = await firstEvent(a.subscribe({ query: CHANGED, variables: { userId } }));
  emit("subscription", event.userStatusChanged);
  a.stop();
  b.stop();
  await wsClient.dispose();
}

const deadline = setTimeout(() => {
  process.stderr.write(`apollo_persisted.mjs: timed out after ${timeoutArg}s\n`);
  process.exit(2);
}, Number.parseFloat(timeoutArg) * 1000);

main().then(
  () => {
    clearTimeout(deadline);
    process.stdout.write("", () => process.exit(0));
  },
  (error) => {
    process.stderr.write(`apollo_persisted.mjs: ${error?.stack ?? JSON.stringify(error)}\n`);
    process.exit(1);
  },
);
