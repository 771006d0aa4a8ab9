"""Study files: their schema, validation with clear errors, grid expansion and run keys.

A study file (TOML, one per study in `experiments/`) holds a base run configuration in three
sections, `[data]`, `[model]` and `[training]`, and the axes that vary it:

- `[grid]`: every combination of the listed values (`optimizer = ["sgd", "adam"]`);
- `[zip]`: lists of equal length varied together, not crossed (arm i takes value i of each);
- `[random]`: `samples` draws of values uniform or log-uniform in a range, seeded;
- `seeds`: how many seeds (or which) every combination runs with;
- `[quick]`: overrides that `--quick` applies to shrink the study to a smoke run.

Axis keys are paths into the run configuration (`training.optimizer`, `model.hidden`) or, when
unambiguous, a field's bare name (`optimizer`). Every value is validated before anything trains,
and every problem is reported as `file: key.path: what is wrong; what is allowed`.
"""

from __future__ import annotations

import copy
import difflib
import functools
import hashlib
import inspect
import itertools
import json
import math
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import (BaseModel, ConfigDict, Field, NonNegativeFloat, NonNegativeInt, PositiveFloat,
                      PositiveInt, ValidationError, field_validator, model_validator)

from study import registry

# Part of every run key: bump it when a change to the engine changes what a run computes, so
# that stored results of the old engine are not mistaken for the new one's.
ENGINE_VERSION = 2  # 2: full-batch steps in data order; train_* metrics on <= 10,000 samples
SECTIONS = ("data", "model", "training")


class ConfigError(Exception):
    """Bad input in a study file; `problems` are lines of `key.path: what is wrong`."""

    def __init__(self, source: str | Path | None, problems: list[str]):
        # source None: the problems already name their files (errors of several files).
        self.source, self.problems = source, problems
        super().__init__("\n".join(p if source is None else f"{source}: {p}" for p in problems))


class _Strict(BaseModel):
    # Unknown keys are errors: a misspelt key must never be silently ignored.
    model_config = ConfigDict(extra="forbid", frozen=True)


def _component_validator(kind: str, *, optional: bool = False):
    def check(value):
        if value is None and optional:
            return value
        if not isinstance(value, str):
            raise ValueError(f"must be the name of a {kind} (a string)")
        if value.startswith(registry.KERAS_PREFIX):
            registry.create(kind, value)  # raises UnknownComponentError with a did-you-mean
        else:
            registry.lookup(kind, value)
        return value
    return check


def _none_is_null(value):
    return None if value == "none" else value


class Data(_Strict):
    dataset: Literal["xor", "xor_cloud", "mnist", "gaussian", "bowl", "anisotropic_bowl"]
    # A subset of the training split: the first n_train (as the book does), or, with
    # subset = "random", a sample drawn by the run's seed (the same in every arm of a seed).
    n_train: PositiveInt | None = None
    subset: Literal["first", "random"] = "first"
    cloud_points: PositiveInt = 400
    cloud_noise: NonNegativeFloat = 0.15
    # "gaussian": n_points inputs of dim standard-normal features (DLFS's histogram input).
    n_points: PositiveInt = 1000
    dim: PositiveInt = 100
    # "bowl" f = x^2 + y^2 and "anisotropic_bowl" f = x^2/20 + y^2 (DLFS 6.1): the start of the
    # path, moved by N(0, start_jitter^2) per coordinate by the run's seed (0: the same start).
    start: list[float] = Field(default_factory=lambda: [-7.0, 2.0], min_length=2, max_length=2)
    start_jitter: NonNegativeFloat = 0.0
    # What an MNIST network predicts, in every split: "digit" (ten classes); "parity", the
    # digit % 2 (two classes, so binary_cross_entropy applies); "value", the digit as a number
    # 0..9 (regression: one linear output, loss "mse", accuracy = the prediction rounds to it).
    target: Literal["digit", "parity", "value"] = "digit"

    @model_validator(mode="after")
    def _subset_fits(self):
        if self.dataset == "mnist" and self.n_train is not None and self.n_train > 50_000:
            raise ValueError("n_train must be at most 50000 (the size of MNIST's train split)")
        if self.dataset == "xor" and self.n_train is not None:
            raise ValueError("n_train does not apply to 'xor' (four points)")
        if self.target != "digit" and self.dataset != "mnist":
            raise ValueError(f"target = {self.target!r} applies only to 'mnist' (its labels are "
                             f"digits); {self.dataset!r} takes the default 'digit'")
        return self


