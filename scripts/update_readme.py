"""Write the registry's component table into README.md between its markers."""

import pathlib

from study import registry
from study.cli import markdown_table

README = pathlib.Path(__file__).resolve().parent.parent / "README.md"
START, END = "<!-- components:start -->", "<!-- components:end -->"

text = README.read_text()
head, rest = text.split(START, 1)
_, tail = rest.split(END, 1)
README.write_text(f"{head}{START}\n{markdown_table(registry.KINDS)}\n{END}{tail}")
