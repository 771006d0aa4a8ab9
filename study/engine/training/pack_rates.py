"""Arms that differ only in their learning rate or penalty factor, trained in one pack.

A hyperparameter search draws one learning rate and one L2 factor per point and trains each
point once (mnist_hparam_search: 585 runs of 200 steps). Trained one by one, such a run costs
about twice its steps (a pack's start, its evaluations and its records for one run). Plain SGD
lets those points share a pack, run r with its own rate lr_r and factor lambda_r:

    W_r <- W_r - lr_r * g_r,        g_r = d(L_r + lambda_r * Omega(W_r)) / dW_r.

The optimizer runs at rate 1 on the gradients scaled run by run, `(lr_r * g_r) * 1`, and
multiplying by 1 is exact: each run's update is the one `keras.optimizers.SGD(lr_r)` (or ours)
makes, bit for bit, so a pack of one arm keeps its numbers. Each run's penalty has its own factor
(`graph_key.VariableFactors`, one per run). Only plain SGD at a constant rate qualifies: in
Momentum, RMSProp or Adam the rate does not scale the update alone (Adam's bias correction,
RMSProp's epsilon), and a schedule's rate is a constant of the traced graph.
"""

from __future__ import annotations

import json

import keras
import numpy as np

from study.engine.studies import components
from study.engine.training import graph_key

PLAIN_SGD = ("sgd", "keras.sgd")
MOST_RUNS = 25  # runs of several arms in one pack: a search round's points of one repeat


def across_arms(config) -> bool:
    """Can runs of `config` share a pack with runs that differ only in their learning rate
    and L1/L2 factor?"""
    t = config.training
    return (t.optimizer in PLAIN_SGD and t.schedule.kind == "constant"
            and not t.optimizer_args)


def pack_key(spec) -> str:
    """Runs of one key train in one pack: the study and the configuration, without the rate
    and the L1/L2 factor where `across_arms` allows."""
    if not across_arms(spec.run_config):
        return json.dumps([spec.study, spec.config], sort_keys=True)
    data = spec.run_config.model_dump(mode="json")
    data["training"].pop("learning_rate")
    model = data["model"]
    if (model["regularizer"] is not None and components.component_class(
            "regularizer", model["regularizer"]) in graph_key.FACTOR_REGULARIZERS):
        model.pop("regularizer_args")
    return json.dumps([spec.study, data], sort_keys=True)


class RunRates:
    """The runs' learning rates, (runs,), in a variable a kept trainer sets for the next pack."""

    def __init__(self, rates: list[float]):
        self.variable = keras.Variable(np.array(rates, keras.config.floatx()),
                                       trainable=False, name="run_rates")

    def scale(self, gradients):
        """Each stacked gradient (runs, ...) times its runs' rates."""
        return [g * keras.ops.reshape(self.variable, (-1,) + (1,) * (len(g.shape) - 1))
                for g in gradients]

    def values(self) -> list[float]:
        """The rates as a run's history stores its optimizer's (float32, then float)."""
        return [float(v) for v in keras.ops.convert_to_numpy(self.variable)]


class RunPenalties:
    """Each run's weight penalty, with its own factor, on its slice of every stacked kernel."""

    def __init__(self, configs):
        m = configs[0].model
        self.each = None if m.regularizer is None else [
            components.create("regularizer", c.model.regularizer, **c.model.regularizer_args)
            for c in configs]

    def hold_factors_in_variables(self) -> None:
        """Before the first trace: an L1/L2 factor is read from a variable (`graph_key`)."""
        if self.each and type(self.each[0]) in graph_key.FACTOR_REGULARIZERS:
            self.each = [graph_key.VariableFactors(r, keras.config.floatx()) for r in self.each]

    def take(self, fresh: "RunPenalties") -> bool:
        """Hold `fresh`'s factors; False if the penalties differ in kind or number."""
        held, wanted = self.each or [], fresh.each or []
        if len(held) != len(wanted):
            return False
        for mine, theirs in zip(held, wanted):
            if isinstance(mine, graph_key.VariableFactors):
                if not mine.take(theirs):
                    return False
            elif type(mine) is not type(theirs):
                return False
        return True

    def __call__(self, kernels, runs: int):
        """(runs,): each run's penalty, the sum over its kernels as Keras adds it."""
        import tensorflow as tf

        if self.each is None:
            return tf.zeros(runs, keras.config.floatx())
        # unstack, not kernel[r]: the gradient of R strided slices is R zero-filled copies of
        # the whole stacked kernel (summed), unstack's is one stack of the R slices' gradients:
        # the same numbers (a sum with exact zeros) at a fraction of the memory traffic.
        return tf.add_n([tf.stack([penalty(w) for penalty, w in zip(self.each, tf.unstack(k))])
                         for k in kernels])
