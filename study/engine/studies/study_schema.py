"""The study file's own keys: axes of random search, the search, claims, report, seeds, and
the book experiment the study mirrors.

The run settings (`[data]`, `[model]`, `[training]`) are `run_schema`'s; this schema checks the
rest of the file and leaves those sections as tables, validated once the axes are applied.
"""

from __future__ import annotations

import difflib
from typing import Annotated, Any, Literal

from pydantic import (Field, NonNegativeInt, PositiveInt, StringConstraints, field_validator,
                      model_validator)

from study.engine.studies.run_schema import Strict


class RandomAxis(Strict):
    low: float
    high: float
    scale: Literal["linear", "log"] = "linear"
    integer: bool = False

    @model_validator(mode="after")
    def _range(self):
        if not self.low < self.high:
            raise ValueError(f"low ({self.low}) must be below high ({self.high})")
        if self.scale == "log" and self.low <= 0:
            raise ValueError(f"a log scale needs low > 0; got {self.low}")
        return self


class RandomSearch(Strict):
    samples: PositiveInt
    seed: int = 0
    axes: dict[str, RandomAxis]


# The final stage of repeat r trains with seeds FIRST_FINAL_SEED * (r + 1) + i: fresh seeds,
# never a round's (a search's round seeds lie below FIRST_FINAL_SEED), and each repeat its own.
FIRST_FINAL_SEED = 1000
# Stage labels the engine gives; a reference stage takes another name.
STAGE_NAMES = ("grid", "final", "control")


class Search(Strict):
    """Random search in rounds (DLFS 6.5.3), see study.engine.studies.search: `[random]` is
    round 1; `[grid]` / `[zip]` beside it make one search per cell."""

    metric: str = "val_accuracy"
    higher_is_better: bool = True
    rounds: PositiveInt = Field(2, le=1000)  # repeat r samples with seeds seed + 1000 r + ...
    keep: float = Field(0.2, gt=0.0, le=1.0)  # the best share of a round sets the next ranges
    # The chosen setting, trained again with the test set on, with fresh seeds (FIRST_FINAL_SEED).
    final_seeds: PositiveInt = Field(5, le=FIRST_FINAL_SEED)
    # Round 1's points: random draws, or "grid": k points per axis over its range, spaced
    # like the axis (samples = k ** axes; later rounds draw at random in the narrowed ranges).
    sampling: Literal["random", "grid"] = "random"
    # A grid of the same budget over round 1's ranges, for comparison (samples = k ** axes).
    compare_grid: bool = False
    # Settings of a control twin of the final stage, e.g. { optimizer = "keras.sgd" }: the
    # chosen point trained again with Keras's built-ins (marked round = "control").
    control: dict[str, Any] = {}
    # The whole search (rounds, final, control, reference) done this many times, with
    # independent sampling: a search claim's unit is one search (marked repeat = 0, 1, ...).
    repeats: PositiveInt = Field(1, le=1000)
    # A stage name, e.g. "book": each cell as written (its [grid]/[zip] values, not searched)
    # trained with the final stage's seeds and the test set on: the untuned reference.
    reference: str | None = Field(None, pattern=r"^[A-Za-z][A-Za-z0-9_\-]*$")

    @field_validator("reference")
    @classmethod
    def _not_a_stage_of_the_engine(cls, name):
        if name in STAGE_NAMES:
            raise ValueError(f"{name!r} is a stage of the search itself; give the reference "
                             f"another name (not {', '.join(STAGE_NAMES)}), e.g. \"book\"")
        return name


class Claim(Strict):
    """A sentence of the notes, the metric that tests it, the arms, and the test.

    kinds: `better` (arm beats baseline seed by seed: paired one-sided Wilcoxon; both
    directions of every claim form one Holm family across the study's claims; the median
    paired difference, the share of seeds won and the unpaired Vargha-Delaney A12); `rate` (the share of seeds whose metric
    reaches `threshold` is at most / at least a bound: Wilson 95% interval); `below` / `above`
    (the arm's metric lies below / above `value`: one-sample one-sided Wilcoxon, Holm).
    Arms are selected by their axis values, e.g. `arm = { optimizer = "adam" }`.
    """

    id: str = Field(pattern=r"^[a-z0-9][a-z0-9_\-]*$")
    text: str
    kind: Literal["better", "rate", "below", "above"]
    metric: str
    arm: dict[str, Any]
    baseline: dict[str, Any] | None = None
    higher_is_better: bool = True
    # A finished run without the metric (e.g. `solved_at_step` of a run that never solved):
    # "dropped" leaves the seed out; "worst" counts it as the metric's worst value, as a
    # diverged run is (a censored time: never is slower than any step).
    missing: Literal["dropped", "worst"] = "dropped"
    threshold: float | None = None
    at_most: float | None = Field(None, ge=0, le=1)
    at_least: float | None = Field(None, ge=0, le=1)
    value: float | None = None

    @model_validator(mode="after")
    def _fields_of_kind(self):
        needs = {"better": ["baseline"], "rate": ["threshold"], "below": ["value"],
                 "above": ["value"]}[self.kind]
        missing = [f for f in needs if getattr(self, f) is None]
        if missing:
            raise ValueError(f"a {self.kind!r} claim needs {', '.join(missing)}")
        if self.kind == "rate" and (self.at_most is None) == (self.at_least is None):
            raise ValueError("a 'rate' claim needs exactly one of at_most or at_least")
        return self


