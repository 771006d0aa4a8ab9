"""The Python API: run a study from a script or a notebook and look at its results.

    import study
    result = study.run("experiments/xor.toml", quick=True)          # a study file ...
    result = study.run({"name": "mine", "seeds": 3, "data": {...},  # ... or a dict
                        "model": {...}, "training": {...}, "grid": {...}})
    result.runs.groupby("optimizer")["val_accuracy"].median()       # pandas DataFrames
    result.figure("curves", metric="loss")                          # a matplotlib Figure
    study.report("results/study.db", "reports")                     # the HTML pages

`run` is `study run` (study/engine/execution/session.py is the one path both take): the same
validation and messages, the same resumable store (a second call trains only what is not
stored yet), the same executors. Its problems raise `study.StudyError` with the command's
message; progress is a tqdm bar (`tqdm.auto`: a widget in Jupyter when ipywidgets is
installed, a text bar otherwise). Importing this module imports neither Keras nor the engine.
"""

from __future__ import annotations

import functools
import warnings
from pathlib import Path
from typing import Any, Mapping

from study.errors import StudyError

DEFAULT_DB = "results/study.db"
FIGURE_AXES = ("x", "y", "hue", "col", "row")  # options naming a column of the study's runs
DRAWN_FROM = {  # what a run must store for the figures drawn from artifacts
    "histograms": ' (runs of task = "activation_histograms" store them)',
    "boundaries": ' (runs on dataset = "xor_cloud" store them)',
    "paths": ' (runs of task = "optimizer_path" store them)',
    "gradients": " (runs with training.record_gradients = true store them)",
    "boundary_steps": " (runs with training.record_boundaries = true store them)",
    "heatmap": " (it needs x and y)",
    "search": " (it needs x and y: numeric settings the study varies)"}


def run(study: str | Path | Mapping[str, Any], *, db: str | Path = DEFAULT_DB,
        jobs: int | None = None, quick: bool = False, rerun: bool = False,
        executor: str = "local", address: str | None = None,
        resources: str | Mapping[str, float] | None = None,
        data_dir: str | Path | None = None, progress: bool = True) -> "Results":
    """Train every run of `study` not yet stored in `db`, evaluate its claims, return its
    results.

    `study` is a study file's path or the same tables as a dict (relative names, such as an
    own component's module, resolve against the current directory). The options are `study
    run`'s: `jobs` worker processes (default 1: in this process), `quick` the study's [quick]
    form, `rerun` to train stored runs again, `executor="ray"` with `address` and `resources`
    (a dict or JSON text), `data_dir` the folder of mnist.npz. `progress=False` hides the bar.

    Raises StudyError for a bad study or option, missing data or an unusable database (nothing
    trained), KeyboardInterrupt if interrupted (every finished run is stored: run again to
    resume). Runs that fail are stored as `failed` (status column) and retried next time."""
    from study.engine.execution.session import run_studies

    if not isinstance(study, (str, Path, Mapping)):
        raise StudyError(f"a study is a file's path or a dict of its tables; got "
                         f"{type(study).__name__}")
    outcome = run_studies([study], db=db, jobs=jobs, quick=quick, rerun=rerun,
                          executor=executor, address=address, resources=resources,
                          data_dir=data_dir, bar=_notebook_bar() if progress else None,
                          show_progress=progress)
    if outcome.summary.interrupted:
        raise KeyboardInterrupt("study.run interrupted: every finished run is stored; "
                                "run it again to resume")
    (planned,) = outcome.plan.studies
    return Results(db, planned.name, counts=dict(outcome.summary.counts),
                   skipped=outcome.summary.skipped)


