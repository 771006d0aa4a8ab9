"""What a study may ask of the machine, checked before anything is expanded or trained.

- `MAX_RUNS`: a study that would expand to more runs than this is refused before its axes
  are crossed (`seeds = 1000000` with a 10-value grid would take minutes to expand ten
  million runs, and years to train them), naming the factors that multiply.
- memory: each run's model needs at least its weights, their gradients and the optimizer's
  slots in memory, 4 bytes a number (float32). A run whose estimate exceeds the machine's
  memory is refused with the estimate; anything else (activations, TensorFlow itself) only
  adds to it, so a refused run could never have fitted.
"""

from __future__ import annotations

import math
import os

from study.engine.studies import data_files
from study.engine.studies.errors import ConfigError
from study.engine.studies.layer_list import arguments, from_model

MAX_RUNS = 100_000
MEMORY_ENV = "STUDY_MEMORY_BYTES"  # what the estimate is compared with, instead of the RAM
BYTES_PER_NUMBER = 4
# Slots per weight each optimizer keeps (Keras's and ours alike); an unknown one is taken as 2.
OPTIMIZER_SLOTS = {"sgd": 0, "momentum": 1, "nesterov": 1, "adagrad": 1, "rmsprop": 1, "adam": 2,
                   "adamw": 2, "nadam": 2, "adamax": 2, "lion": 1, "ftrl": 2, "adadelta": 2}


def check_run_count(source, seeds, grid: dict[str, list], zipped: dict[str, list],
                    random_search) -> None:
    factors = [("seeds", seeds if isinstance(seeds, int) else len(seeds))]
    factors += [(f"grid.{key}", len(values)) for key, values in grid.items()]
    if zipped:
        factors.append(("zip", max(len(values) for values in zipped.values())))
    if random_search is not None:
        factors.append(("random.samples", random_search.samples))
    total = math.prod(n for _, n in factors)
    if total > MAX_RUNS:
        product = " x ".join(f"{n:,} ({name})" for name, n in factors if n > 1)
        raise ConfigError(source, [f"the study would expand to {total:,} runs ({product}); "
                                   f"the limit is {MAX_RUNS:,}: use fewer seeds or axis values"])


def machine_memory() -> int:
    if os.environ.get(MEMORY_ENV):
        return int(float(os.environ[MEMORY_ENV]))
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def memory_problems(run) -> list[str]:
    """[] if the run's model (a RunConfig) fits in memory, else one line with the estimate and
    the machine's memory."""
    if run.task != "train" or run.training is None:
        return []
    params = parameter_count(run)
    optimizer = run.training.optimizer
    slots = OPTIMIZER_SLOTS.get(optimizer.removeprefix("keras.").split(":")[-1].lower(), 2)
    needed = params * BYTES_PER_NUMBER * (2 + slots)
    available = machine_memory()
    if needed <= available:
        return []
    return [f"model: the model needs about {needed / 1e9:.1f} GB ({params:,} parameters x "
            f"{BYTES_PER_NUMBER} bytes x {2 + slots}: weights, gradients and {slots} "
            f"{optimizer} slot(s)); this machine has {available / 1e9:.1f} GB of memory"]


def parameter_count(run) -> int:
    """Weights of the network (affine and residual layers, batch norm's four vectors, PReLU's
    slopes), from the configuration alone: nothing is built."""
    width, total = data_files.input_width(run), 0
    for entry in from_model(run.model):
        name, args = entry["layer"], arguments(entry)
        if name in ("affine", "keras.affine"):
            bias = run.model.use_bias and args.get("use_bias", True)
            total += width * args["units"] + (args["units"] if bias else 0)
            width = args["units"]
        elif name == "residual":
            total += 2 * (width * width + width)
        elif name in ("batch_norm", "keras.batch_norm"):
            total += 4 * width
        elif name in ("prelu", "keras.prelu"):
            total += width
    outputs = _outputs(run)
    return total + width * outputs + outputs


def _outputs(run) -> int:
    if run.data.target == "value" or run.training.loss == "binary_cross_entropy":
        return 1
    return data_files.class_count(run)