# The figures a study page can draw (study.report.figure_kinds.FIGURES has one function each).
FIGURE_KINDS = ("curves", "final", "heatmap", "histograms", "boundaries", "paths", "gradients",
                "search", "boundary_steps")


class Figure(Strict):
    """One figure of the study's report page. Axis names (`x`, `hue`, `col`, `row`) are the
    study's varied settings by their last name (`optimizer`, `batch_norm`), or "arm"."""

    kind: Literal[FIGURE_KINDS]
    metric: str = "val_accuracy"  # a final metric, or for "curves" a history column
    # heatmap: the share of runs with metric >= threshold (diverged runs count as misses)
    # instead of the mean
    threshold: float | None = None
    x: str | None = None
    y: str | None = None
    hue: str | None = None
    col: str | None = None
    row: str | None = None
    title: str = ""  # what to look at; a default is made from the kind and metric
    # curves of "loss" / "accuracy": draw the validation twin too (dashed)
    validation: bool = True
    # boundary_steps: the arm the view starts on and the static figure shows, by its settings'
    # last names as a claim's `arm` ({ hidden = [5, 4], activation = "sigmoid" }); {}: the first
    arm: dict[str, Any] = {}


class Pivot(Strict):
    """`[report] pivot`: the page's main table as rows × columns of settings (their last
    names; `batch_norm` takes `batch_norm_args` along; a list joins several), each cell one
    arm's median of `metric` (default: the first of `metrics`) with its interval, or with
    `threshold` the share of its runs reaching it."""

    rows: str | list[str]
    columns: str | list[str]
    metric: str | None = None
    threshold: float | None = None

    @model_validator(mode="after")
    def _distinct_settings(self):
        rows, columns = _names(self.rows), _names(self.columns)
        if not rows or not columns or "" in rows + columns:
            raise ValueError("rows and columns each name a setting the study varies, or a "
                             "list of them")
        if len(set(rows + columns)) != len(rows + columns):
            raise ValueError(f"a setting is named twice in rows {rows} and columns {columns}: "
                             f"each setting goes to the rows or to the columns, once")
        return self


def _names(value: str | list[str]) -> list[str]:
    return [value] if isinstance(value, str) else list(value)


class ReportSpec(Strict):
    """`[report]`: the columns of the results table and the figures of the study's page."""

    metrics: list[str] = ["val_accuracy", "val_loss"]
    # The table's rows: one per arm ("name"), per value of a setting ("round"), or per
    # combination of the values of several (["round", "optimizer"]).
    group_by: str | list[str] = "name"
    figures: list[Figure] = []
    # Display names of arms: the automatic name (its varied values) -> a short one.
    names: dict[str, str] = {}
    # The main table as a pivot; studies that vary two settings get one without it.
    pivot: Pivot | None = None

    @field_validator("group_by")
    @classmethod
    def _some_setting(cls, by):
        if isinstance(by, list) and (not by or len(set(by)) != len(by)):
            raise ValueError(f"{by!r} is not allowed: give a setting's name, or a list of "
                             f"distinct names (e.g. [\"round\", \"optimizer\"])")
        return by


# A text of the study file that must say something: not empty, not only spaces.
Text = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1)]


class BookSetting(Strict):
    """One setting of the book's experiment beside this study's value of it, as people read
    them ("0.9", "0.99 (Keras default); 0.9 in the book arm"). Equal texts (spaces aside)
    make a row that is the same; any other difference is shown highlighted. `note` says why
    a value differs or how the two spellings agree; it is not compared."""

    setting: Text
    book: Text
    here: Text
    note: str = ""

    @property
    def same(self) -> bool:
        return " ".join(self.book.split()) == " ".join(self.here.split())


class BookFinding(Strict):
    """A result the book reports, the claim of this study that tests it, and the claims whose
    arms show which setting explains a difference (the report reads their stored verdicts)."""

    text: Text
    claim: str | None = None  # none yet: the page says no claim tests it
    explained_by: list[str] = []

    @model_validator(mode="after")
    def _explains_a_claim(self):
        if self.explained_by and self.claim is None:
            raise ValueError(f"explained_by {self.explained_by!r} explains the verdict of a "
                             f"claim: give the finding's claim too")
        if self.claim is not None and self.claim in self.explained_by:
            raise ValueError(f"explained_by: {self.claim!r} is the finding's own claim; name "
                             f"the claims whose arms explain a difference from it")
        return self


