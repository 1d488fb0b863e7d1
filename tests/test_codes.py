"""gql/codes.py against the docs: error codes in the README, close codes in docs/security.md."""

from __future__ import annotations

from pathlib import Path

import pytest

from gql.codes import CloseCode, ErrorCode

ROOT = Path(__file__).resolve().parent.parent


def table_keys(path: Path, header: str) -> list[str]:
    """The first column of the Markdown table whose header row is ``header``."""
    lines = path.read_text(encoding="utf-8").splitlines()
    assert header in lines, f"{path.name} has no table headed {header!r}"
    rows = []
    for line in lines[lines.index(header) + 2 :]:  # skip the header and |---| rows
        if not line.startswith("|"):
            break
        rows.append(line.split("|")[1].strip().strip("`"))
    return rows


def test_the_readme_lists_exactly_the_error_codes() -> None:
    documented = table_keys(ROOT / "README.md", "| Code | When |")
    assert len(documented) == len(set(documented)), documented
    assert set(documented) == {code.value for code in ErrorCode}


def test_the_security_doc_lists_exactly_the_close_codes() -> None:
    documented = table_keys(ROOT / "docs" / "security.md", "| Code | Meaning |")
    assert len(documented) == len(set(documented)), documented
    assert {int(code) for code in documented} == {code.value for code in CloseCode}


def test_a_table_missing_a_code_is_caught(tmp_path: Path) -> None:
    doc = tmp_path / "doc.md"
    doc.write_text("| Code | When |\n|---|---|\n| `BAD_REQUEST` | x |\n\nafter\n| `NOT` | y |\n")
    assert table_keys(doc, "| Code | When |") == ["BAD_REQUEST"]
    with pytest.raises(AssertionError, match="no table"):
        table_keys(doc, "| Code | Meaning |")