class Model(_Strict):
    hidden: list[PositiveInt] = [100, 100, 100, 100]
    activation: str = "relu"
    initializer: str = "he_normal"
    initializer_args: dict[str, Any] = {}
    bias_initializer: str = "zeros"
    regularizer: str | None = None
    regularizer_args: dict[str, Any] = {}
    constraint: str | None = None
    constraint_args: dict[str, Any] = {}
    dropout: float = Field(0.0, ge=0.0, lt=1.0)
    # true: study.layers.BatchNormalization; "keras": Keras's built-in, as a control
    batch_norm: bool | Literal["keras"] = False
    use_bias: bool = True
    # Hidden layers after the first become ResidualBlocks (y = x + F(x)) of the first's width.
    residual: bool = False

    _activation = field_validator("activation")(_component_validator("activation"))
    _initializers = field_validator("initializer", "bias_initializer")(
        _component_validator("initializer"))
    # TOML has no null: "none" switches an optional component off (an axis value of the
    # baseline arm in studies that compare regularizers).
    _no_component = field_validator("regularizer", "constraint", mode="before")(_none_is_null)
    _regularizer = field_validator("regularizer")(_component_validator("regularizer",
                                                                       optional=True))
    _constraint = field_validator("constraint")(_component_validator("constraint", optional=True))

    @model_validator(mode="after")
    def _arguments_accepted(self):
        _try_create("initializer", self.initializer, self.initializer_args, "initializer_args")
        if self.regularizer is not None:
            _try_create("regularizer", self.regularizer, self.regularizer_args,
                        "regularizer_args")
        elif self.regularizer_args:
            raise ValueError("regularizer_args given but regularizer is not set")
        if self.constraint is not None:
            _try_create("constraint", self.constraint, self.constraint_args, "constraint_args")
        elif self.constraint_args:
            raise ValueError("constraint_args given but constraint is not set")
        if self.residual and len(set(self.hidden)) > 1:
            raise ValueError(f"residual = true needs hidden layers of one width (the shortcut "
                             f"is the identity); got hidden = {self.hidden}")
        return self


class EarlyStopping(_Strict):
    monitor: Literal["val_loss", "val_accuracy"] = "val_loss"
    patience: PositiveInt = 10
    restore_best_weights: bool = True


class Schedule(_Strict):
    """Learning-rate schedule: lr(step) for the Keras schedule of the same name."""

    kind: Literal["constant", "exponential", "step", "inverse_time", "cosine"] = "constant"
    decay_steps: PositiveInt = 1000
    decay_rate: float = Field(0.5, gt=0.0)


class Training(_Strict):
    optimizer: str = "sgd"
    learning_rate: PositiveFloat = 0.01
    optimizer_args: dict[str, Any] = {}
    loss: Literal["cross_entropy", "binary_cross_entropy", "mse"] = "cross_entropy"
    batch_size: PositiveInt = 100
    # Exactly one of epochs (passes over the training split) or steps (optimizer updates).
    epochs: PositiveInt | None = None
    steps: PositiveInt | None = None
    # Steps between two history rows when training by steps (default: one pass of the data).
    log_every: PositiveInt | None = None
    early_stopping: EarlyStopping | None = None
    schedule: Schedule = Field(default_factory=Schedule)
    evaluate_test: bool = True
    # Data augmentation (MNIST): every training sample of every step moves by (dy, dx) drawn
    # uniformly from the integers in [-k, k], zero-filled; 0 leaves the images alone.
    augment_shift: NonNegativeInt = 0
    # Members trained one after another (seeds in `train.member_seed`); the final metrics are
    # those of their averaged prediction.
    ensemble: PositiveInt = 1
    # Before training: per-layer norms of the loss's gradient on the first batch.
    record_gradients: bool = False
    # History rows (and early stopping) judge the first N validation samples (None: all of
    # them); the final val_* metrics always use the whole validation split.
    history_validation_size: PositiveInt | None = None

    _no_early_stopping = field_validator("early_stopping", mode="before")(_none_is_null)
    _optimizer = field_validator("optimizer")(_component_validator("optimizer"))

    @model_validator(mode="after")
    def _one_length(self):
        if (self.epochs is None) == (self.steps is None):
            raise ValueError("set exactly one of epochs or steps")
        if self.log_every is not None and self.steps is None:
            raise ValueError("log_every applies only when training by steps")
        if self.log_every is not None and self.steps % self.log_every:
            raise ValueError(f"steps ({self.steps}) must be a multiple of log_every "
                             f"({self.log_every})")
        args = {"learning_rate": self.learning_rate, **self.optimizer_args}
        _try_create("optimizer", self.optimizer, args, "optimizer_args")
        return self


