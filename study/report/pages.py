"""HTML pages: the index and one page per study, each a single self-contained file.

The pages are Jinja2 templates (study/report/templates/, shipped with the package) rendered
with autoescaping on: every value a template writes, in element content or inside an attribute,
is escaped by Jinja2, so a study name or a claim reading "<script>" is shown as text without
any code having to remember to escape it. Nothing is passed as `Markup`: the tables are built
cell by cell in the templates, and figures are data: URIs (base64, no character to escape).
A name a template misspells fails loudly (StrictUndefined) instead of rendering as nothing.
The style sheet is inline and nothing is fetched from the network, so the pages work from
file://.
"""

from __future__ import annotations

import base64
import json

import jinja2

from study.report import views


def environment() -> jinja2.Environment:
    """The report's templates with autoescaping on and strict names. A new one for each page
    (compiling the templates takes milliseconds, a page's figures seconds): one made at import
    would be fixed before `make mutate` could change what this function sets."""
    return jinja2.Environment(
        loader=jinja2.PackageLoader("study.report"),  # its folder templates/
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        # A line holding only a {% %} tag leaves no line break; the file's last one stays.
        trim_blocks=True, keep_trailing_newline=True,
    )


def study_page(page: views.StudyPage) -> str:
    return environment().get_template("study.html").render(page=page)


def index_page(page: views.IndexPage) -> str:
    return environment().get_template("index.html").render(page=page)


def part(name: str, *args) -> str:
    """One macro of parts.html (a table, a figure, links...) rendered alone, escaped as in a
    page."""
    return str(getattr(environment().get_template("parts.html").module, name)(*args))


def data_uri(svg: bytes) -> str:
    """An SVG figure inline: the page fetches nothing."""
    return "data:image/svg+xml;base64," + base64.b64encode(svg).decode("ascii")


def definition_text(definition: dict) -> str:
    """The study as written: keys in the file's order, non-ASCII text as itself."""
    return json.dumps(definition, indent=2, ensure_ascii=False)
