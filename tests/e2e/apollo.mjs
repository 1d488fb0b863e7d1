// An Apollo Client (v4) session for the end-to-end tests: subscriptions over
// graphql-ws, queries and mutations over HTTP, one normalised cache.
//
//   node apollo.mjs HTTP_URL WS_URL USER_ID TIMEOUT_SECONDS
//
// 1. Subscribes to userStatusChanged(userId). The user MUST already have a
//    status: its snapshot, the first event, proves the subscription is live
//    (the server listens before it reads the snapshot).
// 2. Then runs recordCheckIn(userId, intervalSeconds: 3600) over HTTP.
// 3. Waits for the status change with a higher version on the subscription,
//    then queries userStatus over HTTP (network-only) and reads the cached
//    UserStatus entity.
// 4. Watches that query in the cache only (cache-only), changes the status
//    with a plain fetch that Apollo does not see, and waits for the change on
//    the subscription ("externalChange"): the normalised cache entity
//    ("cacheFromSubscription") and the watched query ("watched") must show it,
//    though only the subscription brought it.
//
// Prints one JSON line per step: {"op": "snapshot"|"mutation"|
// "userStatusChanged"|"query"|"cache"|"externalChange"|"cacheFromSubscription"|
// "watched", "data": ...}. Exits 0 when done, 2 on timeout, 1 on any error.

import { ApolloClient, ApolloLink, HttpLink, InMemoryCache, gql } from "@apollo/client";
import { GraphQLWsLink } from "@apollo/client/link/subscriptions";
import { getMainDefinition } from "@apollo/client/utilities";
import { createClient } from "graphql-ws";
import WebSocket from "ws";

const [httpUrl, wsUrl, userId, timeoutArg] = process.argv.slice(2);
if (!httpUrl || !wsUrl || !userId || !timeoutArg) {
  process.stderr.write("usage: node apollo.mjs HTTP_URL WS_URL USER_ID TIMEOUT_SECONDS\n");
  process.exit(64);
}
const timeoutSeconds = Number.parseFloat(timeoutArg);

const STATUS_FIELDS = "userId lastCheckIn nextDue alertLevel alertTriggeredAt version updatedAt";
const STATUS_CHANGED = gql(`subscription StatusChanged($userId: String!) {
  userStatusChanged(userId: $userId) { ${STATUS_FIELDS} }
}`);
const RECORD_CHECK_IN = gql(`mutation CheckIn($input: RecordCheckInInput!) {
  recordCheckIn(input: $input) {
    activity { id userId seq type description timestamp metadata }
    status { ${STATUS_FIELDS} }
  }
}`);
const USER_STATUS = gql(`query Status($userId: String!) {
  userStatus(userId: $userId) { ${STATUS_FIELDS} }
}`);
// Sent with fetch, not through Apollo: only the subscription tells Apollo of it.
const EXTERNAL_CHANGE = `mutation External($input: UpdateUserStatusInput!) {
  updateUserStatus(input: $input) { version }
}`;

let finished = false;
let subscription = null;
let watch = null;

function emit(op, data) {
  process.stdout.write(`${JSON.stringify({ op, data })}\n`);
}

function describe(value) {
  if (value instanceof Error) return value.stack || value.message;
  try {
    return JSON.stringify(value);
  } catch {
    return String(value);
  }
}

const wsClient = createClient({
  url: wsUrl,
  webSocketImpl: WebSocket,
  retryAttempts: 0,
  on: {
    closed: (event) => {
      if (!finished) finish(1, `socket closed early: code ${event?.code} ${event?.reason}`);
    },
  },
});

const link = ApolloLink.split(
  ({ query }) => {
    const definition = getMainDefinition(query);
    return definition.kind === "OperationDefinition" && definition.operation === "subscription";
  },
  new GraphQLWsLink(wsClient),
  new HttpLink({ uri: httpUrl }),
);

