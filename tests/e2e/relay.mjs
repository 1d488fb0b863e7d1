// Relay (relay-runtime) paginating recentActivities with @connection, against
// the real server: the pages Relay's ConnectionHandler merges must follow the
// Relay cursor connections spec as Relay reads it.
//
//   node relay.mjs HTTP_URL WS_URL USER_ID TIMEOUT_SECONDS
//
// The user MUST have 5 activities. No relay-compiler here: `ActivitiesQuery`
// below is what the compiler emits for
//
//   query ActivitiesQuery($userId: String!, $first: Int!, $after: String) {
//     recentActivities(userId: $userId, first: $first, after: $after)
//       @connection(key: "ActivitiesQuery_recentActivities", filters: ["userId"]) {
//       edges { cursor node { id type seq __typename } }
//       pageInfo { endCursor hasNextPage }
//     }
//   }
//
// (the normalization AST with its LinkedHandle, and the reader AST of the
// handle's field). The user MUST also have a status. Steps, each a JSON line
// {"op": ..., "data": ...}: "page1", "page2", "page3" (the connection as Relay
// reads it from its store after each page of 2, fetched with after = the
// previous endCursor), "requests" (the variables Relay's network layer sent)
// and "subscription" (the first userStatusChanged result, through the
// network layer's graphql-ws subscribe function, as Relay's store holds it).
//
// The network layer is the README's ("Clients").

import assert from "node:assert/strict";

import { createClient } from "graphql-ws";
import {
  Environment,
  Network,
  Observable,
  RecordSource,
  Store,
  createOperationDescriptor,
  requestSubscription,
} from "relay-runtime";
import WebSocket from "ws";

import { emit, runSuite, suiteArgs } from "./suite.mjs";

const { httpUrl, wsUrl, userId, timeoutSeconds } = suiteArgs("relay.mjs");

const KEY = "ActivitiesQuery_recentActivities";
const TEXT = `query ActivitiesQuery($userId: String!, $first: Int!, $after: String) {
  recentActivities(userId: $userId, first: $first, after: $after) {
    edges { cursor node { id type seq __typename } }
    pageInfo { endCursor hasNextPage hasPreviousPage startCursor }
  }
}`;

const scalar = (name) => ({ alias: null, args: null, kind: "ScalarField", name, storageKey: null });
const variable = (name) => ({ kind: "Variable", name, variableName: name });
const argumentDefinitions = ["after", "first", "userId"].map((name) => ({
  defaultValue: null,
  kind: "LocalArgument",
  name,
}));
const connectionSelections = [
  {
    alias: null,
    args: null,
    concreteType: "ActivityEdge",
    kind: "LinkedField",
    name: "edges",
    plural: true,
    selections: [
      scalar("cursor"),
      {
        alias: null,
        args: null,
        concreteType: "Activity",
        kind: "LinkedField",
        name: "node",
        plural: false,
        selections: [scalar("id"), scalar("type"), scalar("seq"), scalar("__typename")],
        storageKey: null,
      },
    ],
    storageKey: null,
  },
  {
    alias: null,
    args: null,
    concreteType: "PageInfo",
    kind: "LinkedField",
    name: "pageInfo",
    plural: false,
    selections: [scalar("endCursor"), scalar("hasNextPage"), scalar("hasPreviousPage"), scalar("startCursor")],
    storageKey: null,
  },
];
const fieldArgs = [variable("after"), variable("first"), variable("userId")];

const ActivitiesQuery = {
  fragment: {
    argumentDefinitions,
    kind: "Fragment",
    metadata: null,
    name: "ActivitiesQuery",
    selections: [
      {
        alias: "recentActivities",
        args: [variable("userId")],
        concreteType: "ActivityConnection",
        kind: "LinkedField",
        name: `__${KEY}_connection`,
        plural: false,
        selections: connectionSelections,
        storageKey: null,
      },
    ],
    type: "Query",
    abstractKey: null,
  },
  kind: "Request",
  operation: {
    argumentDefinitions,
    kind: "Operation",
    name: "ActivitiesQuery",
    selections: [
      {
        alias: null,
        args: fieldArgs,
        concreteType: "ActivityConnection",
        kind: "LinkedField",
        name: "recentActivities",
        plural: false,
        selections: connectionSelections,
        storageKey: null,
      },
      {
        alias: null,
        args: fieldArgs,
        filters: ["userId"],
        handle: "connection",
        key: KEY,
        kind: "LinkedHandle",
        name: "recentActivities",
      },
    ],
  },
  params: {
    cacheID: "checkin-realtime-e2e-ActivitiesQuery",
    id: null,
    metadata: {},
    name: "ActivitiesQuery",
    operationKind: "query",
    text: TEXT,
  },
};