class RunConfig(_Strict):
    """Everything one run depends on (with the seed): hashed into its key.

    task "train" (the default) trains the model; "activation_histograms" only runs the
    initialised network forward on the data and records every hidden layer's activations
    (DLFS 6.2.2), so it needs no [training] section.
    """

    task: Literal["train", "activation_histograms", "optimizer_path"] = "train"
    data: Data
    model: Model = Field(default_factory=Model)
    training: Training | None = None

    @model_validator(mode="after")
    def _fits_task(self):
        if self.task in ("train", "optimizer_path") and self.training is None:
            raise ValueError(f"training: required key is missing (task {self.task!r} trains)")
        functions = ("bowl", "anisotropic_bowl")
        if (self.task == "optimizer_path") != (self.data.dataset in functions):
            raise ValueError("task 'optimizer_path' goes with the data 'bowl' or "
                             "'anisotropic_bowl', and those data with that task only")
        if self.task == "train" and self.data.dataset == "gaussian":
            raise ValueError("the 'gaussian' data has no labels: use it with task = "
                             "'activation_histograms'")
        d, t = self.data, self.training
        if (t is not None and t.loss == "binary_cross_entropy" and d.dataset == "mnist"
                and d.target != "parity"):
            raise ValueError(f"binary_cross_entropy needs two classes; mnist has ten (with "
                             f"target = {d.target!r}): set data.target = \"parity\" for two")
        if t is not None and d.target == "value" and t.loss != "mse":
            raise ValueError(f"target = 'value' is a regression: it needs training.loss = "
                             f"'mse'; got {t.loss!r}")
        if t is not None and t.augment_shift:
            if d.dataset != "mnist":
                raise ValueError(f"augment_shift shifts images: it applies only to 'mnist', "
                                 f"not {d.dataset!r}")
            if t.augment_shift >= 28:
                raise ValueError(f"augment_shift ({t.augment_shift}) must be below 28, the side "
                                 f"of an MNIST image")
        if t is not None and self.task != "train":
            for name, value in (("ensemble", t.ensemble > 1),
                                ("record_gradients", t.record_gradients)):
                if value:
                    raise ValueError(f"training.{name} applies only to task 'train', not "
                                     f"{self.task!r}")
        return self


# Settings added after the first stored results: left out of a resolved config while at their
# default, so that adding them did not change the key of any run that predates them.
_ADDED_LATER = {("task",): "train", ("model", "use_bias"): True, ("data", "n_points"): 1000,
                ("data", "dim"): 100, ("data", "start"): [-7.0, 2.0], ("data", "start_jitter"): 0.0,
                ("data", "target"): "digit", ("training", "augment_shift"): 0,
                ("training", "ensemble"): 1, ("training", "record_gradients"): False,
                ("training", "history_validation_size"): None}


def _without_later_defaults(config: dict[str, Any]) -> dict[str, Any]:
    for path, default in _ADDED_LATER.items():
        *parents, last = path
        node = config
        for part in parents:
            node = node.get(part) or {}
        if node.get(last, object()) == default:
            del node[last]
    if config.get("training", ...) is None:
        del config["training"]
    return config


class RandomAxis(_Strict):
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


class RandomSearch(_Strict):
    samples: PositiveInt
    seed: int = 0
    axes: dict[str, RandomAxis]