class Book(Strict):
    """`[book]`: the experiment of "Deep Learning from Scratch" the study mirrors, what the
    book reports, its every setting beside this study's, and its findings."""

    experiment: Text  # e.g. "DLFS 6.3.2, ch06/batch_norm_test.py"
    reports: Text  # what the book reports, in a sentence or two
    settings: list[BookSetting] = []
    findings: list[BookFinding] = []

    @field_validator("settings")
    @classmethod
    def _one_row_per_setting(cls, settings):
        first: dict[str, int] = {}
        for i, row in enumerate(settings):
            if row.setting in first:
                raise ValueError(f"{row.setting!r} is listed twice (settings[{first[row.setting]}]"
                                 f" and settings[{i}])")
            first[row.setting] = i
        return settings


class StudyFile(Strict):
    name: str = Field(pattern=r"^[a-z0-9][a-z0-9_\-]*$")
    question: str = ""
    about: str = ""
    background: str = ""  # what the technique is and why it matters, for the report
    seeds: PositiveInt | list[NonNegativeInt] = 5
    task: str = "train"
    data: dict[str, Any]
    model: dict[str, Any] = {}
    training: dict[str, Any] | None = None
    grid: dict[str, list[Any]] = {}
    zip: dict[str, list[Any]] = {}
    random: RandomSearch | None = None
    quick: dict[str, Any] = {}
    claims: list[Claim] = []
    search: Search | None = None
    report: ReportSpec = ReportSpec()
    book: Book | None = None

    @model_validator(mode="after")
    def _findings_name_claims(self):
        """Every claim a finding names (its own and those that explain it) is one of the file's
        [[claims]]: a verdict the report can read, never a sentence asserted without arms."""
        ids = [claim.id for claim in self.claims]
        named = [(f"book.findings[{i}].{key}", claim_id)
                 for i, finding in enumerate(self.book.findings if self.book else [])
                 for key, claim_id in [("claim", finding.claim), *(
                     (f"explained_by[{j}]", e) for j, e in enumerate(finding.explained_by))]]
        unknown = []
        for key, claim_id in named:
            if claim_id is not None and claim_id not in ids:
                close = difflib.get_close_matches(claim_id, ids, n=1, cutoff=0.6)
                hint = f" (did you mean {close[0]!r}?)" if close else ""
                unknown.append(f"{key}: {claim_id!r} is not a claim id of this study{hint}")
        if unknown:
            known = f"the study's claims: {', '.join(ids)}" if ids else "it has no [[claims]]"
            raise ValueError("; ".join([*unknown, known]))
        return self

    @model_validator(mode="after")
    def _search_needs_random(self):
        if self.search is None:
            return self
        if self.random is None:
            raise ValueError("search: a search samples its [random] axes; give [random] (with "
                             "[grid] / [zip] beside it for one search per combination)")
        grid = "sampling" if self.search.sampling == "grid" else "compare_grid"
        if self.search.compare_grid and self.search.sampling == "grid":
            raise ValueError("search.compare_grid: round 1 is already the grid (sampling = "
                             "\"grid\"); compare with random sampling, or leave it out")
        if self.search.compare_grid or self.search.sampling == "grid":
            side = round(self.random.samples ** (1 / len(self.random.axes)))
            if side ** len(self.random.axes) != self.random.samples:
                raise ValueError(f"search.{grid}: random.samples ({self.random.samples}) "
                                 f"must be a whole power of the number of axes "
                                 f"({len(self.random.axes)}) for a grid of that many points")
        if (self.search.sampling == "grid" and self.search.rounds == 1
                and self.search.repeats > 1):
            raise ValueError("search.repeats: with sampling = \"grid\" and rounds = 1 every "
                             "repeat would be the same search; use random sampling or more "
                             "rounds")
        seeds = range(self.seeds) if isinstance(self.seeds, int) else self.seeds
        if max(seeds) >= FIRST_FINAL_SEED:
            raise ValueError(f"seeds: in a search the rounds' seeds must lie below "
                             f"{FIRST_FINAL_SEED}; the final stage's fresh seeds start there "
                             f"(got {max(seeds)})")
        return self

    @field_validator("seeds", mode="before")
    @classmethod
    def _seeds(cls, seeds):
        count_ok = isinstance(seeds, int) and not isinstance(seeds, bool) and seeds > 0
        list_ok = (isinstance(seeds, list) and seeds and len(set(seeds)) == len(seeds) and
                   all(isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in seeds))
        if not (count_ok or list_ok):
            raise ValueError(f"{seeds!r} is not allowed: give a number of seeds (> 0) or a "
                             f"list of distinct seeds (integers >= 0)")
        return seeds

    @field_validator("grid", "zip")
    @classmethod
    def _non_empty(cls, axes):
        for key, values in axes.items():
            if not values:
                raise ValueError(f"axis {key!r} has no values")
        return axes

