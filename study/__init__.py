"""Classic deep-learning training techniques as Keras 3 components.

Importing `study` registers every component with Keras's serialization
registry (package "study"), so `.keras` files that use them load with
`keras.saving.load_model(path)` and no `custom_objects`.
"""

import os

__version__ = "0.1.0"

# TensorFlow prints a screenful of INFO lines at import and a harmless tf.data attribute
# warning per run at ERROR level; keep them out of tables and logs
# unless the user asked for them (setdefault leaves an explicit setting alone).
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from study import activations  # noqa: E402,F401
from study import constraints  # noqa: E402,F401
from study import initializers  # noqa: E402,F401
from study import layers  # noqa: E402,F401
from study import optimizers  # noqa: E402,F401
from study import regularizers  # noqa: E402,F401