class Search(_Strict):
    """Random search in rounds (DLFS 6.5.3), see study.search: `[random]` is round 1."""

    metric: str = "val_accuracy"
    higher_is_better: bool = True
    rounds: PositiveInt = 2
    keep: float = Field(0.2, gt=0.0, le=1.0)  # the best share of a round sets the next ranges
    final_seeds: PositiveInt = 5  # the chosen setting, trained again with the test set on
    # A grid of the same budget over round 1's ranges, for comparison (samples = k ** axes).
    compare_grid: bool = False
    # Settings of a control twin of the final stage, e.g. { optimizer = "keras.sgd" }: the
    # chosen point trained again with Keras's built-ins (marked round = "control").
    control: dict[str, Any] = {}


class Claim(_Strict):
    """A sentence of the notes, the metric that tests it, the arms, and the test.

    kinds: `better` (arm beats baseline seed by seed: paired one-sided Wilcoxon, Holm-corrected
    across the study's claims, Vargha-Delaney A12); `rate` (the share of seeds whose metric
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


# The figures a study page can draw (study.report.figures.FIGURES has one function each).
FIGURE_KINDS = ("curves", "final", "heatmap", "histograms", "boundaries", "paths", "gradients",
                "search")


class Figure(_Strict):
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


class ReportSpec(_Strict):
    """`[report]`: the columns of the results table and the figures of the study's page."""

    metrics: list[str] = ["val_accuracy", "val_loss"]
    group_by: str = "name"  # the table's rows: one per arm, or per value of a setting ("round")
    figures: list[Figure] = []
    # Display names of arms: the automatic name (its varied values) -> a short one.
    names: dict[str, str] = {}


class StudyFile(_Strict):
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

    @model_validator(mode="after")
    def _search_needs_random(self):
        if self.search is not None and (self.random is None or self.grid or self.zip):
            raise ValueError("search: a search samples its [random] axes; give [random] and "
                             "no [grid] or [zip]")
        if self.search is not None and self.search.compare_grid and self.random is not None:
            side = round(self.random.samples ** (1 / len(self.random.axes)))
            if side ** len(self.random.axes) != self.random.samples:
                raise ValueError(f"search.compare_grid: random.samples ({self.random.samples}) "
                                 f"must be a whole power of the number of axes "
                                 f"({len(self.random.axes)}) for a grid of the same budget")
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


@dataclass(frozen=True)
class RunSpec:
    """One run of a study: a resolved configuration and a seed, keyed by their hash."""

    study: str
    key: str
    seed: int
    arm: str  # the varied values, e.g. "optimizer=adam, learning_rate=0.001"
    overrides: dict[str, Any]
    config: dict[str, Any]

    @property
    def run_config(self) -> RunConfig:
        return RunConfig.model_validate(self.config)


@dataclass
class Study:
    name: str
    question: str
    about: str
    source: str
    runs: list[RunSpec] = field(default_factory=list)
    claims: list[Claim] = field(default_factory=list)
    # A search's later stages are made from stored results (study.search), with these:
    search: Search | None = None
    random: RandomSearch | None = None
    base: dict[str, Any] = field(default_factory=dict)
    seeds: list[int] = field(default_factory=list)
    background: str = ""
    report: ReportSpec = field(default_factory=ReportSpec)
    definition: dict[str, Any] = field(default_factory=dict)  # the file as read (for the store)
    quick: bool = False

    def make_runs(self, overrides: dict[str, Any], seeds: list[int],
                  marks: dict[str, Any] | None = None) -> list[RunSpec]:
        """The runs of one combination (axis path -> value); `marks` label them without
        changing their configuration (a search's round)."""
        problems: list[str] = []
        resolved = _validated_config(_with_overrides(self.base, overrides), "", problems)
        if resolved is None:
            raise ConfigError(self.source, problems)
        shown = {**(marks or {}), **overrides}
        return [RunSpec(self.name, run_key(self.name, resolved, seed), seed, _label(shown),
                        shown, resolved) for seed in seeds]


# --- loading and expansion --------------------------------------------------------------------

