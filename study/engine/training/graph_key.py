"""Which runs can share one traced model: the configuration as the traced graph sees it.

Keras traces a model's train and test functions once, and `reuse` hands the traced model to the
next run of the same key with every variable set to that run's fresh values. The key leaves out
what only sets a variable's value, so runs that differ in it share the trace too:

- the initializers (`model.initializer`, `initializer_args`, `bias_initializer`): they only
  draw the initial weights, which the restore copies from the run's own fresh build;
- a constant learning rate: Keras's optimizers (ours subclass them) hold it in a variable,
  `learning_rate`, which is one of the optimizer variables the restore copies (a schedule's
  rates are constants of the graph, so a schedule keeps it in the key);
- the factor of an L1 or L2 penalty (`model.regularizer_args`; ours or Keras's): traced as a
  constant, so a kept model reads it from a variable instead (`hold_factors_in_variables`), and
  the restore sets that variable to the run's factor (`take_factors`). Elastic net (L1L2) and
  own regularizers keep their arguments in the key: a zero factor drops a term of the graph.

A hyperparameter search whose every point has its own learning rate and penalty thus traces
its network once per worker instead of once per run (585 runs of mnist_hparam_search: ~0.5 s
of each run was its own trace).
"""

from __future__ import annotations

import json

import keras

from study import regularizers
from study.engine.studies import components
from study.engine.studies.run_schema import RunConfig

# Regularizers whose graph is `factor * f(W)` whatever the factor (no branch on its value).
FACTOR_REGULARIZERS = {regularizers.L1: ("l1",), regularizers.L2: ("l2",),
                       keras.regularizers.L1: ("l1",), keras.regularizers.L2: ("l2",)}


def graph_key(config: RunConfig) -> str:
    """`config` as JSON without the values a kept model takes from the run's fresh build."""
    data = config.model_dump(mode="json")
    model, training = data["model"], data["training"]
    for name in ("initializer", "initializer_args", "bias_initializer"):
        model.pop(name, None)
    if training["schedule"]["kind"] == "constant":
        training.pop("learning_rate")
    if (model["regularizer"] is not None and components.component_class(
            "regularizer", model["regularizer"]) in FACTOR_REGULARIZERS):
        model.pop("regularizer_args")
    return json.dumps(data, sort_keys=True)


class VariableFactors:
    """`regularizer`, with its factors read from variables when the graph is traced: the same
    operations on the same values (a variable of the dtype the factor is cast to), so the same
    numbers, and another factor is an assignment instead of a new trace."""

    def __init__(self, regularizer, dtype: str):
        self.regularizer = regularizer
        self.factors = {}
        for name in FACTOR_REGULARIZERS[type(regularizer)]:
            value = getattr(regularizer, name)
            # Keras's L1 keeps its factor as a float32 tensor (cast to the weight's dtype when
            # called); the others keep a Python float, cast straight to the weight's dtype.
            kind = keras.backend.standardize_dtype(getattr(value, "dtype", dtype))
            self.factors[name] = keras.Variable(value, dtype=kind, trainable=False,
                                                name=f"penalty_{name}")

    def __call__(self, x):
        constants = {name: getattr(self.regularizer, name) for name in self.factors}
        try:
            for name, variable in self.factors.items():
                setattr(self.regularizer, name, variable)
            return self.regularizer(x)
        finally:
            for name, value in constants.items():
                setattr(self.regularizer, name, value)

    def take(self, other) -> bool:
        """Hold `other`'s factors (a regularizer of the same class); False if it is not."""
        if type(other) is not type(self.regularizer):
            return False
        for name, variable in self.factors.items():
            value = getattr(other, name)
            variable.assign(value)
            setattr(self.regularizer, name, value)
        return True


def hold_factors_in_variables(model: keras.Model) -> None:
    """Before `model` is first traced: each L1 / L2 penalty of its weights reads its factor
    from a variable."""
    for variable in model.variables:
        if type(getattr(variable, "regularizer", None)) in FACTOR_REGULARIZERS:
            variable.regularizer = VariableFactors(variable.regularizer, variable.dtype)


def take_factors(kept: keras.Model, fresh: keras.Model) -> bool:
    """Set `kept`'s penalty factors to `fresh`'s, weight by weight; False if their penalties
    differ in kind (then `kept` cannot serve `fresh`'s run)."""
    for target, source in zip(kept.variables, fresh.variables):
        held, wanted = getattr(target, "regularizer", None), getattr(source, "regularizer", None)
        if isinstance(held, VariableFactors):
            if not held.take(wanted):
                return False
        elif (held is None) != (wanted is None):
            return False
    return True
