"""Metadata filters, applied to both sides of the hybrid before fusion. Pure: a `Filter` and the
snapshot's metadata columns in, a row mask out.

A filtered-out paper never reaches the candidate pool, whatever its scores: BM25 scores and the
vector scan only see matching rows, so the ranks and scores a hit explains itself with are the
ones within the filtered set, and `k` hits come back whenever `k` papers match.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields

import numpy as np

from paperchat.index.columns import Columns, date_bounds, folded
from paperchat.index.errors import PaperchatError
from paperchat.index.papers import iso_date


@dataclass(frozen=True)
class Filter:
    """Which papers a search may return. Dates are ISO at any precision ("2024", "2024-06",
    "2024-06-01"); `author`, `venue` and `source` match a case- and accent-insensitive substring;
    `category` matches one category exactly (case-insensitive); `has_code` asks for a code link."""

    since: str | None = None
    until: str | None = None
    author: str | None = None
    category: str | None = None
    venue: str | None = None
    source: str | None = None
    has_code: bool | None = None

    def __post_init__(self) -> None:
        for name in ("since", "until"):
            value = getattr(self, name)
            if value is not None and iso_date(str(value)) != value:
                raise PaperchatError(f"filter {name}={value!r} is not an ISO date (2024, 2024-06 or 2024-06-01)")
        for name in ("author", "category", "venue", "source"):
            value = getattr(self, name)
            if value is not None and not str(value).strip():
                raise PaperchatError(f"filter {name} is empty")
        if self.since and self.until and self.since[: len(self.until)] > self.until[: len(self.since)]:
            raise PaperchatError(f"filter since={self.since} is after until={self.until}")

    @classmethod
    def of(cls, where: Filter | Mapping | None) -> Filter | None:
        """A `Filter` from a Filter, a dict of its fields (unknown keys are an error), or None; None when nothing is
        asked."""
        if where is None or isinstance(where, Filter):
            return where if where is None or where.active else None
        if not isinstance(where, Mapping):
            raise PaperchatError("where must be a Filter or a dict of filter fields")
        unknown = set(where) - {f.name for f in fields(cls)}
        if unknown:
            raise PaperchatError(
                f"unknown filter field(s): {', '.join(sorted(unknown))}; use {', '.join(f.name for f in fields(cls))}"
            )
        found = cls(**{key: value for key, value in where.items() if value is not None})
        return found if found.active else None

    @property
    def active(self) -> bool:
        return any(value is not None for value in asdict(self).values())

    def describe(self) -> str:
        return ", ".join(f"{key}={value}" for key, value in asdict(self).items() if value is not None)

    def mask(self, columns: Columns) -> np.ndarray:
        """Which rows match (all of the given conditions)."""
        keep = columns.live.copy()  # a deleted row matches nothing
        if self.since or self.until:
            keep &= date_mask(columns.date_from, columns.date_to, self.since, self.until)
        if self.author:
            keep &= columns.authors.contains(folded(self.author))
        if self.category:
            keep &= columns.categories.contains(f"|{folded(self.category)}|")
        if self.venue:
            keep &= columns.venue.contains(folded(self.venue))
        if self.source:
            keep &= columns.sources.contains(folded(self.source))
        if self.has_code is not None:
            keep &= columns.has_code == self.has_code
        return keep


def date_mask(date_from: np.ndarray, date_to: np.ndarray, since: str | None, until: str | None) -> np.ndarray:
    """Rows whose date can lie in [since, until] (`index.columns.date_bounds`: a year can lie in
    any of its days); unknown dates never match."""
    keep = date_from > 0
    if since:
        keep &= date_to >= date_bounds(since)[0]
    if until:
        keep &= date_from <= date_bounds(until)[1]
    return keep