const client = new ApolloClient({
  link,
  cache: new InMemoryCache({
    // UserStatus has no id field: one status per user.
    typePolicies: { UserStatus: { keyFields: ["userId"] } },
  }),
});

const deadline = setTimeout(
  () => finish(2, `timed out after ${timeoutSeconds}s`),
  timeoutSeconds * 1000,
);

async function finish(code, message) {
  if (finished) return;
  finished = true;
  clearTimeout(deadline);
  if (message) process.stderr.write(`apollo.mjs: ${message}\n`);
  subscription?.unsubscribe();
  watch?.unsubscribe();
  client.stop();
  try {
    await wsClient.dispose();
  } catch {
    // Already gone.
  }
  process.stdout.write("", () => process.exit(code));
}

let snapshotVersion = null;
let mutated = null;
let changedVersion = null;
let watchedChange = null;

function cachedStatus() {
  return client.cache.extract()[client.cache.identify({ __typename: "UserStatus", userId })] ?? null;
}

async function afterSnapshot() {
  const result = await client.mutate({
    mutation: RECORD_CHECK_IN,
    variables: { input: { userId, intervalSeconds: 3600 } },
  });
  if (result.error) throw result.error;
  emit("mutation", result.data.recordCheckIn);
}

async function afterChange() {
  // The change may arrive before the mutation's own response.
  await mutated;
  const result = await client.query({
    query: USER_STATUS,
    variables: { userId },
    fetchPolicy: "network-only",
  });
  if (result.error) throw result.error;
  emit("query", result.data.userStatus);
  emit("cache", cachedStatus());
}

async function changeElsewhere() {
  // The watch answers from the cache alone: a change it shows came through it.
  watchedChange = new Promise((resolve) => {
    watch = client
      .watchQuery({ query: USER_STATUS, variables: { userId }, fetchPolicy: "cache-only" })
      .subscribe({
        next: (result) => {
          if (result.data?.userStatus?.alertLevel === "WARNING") resolve(result.data.userStatus);
        },
        error: (error) => finish(1, `watched query failed: ${describe(error)}`),
      });
  });
  const response = await fetch(httpUrl, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ query: EXTERNAL_CHANGE, variables: { input: { userId, alertLevel: "WARNING" } } }),
  });
  const body = await response.json();
  if (body.errors) throw new Error(`external change failed: ${describe(body.errors)}`);
}

async function afterExternalChange(status) {
  emit("externalChange", status);
  emit("cacheFromSubscription", cachedStatus());
  emit("watched", await watchedChange);
}

subscription = client.subscribe({ query: STATUS_CHANGED, variables: { userId } }).subscribe({
  next: (result) => {
    if (finished) return;
    if (result.error || result.errors?.length) {
      finish(1, `subscription error: ${describe(result.error ?? result.errors)}`);
      return;
    }
    const status = result.data.userStatusChanged;
    if (snapshotVersion === null) {
      snapshotVersion = status.version;
      emit("snapshot", status);
      mutated = afterSnapshot();
      mutated.catch((error) => finish(1, `mutation failed: ${describe(error)}`));
      return;
    }
    if (status.version <= snapshotVersion) {
      finish(1, `status went back from version ${snapshotVersion} to ${status.version}`);
      return;
    }
    if (changedVersion === null) {
      changedVersion = status.version;
      emit("userStatusChanged", status);
      afterChange()
        .then(changeElsewhere)
        .catch((error) => finish(1, `query failed: ${describe(error)}`));
      return;
    }
    if (status.version <= changedVersion) {
      finish(1, `status went back from version ${changedVersion} to ${status.version}`);
      return;
    }
    afterExternalChange(status)
      .then(() => finish(0))
      .catch((error) => finish(1, `cache check failed: ${describe(error)}`));
  },
  error: (error) => finish(1, `subscription failed: ${describe(error)}`),
  complete: () => {
    if (!finished) finish(1, "subscription completed early");
  },
});
