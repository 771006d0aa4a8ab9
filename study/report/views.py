"""What the pages show, as plain values: texts and numbers already worded, no HTML.

`tables`, `book` and the package's `build` fill these in; the templates in
study/report/templates/ lay them out, and Jinja2 escapes every value on the way (autoescaping
is on), so a text here is always shown as text, whatever characters it holds.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Cell:
    text: str
    header: bool = False  # a row's name: <th scope='row'>, else a <td>
    css: str = ""  # the <td>'s class
    strong: bool = False  # the best median, or the p-value that decided a verdict


@dataclass(frozen=True)
class Row:
    cells: list[Cell]
    css: str = ""


@dataclass(frozen=True)
class Table:
    css: str
    rows: list[Row]
    head: list[str] | None = None  # column names; None: no <thead>
    caption: str = ""


@dataclass(frozen=True)
class Link:
    text: str
    href: str


@dataclass(frozen=True)
class Image:
    src: str  # a data: URI (the page fetches nothing)
    alt: str
    css: str = ""


@dataclass(frozen=True)
class Chart:
    """An interactive view of a figure: a Vega-Lite spec with its data (`charts.Chart.payload`),
    written into the page as JSON and drawn there by the page's script."""
    id: str
    payload: dict


@dataclass(frozen=True)
class Figure:
    image: Image  # the static figure: shown without JavaScript, and printed
    title: str
    export: str  # the figure's SVG file, relative to the page
    chart: Chart | None = None


@dataclass(frozen=True)
class Explanation:
    """A claim named to explain a finding that was not reproduced; `verdict` None when the
    database holds no verdict of it."""
    claim_id: str
    clause: str = ""
    verdict: str | None = None
    evidence: str = ""


@dataclass(frozen=True)
class Finding:
    """One of the book's findings and how this study judges it. `outcome` is "not-tested",
    "not-evaluated", "reproduced" or "not-reproduced"; `css` adds "explained" / "unexplained"
    to the last."""
    text: str
    outcome: str
    css: str
    claim_id: str = ""
    clause: str = ""  # the claim's text inside a sentence (no full stop)
    verdict: str = ""
    evidence: str = ""
    explanations: list[Explanation] = field(default_factory=list)
    explained: bool = False  # some explaining claim is supported


@dataclass(frozen=True)
class BookSection:
    experiment: str
    reports: str
    settings: Table | None
    findings: list[Finding]


@dataclass(frozen=True)
class StudyPage:
    name: str
    question: str
    background: str
    about: str
    setup: Table
    definition: str  # the study file as it ran
    book: BookSection | None
    claims_method: str
    power: str  # how small p (Holm) can get; "" without tested claims
    claims: Table | None  # None: the study states no claims
    counts: str
    intervals: str
    summary: Table
    pivot: Table | None  # the main table of a study of two settings (None: the summary is)
    exports: list[Link]
    figures: list[Figure]
    script: str = ""  # the charts' JavaScript as a data: URI; "" when the page has no chart


@dataclass(frozen=True)
class Verdict:
    verdict: str
    claim: str


@dataclass(frozen=True)
class Card:
    """A study on the index: its headline figure and verdicts."""
    name: str
    question: str
    headline: Image | None
    verdicts: list[Verdict]
    counts: str
    minutes: str
    quick: bool


@dataclass(frozen=True)
class IndexPage:
    period: str
    runs: int
    minutes: str
    versions: str
    python: str
    db: str
    cards: list[Card]
