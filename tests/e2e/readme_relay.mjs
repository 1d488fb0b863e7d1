// The README's Relay environment module ("Clients"), imported as written and
// driven through Relay: a query by its network layer's fetch function, then
// a subscription by its graphql-ws subscribe function.
//
//   node readme_relay.mjs ENVIRONMENT_MODULE USER_ID TIMEOUT_SECONDS
//
// The user MUST have a status. Steps, each a JSON line {"op": ..., "data": ...}:
// "query" (userStatus, as Relay's store holds it after fetchQuery), "snapshot"
// (the subscription's first result: the caller then changes the status) and
// "change" (the first result with a higher version). Exits 0 when done, 1 on
// an error, 2 on timeout. No relay-compiler here: the two requests below are
// what it emits for
//
//   query ReadmeStatusQuery($userId: String!) { userStatus(userId: $userId) { userId alertLevel version } }
//   subscription ReadmeStatusSubscription($userId: String!) { userStatusChanged(userId: $userId) { userId alertLevel version } }

import assert from "node:assert/strict";
import { resolve } from "node:path";
import { pathToFileURL } from "node:url";

import { fetchQuery, requestSubscription } from "relay-runtime";

import { emit, runSuite } from "./suite.mjs";

const [modulePath, userId, timeoutArg] = process.argv.slice(2);
if (!modulePath || !userId || !timeoutArg) {
  process.stderr.write("usage: node readme_relay.mjs ENVIRONMENT_MODULE USER_ID TIMEOUT_SECONDS\n");
  process.exit(64);
}

const scalar = (name) => ({ alias: null, args: null, kind: "ScalarField", name, storageKey: null });
const argumentDefinitions = [{ defaultValue: null, kind: "LocalArgument", name: "userId" }];

// A ConcreteRequest with one field `field(userId: $userId) { userId alertLevel version }` on `type`.
function request(name, operationKind, type, field) {
  const selections = [
    {
      alias: null,
      args: [{ kind: "Variable", name: "userId", variableName: "userId" }],
      concreteType: "UserStatus",
      kind: "LinkedField",
      name: field,
      plural: false,
      selections: [scalar("userId"), scalar("alertLevel"), scalar("version")],
      storageKey: null,
    },
  ];
  return {
    fragment: { argumentDefinitions, kind: "Fragment", metadata: null, name, selections, type, abstractKey: null },
    kind: "Request",
    operation: { argumentDefinitions, kind: "Operation", name, selections },
    params: {
      cacheID: `checkin-realtime-e2e-${name}`,
      id: null,
      metadata: {},
      name,
      operationKind,
      text: `${operationKind} ${name}($userId: String!) { ${field}(userId: $userId) { userId alertLevel version } }`,
    },
  };
}

const StatusQuery = request("ReadmeStatusQuery", "query", "Query", "userStatus");
const StatusSubscription = request("ReadmeStatusSubscription", "subscription", "Subscription", "userStatusChanged");

await runSuite("readme_relay.mjs", Number.parseFloat(timeoutArg), async () => {
  const { environment } = await import(pathToFileURL(resolve(modulePath)).href);

  const queried = await fetchQuery(environment, StatusQuery, { userId }).toPromise();
  assert.equal(queried.userStatus?.userId, userId, "the query found no status");
  emit("query", queried.userStatus);

  // requestSubscription reads each result back from Relay's store.
  const change = await new Promise((resolve, reject) => {
    let first = null;
    const running = requestSubscription(environment, {
      subscription: StatusSubscription,
      variables: { userId },
      onNext: (data) => {
        const status = data.userStatusChanged;
        if (first === null) {
          first = status;
          emit("snapshot", status);
        } else if (status.version > first.version) {
          running.dispose();
          resolve(status);
        }
      },
      onError: reject,
      onCompleted: () => reject(new Error("the subscription completed before the change")),
    });
  });
  emit("change", change);
});
