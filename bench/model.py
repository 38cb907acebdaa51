"""Result model: rows of samples grouped under a baseline, with targets."""

from __future__ import annotations

import statistics
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

T = TypeVar("T")
Status = Literal["ok", "unavailable", "error"]


class Unavailable(Exception):
    """The object to benchmark does not exist (yet): not an error."""


@dataclass(frozen=True)
class Target:
    """``value <op> limit`` where value is the row's median, or its ratio to
    the median of row ``relative_to`` of the same group when that is set."""

    op: Literal["<=", ">="]
    limit: float
    label: str
    relative_to: str | None = None

    def holds(self, value: float) -> bool:
        return value <= self.limit if self.op == "<=" else value >= self.limit


@dataclass
class Row:
    name: str
    samples: list[float] = field(default_factory=list)
    status: Status = "ok"
    note: str = ""

    @property
    def usable(self) -> bool:
        return self.status == "ok" and bool(self.samples)

    @property
    def median(self) -> float | None:
        return statistics.median(self.samples) if self.usable else None

    @property
    def spread(self) -> tuple[float, float] | None:
        return (min(self.samples), max(self.samples)) if self.usable else None


@dataclass(frozen=True)
class Failure:
    """One run of a repeated measurement that failed."""

    reason: str


def guarded(fn: Callable[[], T], errors: tuple[type[Exception], ...]) -> T | Failure:
    """``fn()``, or a :class:`Failure` for the expected ``errors``."""
    try:
        return fn()
    except errors as exc:
        return Failure(f"{type(exc).__name__}: {str(exc)[:200]}")


def row_from_runs(
    name: str, runs: Sequence[T | Failure], metric: Callable[[T], float], note: str = ""
) -> Row:
    """A row of ``metric`` over the successful runs; failures go to the note."""
    values = [metric(r) for r in runs if not isinstance(r, Failure)]
    failures = sorted({r.reason for r in runs if isinstance(r, Failure)})
    text = "; ".join(part for part in (note, *failures) if part)
    return Row(name, values, status="ok" if values else "error", note=text)


@dataclass
class Group:
    key: str
    title: str
    unit: str
    baseline: str
    higher_is_better: bool = False
    targets: dict[str, Target] = field(default_factory=dict)
    rows: list[Row] = field(default_factory=list)
    note: str = ""

    # -- building ----------------------------------------------------------
    def attempt(self, name: str, build: Callable[[], T]) -> T | None:
        """``build()``, or None after recording an unavailable/error row."""
        try:
            return build()
        except Unavailable as exc:
            self.rows.append(Row(name, status="unavailable", note=str(exc)))
        except Exception as exc:  # code under test may raise anything
            self.rows.append(Row(name, status="error", note=f"{type(exc).__name__}: {exc}"))
        return None

    def add_results(self, results: Mapping[str, list[float]], notes: Mapping[str, str] | None = None) -> None:
        for name, samples in results.items():
            self.rows.append(Row(name, samples, note=(notes or {}).get(name, "")))

    def order(self, names: Sequence[str]) -> None:
        """Sort rows to follow ``names`` (unknown names last)."""
        rank = {name: i for i, name in enumerate(names)}
        self.rows.sort(key=lambda r: rank.get(r.name, len(rank)))

    # -- reading -----------------------------------------------------------
    def row(self, name: str) -> Row | None:
        return next((r for r in self.rows if r.name == name), None)

    def ratio(self, row: Row, to: str | None = None) -> float | None:
        """``row`` median divided by the median of ``to`` (default baseline)."""
        ref_row = self.row(to or self.baseline)
        mine = row.median
        ref = ref_row.median if ref_row is not None else None
        if mine is None or not ref:
            return None
        return mine / ref

    def target_value(self, row: Row) -> float | None:
        target = self.targets.get(row.name)
        if target is None:
            return None
        if target.relative_to is None:
            return row.median
        return self.ratio(row, target.relative_to)

    def verdict(self, row: Row) -> str:
        """ "hit", "miss", "n/a" (no data) or "" (no target)."""
        target = self.targets.get(row.name)
        if target is None:
            return ""
        value = self.target_value(row)
        if value is None:
            return "n/a"
        return "hit" if target.holds(value) else "miss"

    def to_json(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "title": self.title,
            "unit": self.unit,
            "baseline": self.baseline,
            "higher_is_better": self.higher_is_better,
            "note": self.note,
            "rows": [self._row_json(r) for r in self.rows],
        }

    def _row_json(self, row: Row) -> dict[str, Any]:
        spread = row.spread
        target = self.targets.get(row.name)
        return {
            "name": row.name,
            "status": row.status,
            "note": row.note,
            "samples": row.samples,
            "median": row.median,
            "min": spread[0] if spread else None,
            "max": spread[1] if spread else None,
            "ratio_to_baseline": self.ratio(row),
            "target": target.label if target else None,
            "target_value": self.target_value(row),
            "verdict": self.verdict(row),
        }