def load_study(path: str | Path, *, quick: bool = False) -> Study:
    """Read, validate and expand a study file; raise ConfigError listing every problem."""
    path = Path(path)
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(path, ["no such file"]) from None
    except (OSError, UnicodeDecodeError) as error:
        raise ConfigError(path, [f"cannot read the file: {error}"]) from None
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(path, [f"not valid TOML: {error}"]) from None
    return expand(raw, source=path, quick=quick)


def expand(raw: dict[str, Any], *, source: str | Path = "<study>", quick: bool = False) -> Study:
    try:
        spec = StudyFile.model_validate(raw)
    except ValidationError as error:
        raise ConfigError(source, _messages(error, StudyFile)) from None
    base = {"task": spec.task, "data": spec.data, "model": spec.model}
    if spec.training is not None:
        base["training"] = spec.training
    grid, zipped = dict(spec.grid), dict(spec.zip)
    seeds, random_search, late = spec.seeds, spec.random, {}
    # [quick] is checked on every load, so a broken smoke configuration is found before it is used.
    shrunk = _apply_quick(spec, dict(grid), dict(zipped), source)
    if quick:
        seeds, grid, zipped, random_search, late = shrunk

    problems: list[str] = []
    axes = _check_axes(base, grid, zipped, random_search, problems)
    if problems:
        # Report the base configuration's own problems too, outside the axes' paths.
        axis_paths = [_safe_resolve(k) for k in [*grid, *zipped]]
        first_values = {p: v[0] for p, v in zip(axis_paths, [*grid.values(), *zipped.values()])
                        if p}
        base_problems: list[str] = []
        _validated_config(_with_overrides(base, first_values), "", base_problems)
        problems += [m for m in base_problems
                     if not any(m.startswith(p + ":") or m.startswith(p + ".") for p in first_values)]
        raise ConfigError(source, problems)

    seed_list = list(range(seeds)) if isinstance(seeds, int) else list(seeds)
    study = Study(spec.name, spec.question, spec.about, str(source), claims=list(spec.claims),
                  search=(spec.search.model_copy(update={"final_seeds": spec.quick[
                      "search.final_seeds"]}) if quick and "search.final_seeds" in spec.quick
                          else spec.search), random=random_search,
                  base=_with_overrides(base, late) if late else base, seeds=seed_list,
                  background=spec.background, report=spec.report, definition=raw, quick=quick)
    if spec.search is not None:
        from study import search

        study.runs = search.first_stage(study)
        problems = _check_claims(study)
        if problems:
            raise ConfigError(source, problems)
        return study
    failures: dict[str, list[str]] = {}  # message -> the combinations it occurs in
    combinations = list(_combinations(axes, zipped, random_search))
    for overrides in combinations:
        label = _label(overrides) or "base"
        combination_problems: list[str] = []
        resolved = _validated_config(_with_overrides(base, {**overrides, **late}), "",
                                     combination_problems)
        for message in combination_problems:
            failures.setdefault(message, []).append(label)
        if resolved is None:
            continue
        for seed in seed_list:
            study.runs.append(RunSpec(spec.name, run_key(spec.name, resolved, seed), seed,
                                      label, overrides, resolved))
    for message, labels in failures.items():
        # A problem of every combination is the base configuration's; name the others.
        problems.append(message if len(labels) == len(combinations)
                        else f"combination {labels[0]}: {message}")
    if quick:
        # Claims are checked against the full study; the quick form keeps those whose arms it
        # still runs (a smoke run need not run every arm).
        expand(raw, source=source)
        study.claims = [c for c in study.claims if not _check_claims(
            Study(study.name, "", "", "", study.runs, [c]))]
    else:
        problems += _check_claims(study)
        problems += _check_names(study)
    if problems:
        raise ConfigError(source, problems)
    return study


def _check_names(study: Study) -> list[str]:
    """Every `[report.names]` key must be the automatic name of one of the study's arms."""
    arms = list(dict.fromkeys(arm_name(spec.overrides) for spec in study.runs))
    return [f"report.names: {key!r} is not the name of an arm; the arms are: {'; '.join(arms)}"
            for key in study.report.names if key not in arms]


