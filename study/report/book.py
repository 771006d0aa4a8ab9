"""The book vs this study: the experiment of "Deep Learning from Scratch" a study mirrors,
setting by setting, and each of the book's findings judged by the study's stored verdicts.

A study file's `[book]` lists the book's settings beside the study's own (a row whose two texts
differ is highlighted) and the book's findings, each with the claim that tests it and the claims
whose arms explain a difference. A finding reads

- "Reproduced: <claim> (supported, p_holm = ...)" when its claim is supported;
- otherwise "Not reproduced (<verdict>): <claim>", then each explaining claim with its own
  stored verdict: "explained by <claim>: supported (p_holm = ...)". An explanation is shown by
  arms that ran, never asserted: when no explaining claim is supported the page says that the
  difference is unexplained, and when none is named, that no claim explains it.

A claim without a stored verdict (the quick form leaves out claims whose arms it does not run)
is said to be not evaluated; a finding without a claim, not tested. This module judges; the
sentences are worded in templates/book.html.
"""

from __future__ import annotations

import json
import math

import pandas as pd

from study.engine.studies.expansion import Study
from study.engine.studies.study_schema import Book, BookFinding
from study.report import tables, views

SUPPORTED = "supported"


def book_of(study: Study) -> Book | None:
    """The study's `[book]` section as the file that ran it stored it, or None."""
    raw = study.definition.get("book")
    return None if raw is None else Book.model_validate(raw)


def section(study: Study, claims: pd.DataFrame) -> views.BookSection | None:
    """The page's "The book vs this study" section (None when the study mirrors no book
    experiment): what the book ran and reports, the settings table, the findings."""
    book = book_of(study)
    if book is None:
        return None
    verdicts = {row["claim_id"]: row for _, row in claims.iterrows()}
    return views.BookSection(book.experiment, book.reports,
                             settings_table(book) if book.settings else None,
                             [judgement(f, verdicts) for f in book.findings])


def settings_table(book: Book) -> views.Table:
    """Every setting of the book's experiment beside this study's; rows that differ carry the
    class `differs` (highlighted) and say so in their last cell, equal rows carry no class."""
    notes = any(row.note for row in book.settings)  # the column only when a row has one
    rows = []
    for row in book.settings:
        css, mark = ("", "same") if row.same else ("differs", "differs")
        cells = [views.Cell(row.setting, header=True), views.Cell(row.book),
                 views.Cell(row.here), views.Cell(mark)]
        rows.append(views.Row(cells + ([views.Cell(row.note)] if notes else []), css))
    differ = sum(not row.same for row in book.settings)
    caption = (f"Every setting of the book's experiment and this study's: {differ} of "
               f"{len(book.settings)} differ (highlighted)")
    head = ["setting", "the book", "this study", "", *(["note"] if notes else [])]
    return views.Table("book", rows, head=head, caption=caption)


def judgement(finding: BookFinding, verdicts: dict[str, pd.Series]) -> views.Finding:
    """A finding as the stored verdicts of its claims judge it (the template words it)."""
    if finding.claim is None:
        return views.Finding(finding.text, "not-tested", "not-tested")
    claim = verdicts.get(finding.claim)
    if claim is None:
        return views.Finding(finding.text, "not-evaluated", "not-evaluated",
                             claim_id=finding.claim)
    said = dict(claim_id=finding.claim, clause=clause(claim), verdict=claim["verdict"],
                evidence=evidence(claim))
    if claim["verdict"] == SUPPORTED:
        return views.Finding(finding.text, "reproduced", "reproduced", **said)
    explaining = [(claim_id, verdicts.get(claim_id)) for claim_id in finding.explained_by]
    explained = any(row is not None and row["verdict"] == SUPPORTED for _, row in explaining)
    return views.Finding(
        finding.text, "not-reproduced",
        "not-reproduced explained" if explained else "not-reproduced unexplained", **said,
        explanations=[views.Explanation(claim_id) if row is None else views.Explanation(
            claim_id, clause(row), row["verdict"], evidence(row)) for claim_id, row in explaining],
        explained=explained)


def clause(claim: pd.Series) -> str:
    """A claim's text inside a sentence: its own full stop left off (the sentence goes on)."""
    return claim["text"].strip().removesuffix(".")


def evidence(claim: pd.Series) -> str:
    """"p_holm = 0.0078", or for a rate claim (no p-value) its estimate."""
    p = claim["p_adjusted"]
    if p is not None and math.isfinite(float(p)):
        return f"p_holm = {float(p):.3g}"
    return tables.estimate_text(json.loads(claim["estimate"]), claim["n"])
