"""Medians, spreads and percentiles, and the results files."""

from __future__ import annotations

import json
import platform
import statistics
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any


def percentile(samples: list[float], fraction: float) -> float:
    ordered = sorted(samples)
    index = min(len(ordered) - 1, max(0, round(fraction * (len(ordered) - 1))))
    return ordered[index]


@dataclass
class Figure:
    name: str
    unit: str
    runs: list[float]
    baseline: str | None = None
    baseline_runs: list[float] = field(default_factory=list)
    higher_is_better: bool = True
    note: str = ""

    @property
    def median(self) -> float:
        return statistics.median(self.runs)

    @property
    def ratio(self) -> float | None:
        if not self.baseline_runs:
            return None
        base = statistics.median(self.baseline_runs)
        return self.median / base if self.higher_is_better else base / self.median

    def row(self) -> dict[str, Any]:
        return {
            **asdict(self),
            "median": self.median,
            "min": min(self.runs),
            "max": max(self.runs),
            "baseline_median": statistics.median(self.baseline_runs)
            if self.baseline_runs
            else None,
            "ratio": self.ratio,
        }


def machine() -> dict[str, Any]:
    memory_kb = 0
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            memory_kb = int(line.split()[1])
    import os

    return {
        "cores": os.cpu_count(),
        "memory_gib": round(memory_kb / 1024 / 1024, 1),
        "python": platform.python_version(),
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
    }


def write_results(figures: list[Figure], directory: Path, command: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    info = machine()
    (directory / "latest.json").write_text(
        json.dumps(
            {"machine": info, "command": command, "figures": [f.row() for f in figures]}, indent=2
        )
        + "\n"
    )
    lines = [
        f"Measured {info['date']} on {info['cores']} cores, {info['memory_gib']} GiB, "
        f"Python {info['python']}, with `{command}`.",
        "",
        "| figure | median | min–max | baseline (median) | ratio | note |",
        "|---|---|---|---|---|---|",
    ]
    for figure in figures:
        base = (
            f"{figure.baseline}: {statistics.median(figure.baseline_runs):,.1f} {figure.unit}"
            if figure.baseline_runs
            else "—"
        )
        ratio = f"{figure.ratio:.2f}×" if figure.ratio is not None else "—"
        lines.append(
            f"| {figure.name} | {figure.median:,.1f} {figure.unit} | "
            f"{min(figure.runs):,.1f}–{max(figure.runs):,.1f} | {base} | {ratio} | {figure.note} |"
        )
    table = directory / "latest.md"
    table.write_text("\n".join(lines) + "\n")
    return table
