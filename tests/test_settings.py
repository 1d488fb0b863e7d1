"""Settings from the environment: list forms, and one line per invalid setting at every command."""

from __future__ import annotations

from pathlib import Path

import pytest

from gql import Settings
from gql.cli import main


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("https://dash.example", ["https://dash.example"]),
        ("https://a.example, https://b.example", ["https://a.example", "https://b.example"]),
        ('["https://a.example", "https://b.example"]', ["https://a.example", "https://b.example"]),
        ("*", ["*"]),
        ("", []),
    ],
)
def test_list_settings_take_a_value_a_comma_list_or_json(
    monkeypatch: pytest.MonkeyPatch, value: str, expected: list[str]
) -> None:
    monkeypatch.setenv("ALLOWED_ORIGINS", value)
    assert Settings().allowed_origins == expected


def test_service_api_keys_take_a_comma_list(monkeypatch: pytest.MonkeyPatch) -> None:
    keys = ["k" * 32, "j" * 40]
    monkeypatch.setenv("SERVICE_API_KEYS", ",".join(keys))
    assert [key.get_secret_value() for key in Settings().service_api_keys] == keys


@pytest.mark.parametrize("command", [["export-schema", "-o", "-"], ["migrate"], ["serve"]])
@pytest.mark.parametrize(
    ("variable", "value", "expected"),
    [
        ("ALLOWED_ORIGINS", "[not json", "invalid setting ALLOWED_ORIGINS='[not json': "),
        ("JWT_LEEWAY", "soon", "invalid setting JWT_LEEWAY='soon': "),
        ("SUBSCRIBER_QUEUE", "0", "invalid setting SUBSCRIBER_QUEUE='0': "),
        (
            "ESCALATION_POLICY",
            "WARNING:0,PANIC:9",
            "invalid setting ESCALATION_POLICY='WARNING:0,P",
        ),
        ("ENV", "production", "invalid settings: ENV=production needs authentication"),
    ],
)
def test_an_invalid_setting_is_one_line_naming_it_with_an_example(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    command: list[str],
    variable: str,
    value: str,
    expected: str,
) -> None:
    monkeypatch.setenv("DATABASE_URL", f"sqlite+aiosqlite:///{tmp_path}/x.db")
    monkeypatch.setenv(variable, value)
    assert main(command) == 2
    captured = capsys.readouterr()
    [line] = captured.err.strip().splitlines()
    assert line.startswith(expected), line
    assert "Traceback" not in captured.err and captured.out == ""
    if variable != "ENV":
        assert f"(example: {variable}=" in line


def test_a_secret_setting_is_never_echoed(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("SERVICE_API_KEYS", '["short-key-that-must-not-leak", 5')
    assert main(["export-schema", "-o", "-"]) == 2
    assert "short-key-that-must-not-leak" not in capsys.readouterr().err


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("WARNING:0,PANIC:60", "is not LEVEL:SECONDS"),
        ("NONE:0", "is not LEVEL:SECONDS"),
        ("WARNING", "is not LEVEL:SECONDS"),
        ("WARNING:-1", "seconds must be a number >= 0"),
        ("WARNING:soon", "seconds must be a number"),
        ("WARNING:nan", "seconds must be a number >= 0"),
        ("ALERT:0,WARNING:60", "levels must rise with strictly rising delays"),
        ("WARNING:60,ALERT:60", "levels must rise with strictly rising delays"),
        ("WARNING:0,WARNING:60", "WARNING is given twice"),
    ],
)
def test_a_malformed_escalation_policy_refuses_to_start_with_one_line(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    value: str,
    problem: str,
) -> None:
    monkeypatch.setenv("DATABASE_URL", f"sqlite+aiosqlite:///{tmp_path}/x.db")
    monkeypatch.setenv("ESCALATION_POLICY", value)
    assert main(["serve"]) == 2
    [line] = capsys.readouterr().err.strip().splitlines()
    assert line.startswith("invalid setting ESCALATION_POLICY=") and problem in line, line


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("", []),
        ("WARNING:0, ALERT:2.5", [("WARNING", 0.0), ("ALERT", 2.5)]),
        ("ALERT:60,EMERGENCY:600", [("ALERT", 60.0), ("EMERGENCY", 600.0)]),
    ],
)
def test_the_escalation_policy_is_level_seconds_pairs(
    monkeypatch: pytest.MonkeyPatch, value: str, expected: list[tuple[str, float]]
) -> None:
    monkeypatch.setenv("ESCALATION_POLICY", value)
    policy = Settings().escalation_policy
    assert [(step.level.value, step.seconds) for step in policy] == expected
