"""Classic deep-learning training techniques as Keras 3 components, and the engine that studies them.

Components register with Keras's serialization registry (package "study") when their modules
are imported, so `.keras` files that use them load with `keras.saving.load_model(path)` and no
`custom_objects`. `import study` does not import Keras itself (the light commands, `study
report` and `study data`, and `import study.results` never pay TensorFlow's start-up): it
registers the components as soon as Keras is imported, or at once if Keras already is.

    import study
    result = study.run("experiments/xor.toml", quick=True)   # or a dict: a study in a cell
    result.runs, result.history, result.claims               # pandas DataFrames
    result.figure("curves", metric="loss")                   # a matplotlib Figure
    study.report("results/study.db", "reports")              # the HTML pages
"""

import importlib
import importlib.abc
import importlib.util
import os
import sys

__version__ = "0.1.0"

# TensorFlow prints a screenful of INFO lines at import and a harmless tf.data attribute
# warning per run at ERROR level; keep them out of tables and logs
# unless the user asked for them (setdefault leaves an explicit setting alone).
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

COMPONENT_MODULES = ("activations", "constraints", "initializers", "layers", "optimizers",
                     "regularizers")


# The Python API (study/api.py): `study.run(...)`, `study.report(db, out)` (the report package,
# callable), `study.StudyError`; each imported when first used, the engine only when called.
API = {"run": ("study.api", "run"), "Results": ("study.api", "Results"),
       "StudyError": ("study.errors", "StudyError")}


def __getattr__(name):
    # `import study; study.layers.Affine(...)` keeps working without importing every module up front.
    if name in COMPONENT_MODULES or name == "report":
        return importlib.import_module(f"study.{name}")
    if name in API:
        module, attribute = API[name]
        return getattr(importlib.import_module(module), attribute)
    raise AttributeError(f"module 'study' has no attribute {name!r}")


def register_components() -> None:
    """Import every component module: each registers its classes with Keras."""
    for name in COMPONENT_MODULES:
        importlib.import_module(f"study.{name}")


class _AfterKerasImport(importlib.abc.MetaPathFinder):
    """Registers the components right after `import keras` finishes, wherever it happens."""

    def find_spec(self, fullname, path, target=None):
        if fullname != "keras":
            return None
        sys.meta_path.remove(self)
        spec = importlib.util.find_spec("keras")
        if spec is not None and spec.loader is not None:
            spec.loader = _RegisteringLoader(spec.loader)
        return spec


class _RegisteringLoader(importlib.abc.Loader):
    def __init__(self, loader):
        self.loader = loader

    def create_module(self, spec):
        return self.loader.create_module(spec)

    def exec_module(self, module):
        self.loader.exec_module(module)
        register_components()


if "keras" in sys.modules:
    register_components()
else:
    sys.meta_path.insert(0, _AfterKerasImport())
