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
// handle's field). Steps, each a JSON line {"op": ..., "data": ...}:
// "page1", "page2", "page3" (the connection as Relay reads it from its store
// after each page of 2, fetched with after = the previous endCursor) and
// "requests" (the variables Relay's network layer sent).

import assert from "node:assert/strict";

import relay from "relay-runtime";

import { emit, runSuite, suiteArgs } from "./suite.mjs";

const { Environment, Network, RecordSource, Store, createOperationDescriptor } = relay;
const { httpUrl, userId, timeoutSeconds } = suiteArgs("relay.mjs");

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

await runSuite("relay.mjs", timeoutSeconds, async () => {
  const requests = [];
  const network = Network.create(async (params, variables) => {
    requests.push(variables);
    const response = await fetch(httpUrl, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ query: params.text, variables }),
    });
    return response.json();
  });
  const environment = new Environment({ network, store: new Store(new RecordSource()) });

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
});
