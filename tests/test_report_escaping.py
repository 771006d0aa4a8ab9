"""The report's escaping, function by function (fast; `test_report_pages` checks whole pages).

Every text a page writes - in element content or inside an attribute quoted with ' or " -
comes back from an HTML parser as exactly the text it was, and never as markup.
"""

from __future__ import annotations

import base64
import html.parser

import pytest

from study.report import pages

HOSTILE = ["t' onload='window.__pwned = 1' x='", 's" onerror="window.__pwned = 2" y="',
           "<script>window.__pwned = 3</script>", "a & b < c > d", "ä 한 ✓"]


class _Parsed(html.parser.HTMLParser):
    """Start tags with their attributes, and the text of the document."""

    def __init__(self, markup: str):
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []
        self.feed(markup)
        self.close()

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data):
        self.text.append(data)


def _tags(markup: str, name: str) -> list[dict[str, str | None]]:
    return [attributes for tag, attributes in _Parsed(markup).tags if tag == name]


@pytest.mark.parametrize("text", HOSTILE)
def test_escape_quotes_both_quote_marks_and_markup(text):
    escaped = pages.escape(text)
    assert not {"<", ">", "'", '"'} & set(escaped)
    assert html.unescape(escaped) == text
    assert pages.escape(3.5) == "3.5"  # numbers and other values are shown as their text


@pytest.mark.parametrize("text", HOSTILE)
def test_image_keeps_its_alt_text_and_class_inside_their_attributes(text):
    svg = b"<svg xmlns='http://www.w3.org/2000/svg'/>"
    [attributes] = _tags(pages.image(svg, text, css=text), "img")
    assert attributes == {"class": text, "alt": text,
                          "src": "data:image/svg+xml;base64," + base64.b64encode(svg).decode()}
    [plain] = _tags(pages.image(svg, "a chart"), "img")
    assert "class" not in plain and plain["alt"] == "a chart"


@pytest.mark.parametrize("text", HOSTILE)
def test_a_figure_shows_its_title_as_text_and_links_its_export(text):
    markup = pages.figure_html(b"<svg/>", title=text, alt=text, export=text)
    parsed = _Parsed(markup)
    assert [tag for tag, _ in parsed.tags] == ["figure", "img", "figcaption", "a"]
    assert parsed.tags[1][1]["alt"] == text and parsed.tags[3][1] == {"href": text}
    assert "".join(parsed.text) == f"{text} (SVG)"


@pytest.mark.parametrize("text", HOSTILE)
def test_a_page_shows_its_title_as_text(text):
    markup = pages.page(text, "<p>body</p>")
    assert markup.startswith("<!DOCTYPE html>\n<html lang='en'>")
    parsed = _Parsed(markup)
    assert [tag for tag, _ in parsed.tags] == ["html", "head", "meta", "meta", "title", "style",
                                               "body", "p"]
    assert parsed.tags[2][1] == {"charset": "utf-8"}
    title = markup[markup.index("<title>") + 7:markup.index("</title>")]
    assert html.unescape(title) == text and "<" not in title
    assert f"<style>{pages.STYLE}</style>" in markup
    assert markup.endswith("<p>body</p>\n</body>\n</html>\n")


def test_links_keep_each_href_and_text_and_are_separated_by_a_dot():
    items = [(text, f"{i}-{text}") for i, text in enumerate(HOSTILE)]
    markup = pages.links(items)
    parsed = _Parsed(markup)
    assert [attributes for _, attributes in parsed.tags] == [{"href": href} for _, href in items]
    assert "".join(parsed.text) == " · ".join(text for text, _ in items)
    assert pages.links([]) == ""


def test_a_definition_is_shown_as_indented_json_in_the_order_written():
    definition = {"name": "한국어", "grid": {"z": [1, 2], "a": "<b>"}}
    assert pages.definition_text(definition) == (
        '{\n  "name": "한국어",\n  "grid": {\n    "z": [\n      1,\n      2\n    ],\n'
        '    "a": "<b>"\n  }\n}')