def _check_claims(study: Study) -> list[str]:
    """Every claim's arms must each select exactly one combination of the study's axes."""
    problems, ids = [], set()
    arms = {spec.arm: spec.overrides for spec in study.runs}
    for i, claim in enumerate(study.claims):
        if claim.id in ids:
            problems.append(f"claims[{i}].id: {claim.id!r} is used twice")
        ids.add(claim.id)
        for side in ("arm", "baseline"):
            selector = getattr(claim, side)
            if selector is None:
                continue
            if study.search is not None:
                if selector != {"round": "final"}:
                    problems.append(f"claims[{i}].{side}: in a search, claims select the "
                                    f"chosen setting: {{ round = \"final\" }}")
                continue  # the final stage exists once the rounds have run
            matches = [label for label, overrides in arms.items()
                       if selects(selector, overrides)]
            if len(matches) != 1:
                found = "no arm" if not matches else f"{len(matches)} arms ({'; '.join(matches)})"
                problems.append(f"claims[{i}].{side}: {selector!r} selects {found}; it must "
                                f"select exactly one of: {'; '.join(arms)}")
    return problems


def selects(selector: dict[str, Any], overrides: dict[str, Any]) -> bool:
    """Does an arm (its axis values) match a claim's selector (axis name -> value)?"""
    by_name = {path.split(".")[-1]: value for path, value in overrides.items()}
    return all(key in by_name and by_name[key] == value for key, value in selector.items())


