"""The Redis peer table as Markdown: every row's medians, Petiole's default and best
rows as ratios against every row, the spread of the repetitions, and the commands
that make up each row's count."""

from __future__ import annotations

import os
import platform
import statistics
from collections.abc import Sequence
from dataclasses import dataclass

from benchkit import Runs
from common import Flags

PETIOLE_ROWS = ("Petiole default", "Petiole best")
# Commands shown per row and workload in the breakdown.
TOP_COMMANDS = 6


@dataclass(frozen=True)
class Column:
    key: str
    title: str
    digits: int
    higher_is_better: bool


COLUMNS = (
    Column("w1_per_s", "W1 tasks/s", 0, True),
    Column("w1_cpu_us", "W1 CPU µs/task", 0, False),
    Column("w1_cmds", "W1 cmds/task", 1, False),
    Column("w2_per_s", "W2 tasks/s", 0, True),
    Column("w2_cpu_us", "W2 CPU µs/task", 0, False),
    Column("w2_cmds", "W2 cmds/task", 1, False),
    Column("w2b_per_s", "W2 batch tasks/s", 0, True),
    Column("w2b_cpu_us", "W2 batch CPU µs/task", 0, False),
    Column("w2b_cmds", "W2 batch cmds/task", 1, False),
    Column("w3_p50_ms", "W3 p50 ms", 2, False),
    Column("w3_p99_ms", "W3 p99 ms", 2, False),
    Column("w3_cmds", "W3 cmds/trip", 1, False),
    Column("rss_mb", "RSS MB", 0, False),
    Column("pss_mb", "PSS MB", 0, False),
)
RATIO_KEYS = ("w1_per_s", "w1_cpu_us", "w2_per_s", "w2b_per_s", "w3_p50_ms", "rss_mb", "pss_mb")
RATIO_COLUMNS = tuple(c for c in COLUMNS if c.key in RATIO_KEYS)
SPREAD_COLUMNS = tuple(
    c for c in COLUMNS if c.key in ("w1_per_s", "w2_per_s", "w2b_per_s", "w3_p50_ms")
)


def machine() -> str:
    return f"machine: {os.cpu_count()} CPUs, {platform.platform()}, load {os.getloadavg()}"


def setup_line(name: str, flags: Flags) -> str:
    """How a row runs: its command line, why those flags, and its workload sizes."""
    why = f" — {flags.why}" if flags.why else ""
    sizes = "" if flags.scale == 1 else f" [scaled x{flags.scale:g}]"
    same = f" (not run again: its figures are the {flags.same_as} row's)" if flags.same_as else ""
    return f"{name}: `{flags.shown}`{sizes}{same}{why}"


def _median(runs: Runs, name: str, key: str) -> float | None:
    values = [r[key] for r in runs.get(name, []) if key in r]
    return float(statistics.median(values)) if values else None


def _cell(value: float | None, digits: int) -> str:
    return "n/a" if value is None else f"{value:,.{digits}f}"


def medians_table(runs: Runs, names: Sequence[str]) -> list[str]:
    lines = [
        "",
        "Medians (tasks/s higher is better; the rest lower is better)",
        "",
        "| row | " + " | ".join(c.title for c in COLUMNS) + " |",
        "|---|" + "---:|" * len(COLUMNS),
    ]
    for name in names:
        cells = [_cell(_median(runs, name, c.key), c.digits) for c in COLUMNS]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return lines


def ratio_table(runs: Runs, names: Sequence[str]) -> list[str]:
    """Petiole default / row and Petiole best / row for each ratio column: above 1 for
    rates and below 1 for times, CPU and memory mean Petiole is ahead."""
    ours = [p for p in PETIOLE_ROWS if p in runs]
    if not ours:
        return []
    headers = [f"{c.title}: {p[len('Petiole ') :]} / row" for c in RATIO_COLUMNS for p in ours]
    lines = [
        "",
        "Petiole's default and best rows / each row (rates: above 1 is Petiole ahead; "
        "times, CPU, RSS: below 1 is Petiole ahead)",
        "",
        "| row | " + " | ".join(headers) + " |",
        "|---|" + "---:|" * len(headers),
    ]
    for name in names:
        cells = []
        for column in RATIO_COLUMNS:
            theirs = _median(runs, name, column.key)
            for petiole in ours:
                mine = _median(runs, petiole, column.key)
                cells.append("n/a" if mine is None or not theirs else _ratio(mine / theirs))
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return lines


def _ratio(value: float) -> str:
    """Two significant digits at least, so 0.003x does not print as 0.00x."""
    return f"{value:.2f}x" if value >= 0.1 else f"{value:.2g}x"


def spread_table(runs: Runs, names: Sequence[str]) -> list[str]:
    lines = [
        "",
        "Each repetition (the medians above are of these), and the sizes run",
        "",
        "| row | " + " | ".join(c.title for c in SPREAD_COLUMNS) + " | W1 / W2 / W3 sizes |",
        "|---|" + "---|" * (len(SPREAD_COLUMNS) + 1),
    ]
    for name in names:
        each = [
            ", ".join(f"{r[c.key]:,.{c.digits}f}" for r in runs.get(name, []) if c.key in r)
            for c in SPREAD_COLUMNS
        ]
        first = runs[name][0] if runs.get(name) else {}
        sizes = " / ".join(
            f"{first.get(k, 0):,}" for k in ("w1_tasks", "w2_tasks", "w3_round_trips")
        )
        lines.append(f"| {name} | " + " | ".join(each) + f" | {sizes} |")
    return lines


def command_breakdown(runs: Runs, names: Sequence[str]) -> list[str]:
    """The most frequent commands per task of each row's last repetition (Redis counts
    those a Lua script runs as calls too)."""
    lines = ["", "Commands per task (last repetition; the most frequent first)", ""]
    workloads = (
        ("W1", "w1", "w1_window_tasks"),
        ("W2", "w2", "w2_tasks"),
        ("W2 batch", "w2b", "w2_tasks"),
        ("W3", "w3", "w3_round_trips"),
    )
    for name in names:
        if not runs.get(name):
            continue
        last = runs[name][-1]
        parts = []
        for workload, prefix, count_key in workloads:
            counted: dict[str, float] = last.get(f"{prefix}_cmds_by_name", {})
            tasks = last.get(count_key) or 1
            top = sorted(counted.items(), key=lambda item: -item[1])[:TOP_COMMANDS]
            parts.append(f"{workload}: " + ", ".join(f"{c} {n / tasks:.2f}" for c, n in top))
        lines.append(f"- {name}: " + "; ".join(parts))
    return lines


def tables(runs: Runs, names: Sequence[str]) -> str:
    return "\n".join(
        [
            *medians_table(runs, names),
            *ratio_table(runs, names),
            *spread_table(runs, names),
            *command_breakdown(runs, names),
        ]
    )
