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
is said to be not evaluated; a finding without a claim, not tested.
"""

from __future__ import annotations

import json
import math

import pandas as pd

from study.engine.studies.expansion import Study
from study.engine.studies.study_schema import Book, BookFinding
from study.report import pages, tables

SUPPORTED = "supported"


def book_of(study: Study) -> Book | None:
    """The study's `[book]` section as the file that ran it stored it, or None."""
    raw = study.definition.get("book")
    return None if raw is None else Book.model_validate(raw)


def section(study: Study, claims: pd.DataFrame) -> str:
    """The page's "The book vs this study" section (empty when the study mirrors no book
    experiment): what the book ran and reports, the settings table, the findings."""
    book = book_of(study)
    if book is None:
        return ""
    verdicts = {row["claim_id"]: row for _, row in claims.iterrows()}
    findings = "".join(finding_html(f, verdicts) for f in book.findings)
    return f"""<h2>The book vs this study</h2>
<p class='meta'>The book's experiment: {pages.escape(book.experiment)}.</p>
<p>The book reports: {pages.escape(book.reports)}</p>
{settings_html(book) if book.settings else ""}
<h3>The book's findings, judged by this study's claims</h3>
{f"<ul class='findings'>{findings}</ul>" if findings else
 "<p>The study file lists no finding of the book yet.</p>"}
"""


def settings_html(book: Book) -> str:
    """Every setting of the book's experiment beside this study's; rows that differ carry the
    class `differs` (highlighted) and say so in their last cell, equal rows carry no class."""
    notes = any(row.note for row in book.settings)  # the column only when a row has one
    rows = []
    for row in book.settings:
        css, mark = ("", "same") if row.same else (" class='differs'", "differs")
        note = f"<td>{pages.escape(row.note)}</td>" if notes else ""
        rows.append(f"<tr{css}><th scope='row'>{pages.escape(row.setting)}</th>"
                    f"<td>{pages.escape(row.book)}</td><td>{pages.escape(row.here)}</td>"
                    f"<td>{mark}</td>{note}</tr>")
    differ = sum(not row.same for row in book.settings)
    caption = (f"Every setting of the book's experiment and this study's: {differ} of "
               f"{len(book.settings)} differ (highlighted)")
    head = "".join(f"<th scope='col'>{name}</th>" for name in
                   ["setting", "the book", "this study", "", *(["note"] if notes else [])])
    return (f"<table class='book'><caption>{pages.escape(caption)}</caption><thead><tr>{head}"
            f"</tr></thead><tbody>{''.join(rows)}</tbody></table>")


def finding_html(finding: BookFinding, verdicts: dict[str, pd.Series]) -> str:
    """One finding as a list item: what the book found, then the sentence its verdicts give."""
    css, sentence = judgement(finding, verdicts)
    return (f"<li class='finding {css}'><p class='book-finding'>The book: "
            f"{pages.escape(finding.text)}</p><p>{sentence}</p></li>")


def judgement(finding: BookFinding, verdicts: dict[str, pd.Series]) -> tuple[str, str]:
    """(css class, HTML sentence) of a finding from the stored verdicts of its claims."""
    if finding.claim is None:
        return "not-tested", "<strong>Not tested</strong>: no claim of this study tests it yet."
    claim = verdicts.get(finding.claim)
    if claim is None:
        return "not-evaluated", _not_evaluated(finding.claim)
    if claim["verdict"] == SUPPORTED:
        return "reproduced", (f"<strong>Reproduced</strong>: {_clause(claim)} "
                              f"({_evidence(claim, with_verdict=True)}).")
    head = (f"<strong>Not reproduced</strong> ({pages.escape(claim['verdict'])}): "
            f"{_clause(claim)} ({_evidence(claim, with_verdict=False)}).")
    explaining = [(claim_id, verdicts.get(claim_id)) for claim_id in finding.explained_by]
    if not explaining:
        return "not-reproduced unexplained", (
            f"{head} <span class='unexplained'>No claim of this study is named to explain "
            f"it.</span>")
    because = "Explained by " + "; explained by ".join(
        _explaining(claim_id, row) for claim_id, row in explaining)
    if any(row is not None and row["verdict"] == SUPPORTED for _, row in explaining):
        return "not-reproduced explained", f"{head} {because}."
    return "not-reproduced unexplained", (
        f"{head} {because}. <span class='unexplained'>The difference is unexplained: no "
        f"explaining claim is supported either.</span>")


def _explaining(claim_id: str, row: pd.Series | None) -> str:
    if row is None:
        return f"{pages.escape(claim_id)}: not evaluated (no stored verdict)"
    return (f"{_clause(row)}: <span class='verdict {pages.escape(row['verdict'])}'>"
            f"{pages.escape(row['verdict'])}</span> ({_evidence(row, with_verdict=False)})")


def _clause(claim: pd.Series) -> str:
    """A claim's text inside a sentence: its own full stop left off (the sentence goes on)."""
    return pages.escape(claim["text"].strip().removesuffix("."))


def _not_evaluated(claim_id: str) -> str:
    return (f"<strong>Not evaluated</strong>: the database holds no verdict of claim "
            f"{pages.escape(claim_id)} (a quick run leaves out the claims whose arms it does "
            f"not run).")


def _evidence(claim: pd.Series, with_verdict: bool) -> str:
    """"supported, p_holm = 0.0078", or for a rate claim (no p-value) its estimate."""
    p = claim["p_adjusted"]
    if p is not None and math.isfinite(float(p)):
        evidence = f"p_holm = {float(p):.3g}"
    else:
        evidence = tables.estimate_text(json.loads(claim["estimate"]), claim["n"])
    text = f"{claim['verdict']}, {evidence}" if with_verdict else evidence
    return pages.escape(text)
