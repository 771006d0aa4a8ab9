"""HTML pages: the index and one page per study, each a single self-contained file.

Everything a page shows is escaped here or in `tables` (a study name or a claim reading
"<script>" is shown as text). Figures are inlined as SVG data URIs; the style sheet is inline;
nothing is fetched from the network, so the pages work from file://.
"""

from __future__ import annotations

import base64
import html
import json

STYLE = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 2rem auto;
       max-width: 72rem; padding: 0 1rem; color: #1b1b1b; line-height: 1.45; }
h1 { font-size: 1.7rem; margin-bottom: .2rem; } h2 { margin-top: 2rem; font-size: 1.25rem; }
.question { font-size: 1.1rem; color: #333; font-style: italic; }
table { border-collapse: collapse; margin: .8rem 0; font-size: .85rem; }
th, td { border: 1px solid #ccc; padding: .25rem .5rem; text-align: left; vertical-align: top; }
thead th { background: #f0f0f0; } td.best { background: #e3f1e3; }
td.diverged, td.failed { color: #a33; font-style: italic; }
td.verdict.supported { color: #17661b; font-weight: 600; }
td.verdict.contradicted { color: #a31515; font-weight: 600; }
td.verdict.inconclusive { color: #6b5b00; }
span.verdict.supported { color: #17661b; font-weight: 600; }
span.verdict.contradicted { color: #a31515; font-weight: 600; }
span.verdict.inconclusive { color: #6b5b00; }
table.book tr.differs td, table.book tr.differs th { background: #fff1cc; }
ul.findings { padding-left: 1.2rem; } .finding p { margin: .2rem 0; }
.finding.reproduced strong { color: #17661b; } .finding.not-reproduced strong { color: #a31515; }
.finding.not-tested strong, .finding.not-evaluated strong { color: #6b5b00; }
span.unexplained { font-style: italic; } .book-finding { color: #333; }
figure { margin: 1.2rem 0; } figure img { max-width: 100%; height: auto; }
figcaption { font-size: .85rem; color: #444; }
.card { border: 1px solid #ddd; border-radius: 6px; padding: 1rem; margin: 1rem 0; }
.card img { max-width: 32rem; height: auto; }
.meta { font-size: .85rem; color: #555; } pre { background: #f7f7f7; padding: .6rem;
overflow-x: auto; font-size: .8rem; } nav a { margin-right: 1rem; }
"""


def escape(text) -> str:
    return html.escape(str(text), quote=True)


def page(title: str, body: str) -> str:
    return (f"<!DOCTYPE html>\n<html lang='en'>\n<head>\n<meta charset='utf-8'>\n"
            f"<meta name='viewport' content='width=device-width, initial-scale=1'>\n"
            f"<title>{escape(title)}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n"
            f"{body}\n</body>\n</html>\n")


def image(svg: bytes, alt: str, css: str = "") -> str:
    data = base64.b64encode(svg).decode("ascii")
    css_attr = f" class='{escape(css)}'" if css else ""
    return f"<img{css_attr} src='data:image/svg+xml;base64,{data}' alt='{escape(alt)}'>"


def figure_html(svg: bytes, title: str, alt: str, export: str) -> str:
    return (f"<figure>{image(svg, alt)}<figcaption>{escape(title)} "
            f"(<a href='{escape(export)}'>SVG</a>)</figcaption></figure>")


def definition_text(definition: dict) -> str:
    """The study as written: keys in the file's order, non-ASCII text as itself."""
    return json.dumps(definition, indent=2, ensure_ascii=False)


def links(items: list[tuple[str, str]]) -> str:
    return " · ".join(f"<a href='{escape(href)}'>{escape(text)}</a>" for text, href in items)
