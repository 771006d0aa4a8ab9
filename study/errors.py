"""`study.StudyError`: the one exception the Python API raises for what the command reports
with exit code 2 (a bad study file or dict, a bad option, missing data, an unusable database).

Its text is the command's message: `study run` prints `printed` and exits 2. Light: importing
it imports nothing else, so `study.StudyError` costs nothing until a study runs.
"""

from __future__ import annotations


class StudyError(Exception):
    """Bad input, missing data or an unusable results database, with the command's message.

    `str(error)` is the message; `printed` is what `study` prints for it: a study's problems
    as they are (each line names its file, or `<dict>`, and key path), any other message after
    the program's name (`study: --jobs must be at least 1; got 0`)."""

    def __init__(self, message: str, *, names_its_source: bool = False):
        super().__init__(message)
        self.names_its_source = names_its_source

    @property
    def printed(self) -> str:
        return str(self) if self.names_its_source else f"study: {self}"
