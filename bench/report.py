"""Figures, the table printed for them, and ``bench/results.json``."""

from __future__ import annotations

import os
import platform
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

__all__ = ["Figure", "document", "table"]


@dataclass
class Figure:
    """One measured figure beside its same-run reference.

    ``value`` and ``reference`` are in ``unit``; ``ratio`` is value / reference;
    ``met`` says whether ``target`` holds (``None``: not measured, see ``note``).
    """

    name: str
    what: str
    unit: str
    value: float | None
    reference: float | None
    reference_what: str | None
    target: str
    met: bool | None
    details: dict[str, Any] = field(default_factory=dict)
    note: str = ""

    @property
    def ratio(self) -> float | None:
        if self.value is None or not self.reference:
            return None
        return self.value / self.reference

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        out["ratio"] = None if self.ratio is None else round(self.ratio, 4)
        for key in ("value", "reference"):
            if isinstance(out[key], float):
                out[key] = round(out[key], 3)
        return out


def _num(value: float | None) -> str:
    if value is None:
        return "-"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    return f"{value:.1f}" if abs(value) >= 10 else f"{value:.2f}"


def table(figures: list[Figure]) -> list[str]:
    """The figures as a Markdown table."""
    lines = [
        "| Figure | Value | Reference (same run) | Ratio | Target | Met |",
        "|---|---|---|---|---|---|",
    ]
    for f in figures:
        met = "-" if f.met is None else ("met" if f.met else "**not met**")
        ref = "-" if f.reference is None else f"{_num(f.reference)} {f.unit} ({f.reference_what})"
        ratio = "-" if f.ratio is None else f"{f.ratio:.2f}x"
        value = "-" if f.value is None else f"{_num(f.value)} {f.unit}"
        lines.append(f"| {f.name}: {f.what} | {value} | {ref} | {ratio} | {f.target} | {met} |")
    return lines


def machine() -> dict[str, Any]:
    load = os.getloadavg()
    model = ""
    try:
        with open("/proc/cpuinfo") as info:
            model = next((ln.split(":", 1)[1].strip() for ln in info if "model name" in ln), "")
    except OSError:
        pass
    return {
        "cpus": os.cpu_count(),
        "cpu_model": model,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "load_average": [round(x, 2) for x in load],
    }


def document(
    figures: list[Figure], *, sizes: str, extra: dict[str, Any], started: datetime
) -> dict[str, Any]:
    """``bench/results.json``: when, where, at what sizes, and every figure."""
    return {
        "date": started.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z"),
        "seconds": round((datetime.now(UTC) - started).total_seconds(), 1),
        "sizes": sizes,
        "machine": machine(),
        **extra,
        "figures": [f.to_json() for f in figures],
    }