const STATUS_TEXT = `subscription StatusSubscription($userId: String!) {
  userStatusChanged(userId: $userId) { userId alertLevel version }
}`;
const statusSelections = [
  {
    alias: null,
    args: [variable("userId")],
    concreteType: "UserStatus",
    kind: "LinkedField",
    name: "userStatusChanged",
    plural: false,
    selections: [scalar("userId"), scalar("alertLevel"), scalar("version")],
    storageKey: null,
  },
];
const statusArguments = [{ defaultValue: null, kind: "LocalArgument", name: "userId" }];
const StatusSubscription = {
  fragment: {
    argumentDefinitions: statusArguments,
    kind: "Fragment",
    metadata: null,
    name: "StatusSubscription",
    selections: statusSelections,
    type: "Subscription",
    abstractKey: null,
  },
  kind: "Request",
  operation: {
    argumentDefinitions: statusArguments,
    kind: "Operation",
    name: "StatusSubscription",
    selections: statusSelections,
  },
  params: {
    cacheID: "checkin-realtime-e2e-StatusSubscription",
    id: null,
    metadata: {},
    name: "StatusSubscription",
    operationKind: "subscription",
    text: STATUS_TEXT,
  },
};

await runSuite("relay.mjs", timeoutSeconds, async (cleanups) => {
  const requests = [];
  const auth = {};
  const ws = createClient({ url: wsUrl, webSocketImpl: WebSocket, connectionParams: auth, lazy: true, retryAttempts: 0 });
  cleanups.push(() => ws.dispose());

  async function fetchGraphQL(params, variables) {
    requests.push(variables);
    const response = await fetch(httpUrl, {
      method: "POST",
      headers: { "content-type": "application/json", ...auth },
      body: JSON.stringify({ query: params.text, variables }),
    });
    return response.json();
  }

  function subscribeGraphQL(params, variables) {
    return Observable.create((sink) =>
      ws.subscribe({ operationName: params.name, query: params.text, variables }, sink),
    );
  }

  const environment = new Environment({
    network: Network.create(fetchGraphQL, subscribeGraphQL),
    store: new Store(new RecordSource()),
  });

  const read = () => {
    // The first page's reader: every later page merges into the same connection.
    const first = createOperationDescriptor(ActivitiesQuery, { userId, first: 2, after: null });
    const { data, isMissingData } = environment.lookup(first.fragment);
    assert.equal(isMissingData, false, "Relay's store is missing connection data");
    return data.recentActivities;
  };

  let after = null;
  const retained = [];
  for (const page of [1, 2, 3]) {
    const operation = createOperationDescriptor(ActivitiesQuery, { userId, first: 2, after });
    retained.push(environment.retain(operation));
    await environment.execute({ operation }).toPromise();
    const connection = read();
    emit(`page${page}`, {
      nodes: connection.edges.map((edge) => edge.node),
      cursors: connection.edges.map((edge) => edge.cursor),
      pageInfo: connection.pageInfo,
    });
    assert.equal(connection.edges.length, Math.min(2 * page, 5), `page ${page}: edges merged`);
    assert.equal(connection.pageInfo.hasNextPage, page < 3, `page ${page}: hasNextPage`);
    assert.equal(connection.pageInfo.endCursor, connection.edges.at(-1).cursor);
    after = connection.pageInfo.endCursor;
  }
  for (const disposable of retained) disposable.dispose();
  emit("requests", requests);

  // requestSubscription reads each result back from Relay's store.
  const status = await new Promise((resolve, reject) => {
    const running = requestSubscription(environment, {
      subscription: StatusSubscription,
      variables: { userId },
      onNext: (data) => {
        running.dispose();
        resolve(data.userStatusChanged);
      },
      onError: reject,
    });
  });
  assert.equal(status.userId, userId);
  emit("subscription", status);
});
