"""Optimizers of the lecture notes as `keras.optimizers.Optimizer` subclasses.

Each file holds one technique: the update rule in its docstring, `__init__ ->
build -> update_step -> get_config` as in Keras's own optimizer files, and a note
where the notes' textbook formula differs from Keras. All Keras base arguments
(`weight_decay`, `clipnorm`, `clipvalue`, `global_clipnorm`, `use_ema`,
`gradient_accumulation_steps`, `loss_scale_factor`, ...) pass through to the base
class, which applies them around `update_step` exactly as for the built-ins.
"""

from study.optimizers.adagrad import AdaGrad
from study.optimizers.adam import Adam
from study.optimizers.momentum import Momentum
from study.optimizers.rmsprop import RMSProp
from study.optimizers.sgd import SGD

__all__ = ["SGD", "Momentum", "AdaGrad", "RMSProp", "Adam"]
