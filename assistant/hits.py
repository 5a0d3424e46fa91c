"""The one result type every surface shares: `Hit` (with its `Citation`). `--json` is `Hit.to_dict()`."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from paperchat.index.papers import Paper


@dataclass
class Citation:
    """How to cite and find the paper: title, link, the sources (with date labels) it appeared in,
    and what the sources said of it (fields a source did not give are empty, never invented)."""

    title: str
    url: str
    pages: list[str] = field(default_factory=list)
    dates: list[str] = field(default_factory=list)
    authors: list[str] = field(default_factory=list)
    date: str = ""
    year: int | None = None
    arxiv_id: str = ""
    doi: str = ""
    venue: str = ""
    categories: list[str] = field(default_factory=list)

    def byline(self) -> str:
        """Authors (the first three, then "et al."), venue and date: the line under the title on every surface."""
        authors = ", ".join(self.authors[:3]) + (" et al." if len(self.authors) > 3 else "")
        return ", ".join(part for part in (authors, self.venue, self.date) if part)

    def sources_line(self) -> str:
        """The pages the paper appeared on, each with its date label unless the page name already holds it."""
        dates = self.dates or [""] * len(self.pages)
        labelled = (f"{page} ({date})" if date and date not in page else page for page, date in zip(self.pages, dates))
        return "; ".join(labelled)


@dataclass
class Hit:
    """One ranked paper and why it ranked.

    `score` is the fused score used for the ranking. `bm25` / `vector` are the paper's
    score on each side (BM25 score; cosine similarity, the best of the paper's own vector
    and its passages') and `bm25_rank` / `vector_rank` its rank there (1 = best); a rank is
    None when the paper was not among that side's candidates (for BM25: it shares no term
    with the query).
    """

    rank: int
    id: str
    title: str
    snippet: str
    score: float
    bm25: float | None
    vector: float | None
    bm25_rank: int | None
    vector_rank: int | None
    citation: Citation
    abstract: str = ""
    metadata: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)

    def why(self) -> str:
        """One line explaining the rank from both sides."""

        def side(name: str, rank: int | None, score: float | None, fmt: str) -> str:
            if score is None:
                return f"{name}: -"
            return f"{name}: #{rank} ({score:{fmt}})" if rank else f"{name}: not in top ({score:{fmt}})"

        return (
            f"{side('bm25', self.bm25_rank, self.bm25, '.2f')}, "
            f"{side('vector', self.vector_rank, self.vector, '.3f')}, fused {self.score:.4f}"
        )


def citation_of(paper: Paper) -> Citation:
    """What a hit cites of its paper."""
    return Citation(
        paper.title,
        paper.url,
        paper.pages,
        paper.dates,
        paper.authors,
        paper.date,
        paper.year,
        paper.arxiv_id,
        paper.doi,
        paper.venue,
        paper.categories,
    )
