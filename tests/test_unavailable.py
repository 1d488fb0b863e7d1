"""Outages are SERVICE_UNAVAILABLE, told apart from bugs by exception type, in one place."""

from __future__ import annotations

from graphql import GraphQLError
from sqlalchemy.exc import OperationalError

from gql.codes import ErrorCode
from gql.errors import UNAVAILABLE_MESSAGE, add_codes, mask_internal, unavailable, unavailable_only
from sync import ChannelDisconnected


def _raised_from(cause: BaseException) -> RuntimeError:
    try:
        try:
            raise cause
        except BaseException as exc:
            raise RuntimeError("wrapped") from exc
    except RuntimeError as wrapper:
        return wrapper


def _field_error(original: Exception) -> GraphQLError:
    return GraphQLError("boom", path=["addActivity"], original_error=original)


def test_connection_errors_are_unavailable_through_wrappers() -> None:
    assert unavailable(ConnectionRefusedError(111, "refused"))
    assert unavailable(OperationalError("SELECT 1", {}, ConnectionResetError()))
    assert unavailable(_raised_from(ChannelDisconnected("broker is not connected")))
    assert not unavailable(ValueError("a bug"))
    assert not unavailable(_raised_from(KeyError("a bug")))


def test_codes_and_masking() -> None:
    outage = _field_error(_raised_from(ConnectionRefusedError(111, "10.0.0.5:5432 refused")))
    bug = _field_error(KeyError("x"))
    assert add_codes([outage, bug]) == [bug]
    assert outage.extensions == {"code": ErrorCode.SERVICE_UNAVAILABLE}
    errors = [outage]
    mask_internal(errors)
    assert errors[0].message == UNAVAILABLE_MESSAGE  # no host or port in production


def test_whole_request_failure_is_every_error_unavailable_and_no_data() -> None:
    outage = _field_error(ConnectionRefusedError())
    add_codes([outage])
    bug = _field_error(KeyError("x"))
    add_codes([bug])
    assert unavailable_only(None, [outage])
    assert unavailable_only({"addActivity": None}, [outage])
    assert not unavailable_only({"addActivity": {"seq": 1}, "other": None}, [outage])
    assert not unavailable_only(None, [outage, bug])
    assert not unavailable_only(None, [])
