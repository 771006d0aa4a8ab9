"""The run configuration: what one run depends on (with its seed), and its validation.

A run's `[data]`, `[model]` and `[training]` sections, each a strict schema: an unknown key is an
error, never ignored. Component names are checked by `study.engine.studies.components`; with
the validation context `{"light": True}` nothing is imported or built (the report re-reads
stored study files that way), otherwise every component is built once with its arguments.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import (BaseModel, ConfigDict, Field, NonNegativeFloat, NonNegativeInt,
                      PositiveFloat, PositiveInt, ValidationInfo, field_validator,
                      model_validator)

from study.engine.studies import components, layer_list
from study.surfaces import SURFACES


class Strict(BaseModel):
    # Unknown keys are errors: a misspelt key must never be silently ignored.
    model_config = ConfigDict(extra="forbid", frozen=True)


def building(info: ValidationInfo) -> bool:
    """Validate fully (import and build components), unless the context asks for light."""
    return not (info.context or {}).get("light", False)


def _component(kind: str, *, optional: bool = False):
    def check(cls, value, info: ValidationInfo):
        if value is None and optional:
            return value
        return components.check_name(kind, value, build=building(info))
    return classmethod(check)


def _none_is_null(value):
    return None if value == "none" else value


OWN_DATASETS = ("npz", "csv")  # your own data, read by study.own_data
PLANE_DATASETS = ("xor", "xor_cloud")  # two input features: a boundary to draw over the plane
OWN_ONLY = ("path", "label", "features", "test_path", "validation_fraction", "test_fraction",
            "scale")


class Data(Strict):
    # The 2-D functions of task "optimizer_path" are the names of study.surfaces.
    dataset: Literal["xor", "xor_cloud", "mnist", "gaussian", "bowl", "anisotropic_bowl",
                     "rosenbrock", "saddle", "beale", "rastrigin", "npz", "csv"]
    # A subset of the training split: the first n_train (as the book does), or, with
    # subset = "random", a sample drawn by the run's seed (the same in every arm of a seed).
    n_train: PositiveInt | None = None
    subset: Literal["first", "random"] = "first"
    cloud_points: PositiveInt = 400
    cloud_noise: NonNegativeFloat = 0.15
    # "gaussian": n_points inputs of dim standard-normal features (DLFS's histogram input).
    n_points: PositiveInt = 1000
    dim: PositiveInt = 100
    # The functions of task "optimizer_path" ("bowl" f = x^2 + y^2, "anisotropic_bowl"
    # f = x^2/20 + y^2 (DLFS 6.1), "rosenbrock", "saddle", "beale", "rastrigin"): the start of
    # the path, moved by N(0, start_jitter^2) per coordinate by the run's seed (0: the same
    # start). The default is the bowls' (DLFS's); `surfaces.SURFACES[name].start` gives each
    # function's own, to write in the study file.
    start: list[float] = Field(default_factory=lambda: [-7.0, 2.0], min_length=2, max_length=2)
    start_jitter: NonNegativeFloat = 0.0
    # What an MNIST network predicts, in every split: "digit" (ten classes); "parity", the
    # digit % 2 (two classes, so binary_cross_entropy applies); "value", the digit as a number
    # 0..9 (regression: one linear output, loss "mse", accuracy = the prediction rounds to it).
    # For your own data "digit" (the default) classifies by the label; "value" regresses on it.
    target: Literal["digit", "parity", "value"] = "digit"
    # Your own data (dataset "npz" or "csv", see study.own_data). A relative path is read from
    # the study file's folder (a study given as a dict: the current folder).
    path: str | None = None
    label: str | None = None  # csv: the label's column
    features: list[str] | None = Field(None, min_length=1)  # csv: default every other numeric
    test_path: str | None = None  # csv: a file of test rows; else test_fraction of path's rows
    validation_fraction: float = Field(0.1, gt=0.0, lt=1.0)  # without x_val/y_val, by the seed
    test_fraction: float = Field(0.2, gt=0.0, lt=1.0)
    scale: Literal["standard", "minmax", "none"] = "none"  # fitted on the training rows only

    @model_validator(mode="after")
    def _own_data_settings(self):
        if self.dataset not in OWN_DATASETS:
            given = [k for k in OWN_ONLY if k in self.model_fields_set]
            if given:
                raise ValueError(f"{', '.join(given)}: only for your own data (dataset 'npz' "
                                 f"or 'csv'), not {self.dataset!r}")
            return self
        if self.path is None:
            raise ValueError(f"path: required for dataset {self.dataset!r} (the file to read)")
        if self.dataset == "npz":
            given = [k for k in ("label", "features", "test_path", "test_fraction")
                     if k in self.model_fields_set]
            if given:
                raise ValueError(f"{', '.join(given)}: only for dataset 'csv' (an npz holds "
                                 f"its splits as arrays x_train, y_train, x_test, y_test)")
        elif self.label is None:
            raise ValueError("label: required for dataset 'csv' (the column to predict)")
        if self.target == "parity":
            raise ValueError("target = 'parity' applies only to 'mnist'; your own data takes "
                             "'digit' (classify by the label, the default) or 'value' (regress)")
        if self.n_train is not None or self.subset != "first":
            raise ValueError("n_train and subset apply only to 'mnist'")
        return self

    @model_validator(mode="after")
    def _subset_fits(self):
        if self.dataset == "mnist" and self.n_train is not None and self.n_train > 50_000:
            raise ValueError("n_train must be at most 50000 (the size of MNIST's train split)")
        if self.dataset == "xor" and self.n_train is not None:
            raise ValueError("n_train does not apply to 'xor' (four points)")
        if self.target != "digit" and self.dataset not in ("mnist", *OWN_DATASETS):
            raise ValueError(f"target = {self.target!r} applies only to 'mnist' (its labels are "
                             f"digits); {self.dataset!r} takes the default 'digit'")
        return self



class Model(Strict):
    hidden: list[PositiveInt] = [100, 100, 100, 100]
    activation: str = "relu"
    activation_args: dict[str, Any] = {}
    initializer: str = "he_normal"
    initializer_args: dict[str, Any] = {}
    bias_initializer: str = "zeros"
    regularizer: str | None = None
    regularizer_args: dict[str, Any] = {}
    constraint: str | None = None
    constraint_args: dict[str, Any] = {}
    dropout: float = Field(0.0, ge=0.0, lt=1.0)
    dropout_args: dict[str, Any] = {}
    # true: study.layers.BatchNormalization; "keras": Keras's built-in, as a control; or your
    # own layer, "package.module:ClassName"
    batch_norm: bool | str = False
    batch_norm_args: dict[str, Any] = {}
    use_bias: bool = True
    # Hidden layers after the first become ResidualBlocks (y = x + F(x)) of the first's width.
    residual: bool = False
    residual_args: dict[str, Any] = {}
    # The hidden stack written out, e.g. [{ layer = "affine", units = 100 }, { layer = "relu" }]:
    # instead of the shorthands above (study.engine.studies.layer_list).
    layers: list[dict[str, Any]] | None = None

    _activation = field_validator("activation")(_component("activation"))
    _initializers = field_validator("initializer", "bias_initializer")(_component("initializer"))
    # TOML has no null: "none" switches an optional component off (an axis value of the
    # baseline arm in studies that compare regularizers).
    _no_component = field_validator("regularizer", "constraint", mode="before")(_none_is_null)
    _regularizer = field_validator("regularizer")(_component("regularizer", optional=True))
    _constraint = field_validator("constraint")(_component("constraint", optional=True))

    @field_validator("batch_norm")
    @classmethod
    def _batch_norm(cls, value, info: ValidationInfo):
        if isinstance(value, bool) or value == "keras":
            return value
        if not components.is_own(value):
            raise ValueError(f"{value!r} is not allowed: give true (ours), \"keras\" (Keras's "
                             f"built-in) or your own layer as \"package.module:ClassName\"")
        return components.check_name("layer", value, build=building(info))

    @field_validator("layers")
    @classmethod
    def _layers(cls, entries, info: ValidationInfo):
        if entries is not None:
            layer_list.check_entries(entries, build=building(info))
        return entries

    @model_validator(mode="after")
    def _arguments_accepted(self, info: ValidationInfo):
        switches = {"regularizer_args": self.regularizer, "constraint_args": self.constraint,
                    "dropout_args": self.dropout, "batch_norm_args": self.batch_norm,
                    "residual_args": self.residual}
        for key, switch in switches.items():
            if getattr(self, key) and not switch:
                raise ValueError(f"{key} given but {key.removesuffix('_args')} is not set")
        reserved = {"dropout_args": ("rate", "seed", "name"), "batch_norm_args": ("name",),
                    "activation_args": ("name",), "residual_args": ("name",)}
        for key, names in reserved.items():
            taken = [n for n in names if n in getattr(self, key)]
            if taken:
                raise ValueError(f"{key}: {', '.join(map(repr, taken))} is set by the engine "
                                 f"(the rate by `dropout`, seeds from the run's seed, names by "
                                 f"position)")
        if self.layers is not None:
            # Judged by value, not by presence: a resolved (dumped) configuration spells
            # every default out and must validate again.
            given = [k for k in layer_list.SHORTHANDS
                     if getattr(self, k) != type(self).model_fields[k].get_default(
                         call_default_factory=True)]
            if given:
                raise ValueError(f"layers: give either layers or the shorthands "
                                 f"{', '.join(layer_list.SHORTHANDS)}; got both "
                                 f"({', '.join(given)})")
        if self.residual and self.layers is None and len(set(self.hidden)) > 1:
            raise ValueError(f"residual = true needs hidden layers of one width (the shortcut "
                             f"is the identity); got hidden = {self.hidden}")
        if not building(info):
            return self
        components.check_arguments("initializer", self.initializer, self.initializer_args,
                                   "initializer_args")
        if self.regularizer is not None:
            components.check_arguments("regularizer", self.regularizer, self.regularizer_args,
                                       "regularizer_args")
        if self.constraint is not None:
            components.check_arguments("constraint", self.constraint, self.constraint_args,
                                       "constraint_args")
        layer_list.check_arguments(self)
        return self


class EarlyStopping(Strict):
    """Stop when `monitor` has not improved for `patience` history rows (Keras's callback).

    Without `split`, it watches the validation split (val_loss, val_accuracy), the split the
    final val_* metrics score too. With `split = N`, it watches N images of its own, the last
    N of MNIST's 50,000 training images (disjoint from the first n_train that train), as
    stop_loss or stop_accuracy (default stop_loss); no stored metric is computed on them.
    """

    monitor: Literal["val_loss", "val_accuracy", "stop_loss", "stop_accuracy"] = "val_loss"
    patience: PositiveInt = 10
    restore_best_weights: bool = True
    split: PositiveInt | None = None

    @model_validator(mode="before")
    @classmethod
    def _split_monitor_by_default(cls, data):
        if isinstance(data, dict) and data.get("split") is not None and "monitor" not in data:
            return {**data, "monitor": "stop_loss"}
        return data

    @model_validator(mode="after")
    def _monitor_fits_split(self):
        own = self.monitor.startswith("stop_")
        if own and self.split is None:
            raise ValueError(f"monitor = {self.monitor!r} watches the early-stopping split: "
                             f"give its size, e.g. split = 1000")
        if not own and self.split is not None:
            raise ValueError(f"with split = {self.split}, monitor 'stop_loss' or "
                             f"'stop_accuracy' (the split's); {self.monitor!r} would watch the "
                             f"validation split and leave the split unused")
        return self


def early_stopping_split_problem(data: Data, training: Training) -> str | None:
    """Why `training.early_stopping.split` cannot be taken from `data`, or None if it can."""
    es = training.early_stopping
    if es is None or es.split is None:
        return None
    where = f"training.early_stopping.split = {es.split}"
    if data.dataset != "mnist":
        return (f"{where}: only 'mnist' has images to spare for an early-stopping split (the "
                f"end of its 50,000 training images); {data.dataset!r} has none")
    if data.subset != "first":
        return (f"{where}: needs data.subset = 'first'; a random subset may include the last "
                f"{es.split} training images, which the split takes")
    n_train = data.n_train or 50_000
    if n_train + es.split > 50_000:
        return (f"{where}: the split is the last {es.split} of MNIST's 50,000 training images "
                f"and would overlap the first n_train = {n_train} that train: n_train + split "
                f"must be at most 50000")
    return None


class Schedule(Strict):
    """Learning-rate schedule: lr(step) for the Keras schedule of the same name."""

    kind: Literal["constant", "exponential", "step", "inverse_time", "cosine"] = "constant"
    decay_steps: PositiveInt = 1000
    decay_rate: float = Field(0.5, gt=0.0)


class Training(Strict):
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
    # How each step's batch is drawn (study.engine.training.batches): "permutation", every
    # sample once per pass of seeded permutations; "with_replacement", B indices uniformly
    # with replacement every step (DLFS's np.random.choice(N, B)). Both depend on the seed
    # alone: every arm of a seed sees the same batches.
    sampling: Literal["permutation", "with_replacement"] = "permutation"
    # Data augmentation (MNIST): every training sample of every step moves by (dy, dx) drawn
    # uniformly from the integers in [-k, k], zero-filled; 0 leaves the images alone.
    augment_shift: NonNegativeInt = 0
    # Members trained one after another (seeds in `train.member_seed`); the final metrics are
    # those of their averaged prediction.
    ensemble: PositiveInt = 1
    # Before training: per-layer norms of the loss's gradient on the first batch.
    record_gradients: bool = False
    # The 2-D datasets (xor, xor_cloud): P(class 1) on a grid over the plane after every
    # logged step (each history row), artifact `boundary_steps` (study.boundary_frames).
    record_boundaries: bool = False
    # History rows (and early stopping without a split) judge the first N validation samples
    # (None: all of them); the final val_* metrics always use the whole validation split.
    history_validation_size: PositiveInt | None = None

    _no_early_stopping = field_validator("early_stopping", mode="before")(_none_is_null)
    _optimizer = field_validator("optimizer")(_component("optimizer"))

    @model_validator(mode="after")
    def _one_length(self, info: ValidationInfo):
        if (self.epochs is None) == (self.steps is None):
            raise ValueError("set exactly one of epochs or steps")
        if self.log_every is not None and self.steps is None:
            raise ValueError("log_every applies only when training by steps")
        if self.log_every is not None and self.steps % self.log_every:
            raise ValueError(f"steps ({self.steps}) must be a multiple of log_every "
                             f"({self.log_every})")
        if building(info):
            args = {"learning_rate": self.learning_rate, **self.optimizer_args}
            components.check_arguments("optimizer", self.optimizer, args, "optimizer_args")
        return self


class RunConfig(Strict):
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
        if (self.task == "optimizer_path") != (self.data.dataset in SURFACES):
            raise ValueError("task 'optimizer_path' goes with the data "
                             f"{' / '.join(map(repr, SURFACES))} (the 2-D functions), and "
                             "those data with that task only")
        if self.task == "train" and self.data.dataset == "gaussian":
            raise ValueError("the 'gaussian' data has no labels: use it with task = "
                             "'activation_histograms'")
        d, t = self.data, self.training
        if (t is not None and t.loss == "binary_cross_entropy" and d.dataset == "mnist"
                and d.target != "parity"):
            raise ValueError(f"binary_cross_entropy needs two classes; mnist has ten (with "
                             f"target = {d.target!r}): set data.target = \"parity\" for two")
        if t is not None and d.target == "value" and t.loss != "mse":
            # (own data: more checks need the file; study.engine.studies.data_files)
            raise ValueError(f"target = 'value' is a regression: it needs training.loss = "
                             f"'mse'; got {t.loss!r}")
        if t is not None and t.augment_shift:
            if d.dataset != "mnist":
                raise ValueError(f"augment_shift shifts images: it applies only to 'mnist', "
                                 f"not {d.dataset!r}")
            if t.augment_shift >= 28:
                raise ValueError(f"augment_shift ({t.augment_shift}) must be below 28, the side "
                                 f"of an MNIST image")
        if t is not None and (problem := early_stopping_split_problem(d, t)):
            raise ValueError(problem)
        if t is not None and t.record_boundaries and d.dataset not in PLANE_DATASETS:
            raise ValueError(f"record_boundaries draws the decision boundary over the plane: it "
                             f"applies only to the 2-D datasets "
                             f"{' / '.join(map(repr, PLANE_DATASETS))}, not {d.dataset!r}")
        if t is not None and self.task != "train":
            for name, value in (("ensemble", t.ensemble > 1),
                                ("record_gradients", t.record_gradients),
                                ("record_boundaries", t.record_boundaries),
                                ("sampling", t.sampling != "permutation")):
                if value:
                    raise ValueError(f"training.{name} applies only to task 'train', not "
                                     f"{self.task!r}")
        return self