def run_key(study: str, config: dict[str, Any], seed: int) -> str:
    payload = json.dumps({"engine": ENGINE_VERSION, "study": study, "seed": seed,
                          "config": config}, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


# --- axes -------------------------------------------------------------------------------------

@functools.cache
def _field_paths() -> dict[str, list[str]]:
    """Every settable path `section.field`, and for each bare field name the paths it may mean."""
    by_name: dict[str, list[str]] = {}
    for section, model in (("data", Data), ("model", Model), ("training", Training)):
        for name in model.model_fields:
            by_name.setdefault(name, []).append(f"{section}.{name}")
    return by_name


def resolve_key(key: str) -> str:
    """`optimizer` -> `training.optimizer`; a dotted path is checked to start at a real field."""
    by_name = _field_paths()
    all_paths = sorted(p for paths in by_name.values() for p in paths)
    if "." in key:
        section, name = key.split(".", 2)[:2]
        if section in SECTIONS and f"{section}.{name}" in all_paths:
            return key
    elif key in by_name and len(by_name[key]) == 1:
        return by_name[key][0]
    elif key in by_name:
        raise ValueError(f"{key!r} is ambiguous: write one of {', '.join(by_name[key])}")
    close = difflib.get_close_matches(key, all_paths + sorted(by_name), n=1, cutoff=0.6)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    raise ValueError(f"{key!r} is not a setting of a run{hint}")


def _safe_resolve(key: str) -> str | None:
    try:
        return resolve_key(key)
    except ValueError:
        return None


def _check_axes(base, grid, zipped, random_search, problems):
    """Resolve every axis key and validate every axis value on its own, with its location."""
    resolved: dict[str, list[Any]] = {}
    for section, axes in (("grid", grid), ("zip", zipped)):
        for key, values in axes.items():
            try:
                path = resolve_key(key)
            except ValueError as error:
                problems.append(f"{section}.{key}: {error}")
                continue
            for i, value in enumerate(values):
                _validated_config(_with_overrides(base, {path: value}), f"{section}.{key}[{i}]",
                                  problems, focus=path)
            if section == "grid":
                resolved[path] = values
    lengths = {key: len(values) for key, values in zipped.items()}
    if len(set(lengths.values())) > 1:
        problems.append("zip: the lists must have one length; got "
                        + ", ".join(f"{k} = {n}" for k, n in lengths.items()))
    if random_search is not None:
        for key, axis in random_search.axes.items():
            try:
                path = resolve_key(key)
            except ValueError as error:
                problems.append(f"random.axes.{key}: {error}")
                continue
            for end, value in (("low", axis.low), ("high", axis.high)):
                value = int(round(value)) if axis.integer else value
                _validated_config(_with_overrides(base, {path: value}),
                                  f"random.axes.{key}.{end}", problems, focus=path)
    return resolved


def _combinations(grid: dict[str, list[Any]], zipped: dict[str, list[Any]],
                  random_search: RandomSearch | None):
    zip_paths = {resolve_key(k): v for k, v in zipped.items()}
    zip_rows = ([dict(zip(zip_paths, row)) for row in zip(*zip_paths.values())]
                if zip_paths else [{}])
    samples = _random_samples(random_search) if random_search else [{}]
    for values in itertools.product(*grid.values()):
        for row in zip_rows:
            for sample in samples:
                yield {**dict(zip(grid, values)), **row, **sample}


def _random_samples(search: RandomSearch) -> list[dict[str, Any]]:
    """`samples` points, each axis uniform (or log-uniform) in its range; fixed by `seed`."""
    rng = np.random.default_rng(search.seed)
    samples = []
    for _ in range(search.samples):
        point = {}
        for key, axis in search.axes.items():
            if axis.scale == "log":
                value = 10 ** rng.uniform(math.log10(axis.low), math.log10(axis.high))
            else:
                value = rng.uniform(axis.low, axis.high)
            point[resolve_key(key)] = axis_value(axis, value)
        samples.append(point)
    return samples


def axis_value(axis: RandomAxis, value: float) -> int | float:
    # 6 significant digits: readable labels, and keys that do not hinge on the last bit.
    return int(round(value)) if axis.integer else float(f"{value:.6g}")


def _apply_quick(spec: StudyFile, grid, zipped, source):
    """`[quick]` keys: `seeds`, `random.samples`, `search.final_seeds`, `grid.<axis>`,
    `zip.<axis>` replace those parts of the study; any other key is a run setting applied
    after the axes."""
    seeds, random_search, late, problems = spec.seeds, spec.random, {}, []
    for key, value in spec.quick.items():
        if key == "seeds":
            seeds = value
        elif key == "random.samples":
            if random_search is None:
                problems.append("quick.random.samples: the study has no [random] section")
            else:
                random_search = random_search.model_copy(update={"samples": value})
        elif key == "search.final_seeds":
            if spec.search is None:
                problems.append("quick.search.final_seeds: the study has no [search] section")
            elif not (isinstance(value, int) and not isinstance(value, bool) and value > 0):
                problems.append(f"quick.search.final_seeds: must be a positive integer; "
                                f"got {value!r}")
        elif key.startswith(("grid.", "zip.")):
            section, axis = key.split(".", 1)
            target = grid if section == "grid" else zipped
            if axis not in target:
                problems.append(f"quick.{key}: the study has no {section} axis {axis!r}; "
                                f"it has {', '.join(target) or 'none'}")
            elif not isinstance(value, list) or not value:
                problems.append(f"quick.{key}: must be a non-empty list")
            else:
                target[axis] = value
        else:
            try:
                late[resolve_key(key)] = value
            except ValueError as error:
                problems.append(f"quick.{key}: {error}")
    if not (isinstance(seeds, list) or (isinstance(seeds, int) and seeds > 0)):
        problems.append(f"quick.seeds: must be a positive integer or a list; got {seeds!r}")
    if problems:
        raise ConfigError(source, problems)
    return seeds, grid, zipped, random_search, late


# --- validation helpers -----------------------------------------------------------------------

def _with_overrides(base: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    config = copy.deepcopy(base)
    for path, value in overrides.items():
        node = config
        *parents, last = path.split(".")
        for part in parents:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                break
        else:
            node[last] = copy.deepcopy(value)
    return config


def _validated_config(config, where, problems, focus=None):
    """The resolved (defaults filled in) config as plain JSON data, or None with problems.

    With `focus` (the path an axis sets), only problems at or below that path are reported,
    at `where` (the axis value's location): other settings may be incomplete until every axis
    has been applied, which the check of each whole combination covers.
    """
    try:
        return _without_later_defaults(RunConfig.model_validate(config).model_dump(mode="json"))
    except ValidationError as error:
        for message in _messages(error, RunConfig):
            path, _, text = message.partition(": ")
            if focus is None:
                problems.append(f"{where}: {message}" if where else message)
            elif path == focus:
                problems.append(f"{where}: {text}")
            elif path.startswith(focus + ".") or path.startswith(focus + "["):
                problems.append(f"{where}: {path[len(focus):].lstrip('.')}: {text}")
        return None


def _messages(error: ValidationError, schema: type[BaseModel]) -> list[str]:
    out = []
    for item in error.errors():
        loc = _location(item["loc"])
        kind, text = item["type"], item["msg"]
        if text.startswith("Value error, "):
            text = text[len("Value error, "):]
        if kind == "extra_forbidden":
            out.append(f"{loc}: unknown key{_allowed_keys(schema, item['loc'])}")
        elif kind == "missing":
            out.append(f"{loc}: required key is missing")
        elif kind == "value_error":  # our own validators: the message names the value
            out.append(f"{loc}: {text}" if loc else text)
        else:
            out.append(f"{loc}: {item['input']!r} is not allowed: {text}")
    return out


def _location(loc: tuple) -> str:
    """('grid', 'optimizer', 2) -> 'grid.optimizer[2]'; drops pydantic's union-branch labels."""
    text = ""
    for part in loc:
        if isinstance(part, int):
            text += f"[{part}]"
        elif re.fullmatch(r"(function-.*|list\[.*\]|int|str|float|bool|dict\[.*\]|.*\]\.)",
                          str(part)):
            continue
        else:
            text += ("." if text else "") + str(part)
    return text


def _allowed_keys(schema: type[BaseModel], loc: tuple) -> str:
    model = schema
    for part in loc[:-1]:
        annotation = model.model_fields.get(part) if isinstance(part, str) else None
        inner = getattr(annotation, "annotation", None) if annotation else None
        candidates = [a for a in getattr(inner, "__args__", (inner,))
                      if isinstance(a, type) and issubclass(a, BaseModel)]
        if not candidates:
            return ""
        model = candidates[0]
    allowed = sorted(model.model_fields)
    close = difflib.get_close_matches(str(loc[-1]), allowed, n=1, cutoff=0.6)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    return f"{hint} (allowed: {', '.join(allowed)})"


def _try_create(kind: str, name: str, args: dict[str, Any], where: str) -> None:
    """Build the component once, so that a bad argument is reported before training."""
    entry = None if name.startswith(registry.KERAS_PREFIX) else registry.lookup(kind, name)
    if entry is not None:
        accepted = set(inspect.signature(entry.factory).parameters) - {"self", "kwargs"}
        if kind == "optimizer":
            accepted |= _BASE_OPTIMIZER_ARGS
        unknown = sorted(set(args) - accepted)
        if unknown:
            allowed = sorted(accepted)
            raise ValueError(f"{where}: {name} does not take {', '.join(map(repr, unknown))} "
                             f"(it takes: {', '.join(allowed)})")
    try:
        registry.create(kind, name, **args)
    except Exception as error:  # whatever the component raises, the user sees one clear line
        raise ValueError(f"{where}: {name}: {error}") from None


# Keras's base optimizer arguments, which every optimizer forwards to its base class.
_BASE_OPTIMIZER_ARGS = {"weight_decay", "clipnorm", "clipvalue", "global_clipnorm", "use_ema",
                        "ema_momentum", "ema_overwrite_frequency", "loss_scale_factor",
                        "gradient_accumulation_steps", "name"}


def _label(overrides: dict[str, Any]) -> str:
    return ", ".join(f"{path.split('.')[-1]}={_short(value)}" for path, value in overrides.items())


def arm_name(overrides: dict[str, Any]) -> str:
    """An arm's name for people (the report's tables and legends): strings bare, argument
    tables as "k=v" pairs (left out when empty), other values as "axis=value".
    `[report.names]` can replace it with a shorter one."""
    parts = []  # in sorted order: a study file and its stored copy (sorted keys) agree
    for path, value in sorted(overrides.items()):
        if isinstance(value, dict):
            if value:
                parts.append(" ".join(f"{k}={_short(v)}" for k, v in sorted(value.items())))
        elif isinstance(value, str):
            parts.append(value)
        else:
            parts.append(f"{path.split('.')[-1]}={_short(value)}")
    return ", ".join(parts) or "base"


def _short(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.3g}"
    if isinstance(value, (list, dict)):
        return json.dumps(value, separators=(",", ":"))
    return str(value)
