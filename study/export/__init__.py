"""Exports of stored runs to other tools: `study export tensorboard` (study/export/tensorboard.py),
from the database as read by study/export/runs.py. Neither imports Keras or TensorFlow."""


class ExportError(Exception):
    """Bad input to an export (the database, a study name, the target folder): a message for
    the command line, never a traceback."""
