"""`study report`: the results database as HTML pages, CSV tables and SVG figures.

    from study.report import build
    build("results/study.db", "reports")   # reports/index.html, reports/<study>.html, ...

    import study
    study.report("results/study.db", "reports")   # the same, for the Python API: the package
                                                  # is callable (`write`), StudyError if no db

Data flows one way: store -> `data.load` (DataFrames) -> `tables` / `figures` / `book` (the
book vs the study, from the stored verdicts) -> `views` (what each page shows, as plain
values) -> `pages` (the templates in templates/, rendered by Jinja2 with autoescaping on).
The output depends on the database alone (no clock, no random state): the same database
gives the same files, byte for byte.
"""

from __future__ import annotations

import platform
import sys
import types
from pathlib import Path

import pandas as pd

from study.engine.studies.study_schema import Figure
from study.report import data as report_data
from study.report import book, charts, figure_kinds, figures, methods, pages, pivot, tables, views
from study.report.charts import script


def build(db: str | Path, out: str | Path) -> list[Path]:
    """Write the index and every study's page (with its exports) under `out`; return the
    pages written."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    studies = report_data.load(db)
    written, cards = [], []
    for study in studies:
        page, card = _study_page(study, out)
        written.append(page)
        cards.append(card)
    index = out / "index.html"
    index.write_text(_index(studies, cards, db), encoding="utf-8")
    return [index, *written]


def write(db: str | Path, out: str | Path) -> list[Path]:
    """`study report`: `build`, after checking that `db` is a results database (StudyError
    with the command's message if not)."""
    from study.errors import StudyError

    if not Path(db).is_file():
        raise StudyError(f"{db}: no such results database (run `study run` first)")
    try:
        return build(db, out)
    except Exception as error:
        from study.engine.results.store import StoreError
        from study.engine.studies.errors import ConfigError

        if isinstance(error, (StoreError, ConfigError)):
            raise StudyError(str(error), names_its_source=isinstance(error, ConfigError)) \
                from None
        raise


class _CallablePackage(types.ModuleType):
    """`study.report(db, out)` is `write(db, out)`: `study.report` is this package (Python sets
    a subpackage as its parent's attribute once imported), so the package itself is callable."""

    def __call__(self, db: str | Path, out: str | Path) -> list[Path]:
        return write(db, out)


sys.modules[__name__].__class__ = _CallablePackage


def default_figures(study: report_data.StudyResults) -> list[Figure]:
    """What a study without `[[report.figures]]` shows: learning curves if it logged any,
    and the final value of its first table metric."""
    metric = study.study.report.metrics[0]
    shown = [Figure(kind="final", metric=metric)]
    if not study.history.empty:
        shown.insert(0, Figure(kind="curves", metric="val_accuracy"
                               if "val_accuracy" in study.history else "loss"))
    return shown


def _study_page(study: report_data.StudyResults, out: Path) -> tuple[Path, views.Card]:
    folder = out / study.name
    folder.mkdir(exist_ok=True)
    for stale in folder.glob("figure-*.svg"):  # a figure the study no longer draws
        stale.unlink()
    metrics = [m for m in study.study.report.metrics if m in study.runs]
    group_by = study.study.report.group_by
    summary = tables.arm_summary(study.runs, metrics, by=group_by)
    summary.to_csv(folder / "summary.csv", index=False)
    study.runs.drop(columns=[c for c in study.runs if c.startswith("version_")]).to_csv(
        folder / "runs.csv", index=False)
    claims = tables.claims_table(study.claims)
    claims.to_csv(folder / "claims.csv", index=False)
    pivot_view, exported = _pivot(study, folder)

    palette = figures.Palette(study)
    shown, headline = [], None
    for i, spec in enumerate(study.study.report.figures or default_figures(study), start=1):
        drawn = figure_kinds.FIGURES[spec.kind](study, spec, palette)
        if drawn is None:
            continue
        svg = figures.svg(drawn.figure)
        export = f"{study.name}/figure-{i}-{spec.kind}.svg"
        (out / export).write_bytes(svg)
        interactive = (charts.CHARTS[spec.kind](study, spec, palette)
                       if spec.kind in charts.CHARTS else None)
        shown.append(views.Figure(
            views.Image(pages.data_uri(svg), drawn.alt), drawn.title, export,
            views.Chart(f"chart-{i}", interactive.payload()) if interactive else None))
        if headline is None:
            headline = views.Image(pages.data_uri(svg), drawn.alt, "headline")

    s = study.study
    counts = study.runs["status"].value_counts()
    page = views.StudyPage(
        name=s.name, question=s.question, background=s.background, about=s.about,
        setup=_setup(study), definition=pages.definition_text(s.definition),
        book=book.section(s, study.claims), claims_method=methods.CLAIMS,
        power=methods.power_text(study.claims),
        claims=tables.claims_view(claims) if len(claims) else None,
        counts=_counts_text(counts), intervals=methods.INTERVALS,
        summary=tables.summary_table(
            summary, metrics, by=group_by,
            caption=f"{s.name}: final metrics per {tables.grouping_text(group_by)}"),
        pivot=pivot_view,
        exports=[views.Link(f"{kind}.csv", f"{s.name}/{kind}.csv")
                 for kind in (*exported, "summary", "runs", "claims")],
        figures=shown, script=script.uri() if any(f.chart for f in shown) else "")
    path = out / f"{s.name}.html"
    path.write_text(pages.study_page(page), encoding="utf-8")
    card = views.Card(s.name, s.question, headline,
                      [views.Verdict(c["verdict"], c["claim"]) for _, c in claims.iterrows()],
                      _counts_text(counts), f"{study.runs['wall_time'].sum() / 60:.1f}", s.quick)
    return path, card


def _pivot(study: report_data.StudyResults, folder: Path) -> tuple[views.Table | None,
                                                                     list[str]]:
    """The page's pivot table and its export `pivot.csv` (the cells' values, rows ×
    columns), or none (a stale export removed)."""
    spec = pivot.spec_of(study)
    export = folder / "pivot.csv"
    if spec is None:
        export.unlink(missing_ok=True)
        return None, []
    found = pivot.cells(study, spec)
    pivot.wide(found, spec).to_csv(export, index=False)
    return pivot.table(study, spec, found), ["pivot"]


def _setup(study: report_data.StudyResults) -> str:
    s = study.study
    base = s.base
    training = base.get("training", {})
    rows = [("task", base.get("task", "train")), ("data", _compact(base.get("data", {}))),
            ("model", _compact(base.get("model", {}))), ("training", _compact(training)),
            ("seeds", f"{len(s.seeds)} ({', '.join(map(str, s.seeds[:10]))}"
                      f"{', …' if len(s.seeds) > 10 else ''})"),
            ("varied", ", ".join(study.axes) or "nothing"),
            ("arms", str(len(study.names))), ("runs", str(len(study.runs)))]
    return views.Table("setup", [views.Row([views.Cell(k, header=True), views.Cell(v)])
                                 for k, v in rows])


def _compact(section: dict) -> str:
    return ", ".join(f"{k} = {v}" for k, v in section.items())


def _counts_text(counts: pd.Series) -> str:
    total = int(counts.sum())
    return (f"{total} runs: {int(counts.get('finished', 0))} finished, "
            f"{int(counts.get('diverged', 0))} diverged, {int(counts.get('failed', 0))} failed")


def _index(studies: list[report_data.StudyResults], cards: list[views.Card], db) -> str:
    runs = pd.concat([s.runs for s in studies]) if studies else pd.DataFrame()
    versions = {}
    for column in ("version_study", "version_keras", "version_backend",
                   "version_backend_version", "version_python", "version_numpy", "version_cpu"):
        values = sorted(set(runs[column].dropna().astype(str))) if column in runs else []
        versions[column.removeprefix("version_")] = ", ".join(values) or "not recorded"
    dates = runs["finished_at"] if len(runs) else pd.Series(dtype=str)
    period = (f"{dates.min()[:10]} to {dates.max()[:10]}" if len(dates) else "no runs")
    return pages.index_page(views.IndexPage(
        period=period, runs=len(runs),
        minutes=f"{runs['wall_time'].sum() / 60 if len(runs) else 0:.0f}",
        versions="; ".join(f"{k} {v}" for k, v in versions.items()),
        python=platform.python_version(), db=Path(db).name, cards=cards))
