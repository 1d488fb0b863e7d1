"""Rebuilding the store from the database."""

from __future__ import annotations

from gql.context import Services
from sync.resync import resync
from sync.stores.state import UserState

from .conftest import GraphQLClient

CHECK_IN = """mutation($u: String!) {
  recordCheckIn(input: {userId: $u, intervalSeconds: 60}) { status { version } }
}"""


async def test_resync_replaces_corrupt_state_with_the_database_truth(
    graphql: GraphQLClient, services: Services
) -> None:
    for user in ("a", "b"):
        await graphql.data(CHECK_IN, {"u": user})
    store = services.store
    assert store is not None
    # A store that drifted: newer-looking but wrong.
    await store.forget("a")
    await store.prime(UserState(user_id="a", seq=99, status=None, primed=True, complete=True))
    assert (await graphql.data('{ userStatus(userId: "a") { version } }'))["userStatus"] is None
    assert await resync(sessions=services.sessions, store=store) == 2
    state = await store.get("a")
    assert state is not None
    assert state.seq == 2
    assert state.status is not None and state.status["version"] == 1
    assert (await graphql.data('{ userStatus(userId: "a") { version } }'))["userStatus"] == {
        "version": 1
    }


async def test_resync_one_user_leaves_others_alone(
    graphql: GraphQLClient, services: Services
) -> None:
    await graphql.data(CHECK_IN, {"u": "a"})
    await graphql.data(CHECK_IN, {"u": "b"})
    store = services.store
    assert store is not None
    await store.forget()
    assert await resync(sessions=services.sessions, store=store, user_ids=["a"]) == 1
    assert await store.get("a") is not None
    assert await store.get("b") is None
