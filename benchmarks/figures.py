"""Figures the benchmarks print and record, for the one table ``make bench`` ends with.

A benchmark prints its lines as before, through :func:`emit`, and hands it the numbers of the
line as :class:`Figure` s: the name, the value, its unit, the goal if there is one, and which
way is better. ``python -m benchmarks`` collects every figure recorded while it runs and prints
them as one table with each figure's ratio to its goal (figure / goal)."""

import math
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal, TextIO

Better = Literal["lower", "higher"]


@dataclass(frozen=True)
class Figure:
    name: str
    value: float
    unit: str
    goal: float | None = None
    better: Better = "lower"
    # Set by ``emit`` from the line's prefix ("tickets: ..." -> "tickets") unless given.
    benchmark: str = ""

    @property
    def ratio(self) -> float | None:
        """The figure over its goal; None without a goal, or for a goal of zero."""
        if self.goal is None or self.goal == 0 or math.isnan(self.value):
            return None
        return self.value / self.goal

    @property
    def met(self) -> bool | None:
        """Whether the goal is met; None without a goal."""
        if self.goal is None:
            return None
        if math.isnan(self.value):
            return False
        return self.value <= self.goal if self.better == "lower" else self.value >= self.goal


_recorded: list[Figure] = []


def record(*figures: Figure) -> None:
    _recorded.extend(figures)


def emit(line: str, *figures: Figure, file: TextIO | None = None) -> None:
    """Print ``line`` (as ``print`` would, flushed) and record ``figures`` with it."""
    print(line, file=file or sys.stdout, flush=True)
    prefix = line.split(":", 1)[0].strip() if ":" in line else ""
    record(*(f if f.benchmark else _with_benchmark(f, prefix) for f in figures))


def _with_benchmark(figure: Figure, benchmark: str) -> Figure:
    return Figure(
        figure.name, figure.value, figure.unit, figure.goal, figure.better, benchmark or "-"
    )


def recorded() -> list[Figure]:
    return list(_recorded)


def clear() -> None:
    _recorded.clear()


def number(value: float) -> str:
    """A value in few characters: thousands separated, decimals by magnitude."""
    if math.isnan(value):
        return "n/a"
    size = abs(value)
    if size == 0 or size >= 100 or float(value).is_integer():
        return f"{value:,.0f}"
    if size >= 10:
        return f"{value:,.1f}"
    if size >= 0.1:
        return f"{value:.2f}"
    return f"{value:.3g}"


def _goal(figure: Figure) -> str:
    if figure.goal is None:
        return ""
    sign = "<=" if figure.better == "lower" else ">="
    return f"{sign} {number(figure.goal)}"


def _status(figure: Figure) -> str:
    return {None: "", True: "met", False: "MISSED"}[figure.met]


def table(figures: Sequence[Figure], failed: Iterable[str] = ()) -> str:
    """The figures as one plain-text table (it is read in terminals and in CI logs alike)."""
    header = ("benchmark", "figure", "value", "unit", "goal", "ratio", "")
    rows = [
        (
            f.benchmark,
            f.name,
            number(f.value),
            f.unit,
            _goal(f),
            "" if f.ratio is None else f"{f.ratio:.2f}",
            _status(f),
        )
        for f in figures
    ]
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    right = {2, 5}  # numbers

    def line(row: Sequence[str]) -> str:
        cells = (
            cell.rjust(widths[i]) if i in right else cell.ljust(widths[i])
            for i, cell in enumerate(row)
        )
        return "  ".join(cells).rstrip()

    with_goal = [f for f in figures if f.met is not None]
    missed = [f for f in with_goal if not f.met]
    out = [line(header), line(tuple("-" * w for w in widths)), *(line(row) for row in rows)]
    out.append(
        f"{len(figures)} figures, {len(with_goal)} with a goal: {len(with_goal) - len(missed)}"
        f" met, {len(missed)} missed"
        " (ratio = figure / goal; goals of 0 have none, they are met only at 0)"
    )
    for name in failed:
        out.append(f"benchmark {name} FAILED before all its figures were printed (see stderr)")
    return "\n".join(out)