def _notebook_bar():
    """tqdm.auto's bar: a Jupyter widget with ipywidgets, else the terminal's text bar (without
    tqdm's warning that ipywidgets is missing: the text bar is a fine progress display)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from tqdm.auto import tqdm
    return tqdm


class Results:
    """A study's stored results in `db`: the runs of the study as it last ran (the keys `study
    run` stored with it), with the columns of `study.results`.

    `counts` and `skipped` say what the `study.run` that returned it did: runs trained by
    status, and runs already stored."""

    def __init__(self, db: str | Path, study: str, *, counts: Mapping[str, int] | None = None,
                 skipped: int = 0):
        self.db, self.study = Path(db), study
        self.counts, self.skipped = dict(counts or {}), skipped

    def __repr__(self) -> str:
        return (f"<study.Results {self.study!r} in {self.db}: {len(self.runs)} runs, "
                f"{len(self.claims)} claims>")

    @functools.cached_property
    def keys(self) -> list[str]:
        from study import results

        studies = results.studies(self.db)
        rows = studies[studies["name"] == self.study]
        if rows.empty:
            raise StudyError(f"{self.db}: holds no study named {self.study!r}")
        return list(rows["run_keys"].iloc[0])

    @functools.cached_property
    def names(self) -> dict[str, str]:
        """run key -> its arm's name as the report shows it ("Adam lr=0.3")."""
        from study.report import data as report_data

        return report_data.names(self.db, self.study)

    @functools.cached_property
    def runs(self):
        """One row per run: axes, status, metrics (`study.results.runs`), and beside the
        stored `arm` label the arm's `name` as the report's tables and legends show it."""
        from study import results

        frame = results.runs(self.db, study=self.study)
        frame = frame[frame["key"].isin(self.keys)].reset_index(drop=True)
        return _with_names(frame, "key", self.names)

    @functools.cached_property
    def history(self):
        """One row per run and logged step (`study.results.history`), with `name` too."""
        from study import results

        frame = results.history(self.db, study=self.study)
        frame = frame[frame["run_key"].isin(self.keys)].reset_index(drop=True)
        return _with_names(frame, "run_key", self.names)

    @functools.cached_property
    def claims(self):
        """The claims' verdicts, one row per claim (`study.results.claims`)."""
        from study import results

        return results.claims(self.db, study=self.study)

    def figure(self, kind: str, **options):
        """A report figure of this study as a matplotlib Figure (shown inline in Jupyter as
        the cell's value; `.savefig(...)` to keep it). `kind` and `options` are those of a
        `[[report.figures]]` entry: metric, x, y, hue, col, row, threshold, title,
        validation. StudyError for an unknown kind, option or column, or nothing to draw."""
        import matplotlib.pyplot as plt

        from study.report import data as report_data
        from study.report import figure_kinds, figures

        spec = _figure_spec(kind, options)
        (loaded,) = report_data.load(self.db, only=self.study)
        _check_columns(spec, loaded)
        drawn = figure_kinds.FIGURES[spec.kind](loaded, spec, figures.Palette(loaded))
        if drawn is None:
            raise StudyError(f"figure {kind!r}: study {self.study!r} stored nothing it draws"
                             f"{DRAWN_FROM.get(spec.kind, '')}")
        plt.close(drawn.figure)  # shown once, as the cell's value, not again by pyplot
        return drawn.figure


def _with_names(frame, key: str, names: Mapping[str, str]):
    """`frame` with the column `name` right after `arm` (the stored label)."""
    frame = frame.copy()
    frame.insert(list(frame.columns).index("arm") + 1, "name", frame[key].map(names))
    return frame


def _figure_spec(kind: str, options: Mapping[str, Any]):
    from pydantic import ValidationError

    from study.engine.studies.errors import messages
    from study.engine.studies.study_schema import Figure

    try:
        return Figure.model_validate({"kind": kind, **options})
    except ValidationError as error:
        raise StudyError("; ".join(f"figure: {m}" for m in messages(error, Figure))) from None


def _check_columns(spec, loaded) -> None:
    """Axis options must name a varied setting (or "name"); the metric a stored column."""
    axes = ["name", *loaded.axes]
    # A curve's history holds a setting only under a name the history does not log itself
    # (an axis `learning_rate` meets the logged learning rate, and is not drawn by).
    drawable = [a for a in axes if a in loaded.history] if spec.kind == "curves" else axes
    for option in FIGURE_AXES:
        value = getattr(spec, option)
        if value is not None and value not in drawable:
            raise StudyError(f"figure {spec.kind!r}: {option}={value!r} is not a setting the "
                             f"study varies that this figure can split by; allowed: "
                             f"{', '.join(drawable)}")
    if spec.kind in ("histograms", "boundaries", "paths", "gradients"):
        return  # drawn from stored artifacts, not from a metric
    if spec.kind == "curves":
        frame, skip = loaded.history, {"run_key", "key", "study", "arm", "seed", "status",
                                       "epoch", "step", "time", *axes}
    else:
        frame, skip = loaded.runs, {"key", "study", "arm", "seed", "status", "started_at",
                                    "finished_at", "wall_time", "error", *axes}
    metrics = [c for c in frame if c not in skip and not c.startswith("version_")
               and frame[c].notna().any()]
    if spec.metric not in metrics:
        where = "logged during training" if spec.kind == "curves" else "a final metric"
        raise StudyError(f"figure {spec.kind!r}: metric={spec.metric!r} is not {where} of "
                         f"study {loaded.name!r}; allowed: {', '.join(metrics)}")
