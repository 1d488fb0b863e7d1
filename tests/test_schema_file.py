from pathlib import Path

from gql import schema_sdl

SCHEMA_FILE = Path(__file__).parents[1] / "schema.graphql"


def test_schema_graphql_matches_the_code() -> None:
    committed = SCHEMA_FILE.read_text()
    assert committed == schema_sdl(), (
        "schema.graphql is stale: run `make schema` (checkin-realtime export-schema) and commit it"
    )
