"""The report's escaping, through the templates (fast; `test_report_pages` checks whole pages of
trained studies in a browser).

Every text a page writes - in element content or inside an attribute (alt, href, class, the
title) - comes back from an HTML parser as exactly the text it was, and never as markup: a
page rendered with hostile texts parses into the same elements as one rendered with plain
words, the texts in the places of the words. Jinja2 does the escaping (autoescaping on), so a
template that forgot it, or an environment without it, fails here.
"""

from __future__ import annotations

import base64
import copy
import dataclasses
import html.parser
import json
import types

import jinja2
import pytest

from study.engine.results.store import RunRecord, Store
from study.engine.studies import expand
from study.report import build, pages, views
from study.report.charts import script

SCRIPT = "<script>alert(1)</script> it's \"quoted\""
HOSTILE = [SCRIPT, "t' onload='window.__pwned = 1' x='", 's" onerror="window.__pwned = 2" y="',
           "a & b < c > d", "ä 한 ✓"]
WORD = "PLACEHOLDER"  # plain text in every place a hostile text goes
SRC = pages.data_uri(b"<svg xmlns='http://www.w3.org/2000/svg'/>")


class _Parsed(html.parser.HTMLParser):
    """The document as items: start tags with their attributes, end tags, and text (adjacent
    pieces of text joined)."""

    def __init__(self, markup: str):
        super().__init__(convert_charrefs=True)
        self.items: list[tuple] = []
        self.feed(markup)
        self.close()

    def handle_starttag(self, tag, attrs):
        self.items.append(("start", tag, tuple(attrs)))

    def handle_endtag(self, tag):
        self.items.append(("end", tag))

    def handle_data(self, data):
        if self.items and self.items[-1][0] == "text":
            self.items[-1] = ("text", self.items[-1][1] + data)
        else:
            self.items.append(("text", data))

    @property
    def tags(self) -> list[tuple[str, dict[str, str | None]]]:
        return [(item[1], dict(item[2])) for item in self.items if item[0] == "start"]


def _with(items: list[tuple], text: str) -> list[tuple]:
    """The parsed items of the plain page with `text` wherever WORD was."""
    def put(value):
        return value if value is None else value.replace(WORD, text)
    out = []
    for item in items:
        if item[0] == "start":
            out.append(("start", item[1], tuple((k, put(v)) for k, v in item[2])))
        elif item[0] == "text":
            out.append(("text", put(item[1])))
        else:
            out.append(item)
    return out


def _table(text: str, css: str) -> views.Table:
    return views.Table(f"{css} {text}", [views.Row([views.Cell(text, header=True), views.Cell(text),
                                        views.Cell(text, css=text, strong=True)], css=text)],
                       head=[text, text], caption=text)


def _study_page(text: str) -> views.StudyPage:
    """A page with `text` in every place a study's words go: names, question, tables, the
    book's findings of every outcome, claims, links, figures."""
    explanations = [views.Explanation(text), views.Explanation(text, text, text, text)]
    findings = [views.Finding(text, "not-tested", text),
                views.Finding(text, "not-evaluated", text, claim_id=text),
                views.Finding(text, "reproduced", text, text, text, text, text),
                views.Finding(text, "not-reproduced", text, text, text, text, text),
                views.Finding(text, "not-reproduced", text, text, text, text, text,
                              explanations, explained=False),
                views.Finding(text, "not-reproduced", text, text, text, text, text,
                              explanations, explained=True)]
    return views.StudyPage(
        name=text, question=text, background=text, about=text, setup=_table(text, "setup"),
        definition=text,
        book=views.BookSection(text, text, _table(text, "book"), findings),
        claims_method=text, power=text, claims=_table(text, "claims"), counts=text,
        intervals=text, summary=_table(text, "results"), pivot=_table(text, "results pivot"),
        exports=[views.Link(text, text), views.Link(text, text)],
        figures=[views.Figure(views.Image(SRC, text), text, text)])


def _index_page(text: str) -> views.IndexPage:
    card = views.Card(text, text, views.Image(SRC, text, "headline"),
                      [views.Verdict(text, text)], text, text, quick=True)
    return views.IndexPage(text, 3, text, text, text, text, [card, card])


@pytest.mark.parametrize("text", HOSTILE)
@pytest.mark.parametrize("render, page", [(pages.study_page, _study_page),
                                          (pages.index_page, _index_page)],
                         ids=["study", "index"])
def test_every_text_of_a_page_comes_back_as_text_in_content_and_attributes(render, page, text):
    plain = _Parsed(render(page(WORD)))
    hostile = _Parsed(render(page(text)))
    assert hostile.items == _with(plain.items, text)
    for tag, attributes in hostile.tags:
        assert tag != "script"
        assert not [name for name in attributes if name.startswith("on")], (tag, attributes)
    # the words were in the places that matter: content, title, alt, href, class
    attributes = {(tag, name) for tag, found in plain.tags for name, value in found.items()
                  if value and WORD in value}
    assert {("img", "alt"), ("a", "href")} <= attributes
    if render is pages.study_page:
        assert {("td", "class"), ("tr", "class"), ("table", "class")} <= attributes
        assert ("text", f"{WORD} — study report") in plain.items  # the <title>


def test_a_study_page_without_book_claims_power_or_figures_says_so():
    page = dataclasses.replace(_study_page(SCRIPT), book=None, claims=None, power="",
                               figures=[])
    markup = pages.study_page(page)
    assert "<p>This study states no claims.</p>" in markup
    assert "<p>No figure: the study stored nothing to draw.</p>" in markup
    assert "The book vs this study" not in markup and "<script>" not in markup
    empty = pages.index_page(dataclasses.replace(_index_page(SCRIPT), cards=[]))
    assert "<p>The database holds no study yet: run <code>study run</code> first.</p>" in empty


def test_the_frame_of_a_page_is_exact():
    markup = pages.index_page(_index_page(WORD))
    environment = pages.environment()
    style, _, _ = environment.loader.get_source(environment, "style.css")
    assert markup.startswith(
        "<!DOCTYPE html>\n<html lang='en'>\n<head>\n<meta charset='utf-8'>\n<meta "
        "name='viewport' content='width=device-width, initial-scale=1'>\n<title>study — "
        f"reports</title>\n<style>\n{style}</style>\n</head>\n<body>\n<h1>")
    assert markup.endswith("</div>\n\n</body>\n</html>\n")


def test_autoescaping_is_on_and_a_misspelt_name_fails_loudly():
    template = pages.environment().from_string("<p title='{{ x }}'>{{ x }}</p>")
    escaped = "&lt;script&gt;alert(1)&lt;/script&gt; it&#39;s &#34;quoted&#34;"
    assert template.render(x=SCRIPT) == f"<p title='{escaped}'>{escaped}</p>"
    fields = {f.name: getattr(_study_page(WORD), f.name)
              for f in dataclasses.fields(views.StudyPage)}
    del fields["about"]
    with pytest.raises(jinja2.UndefinedError, match="about"):
        pages.study_page(types.SimpleNamespace(**fields))


@pytest.mark.parametrize("text", HOSTILE)
def test_image_keeps_its_alt_text_and_class_inside_their_attributes(text):
    svg = b"<svg xmlns='http://www.w3.org/2000/svg'/>"
    [(tag, attributes)] = _Parsed(pages.part("image", views.Image(pages.data_uri(svg), text,
                                                                  text))).tags
    assert tag == "img" and attributes == {
        "class": text, "alt": text,
        "src": "data:image/svg+xml;base64," + base64.b64encode(svg).decode()}
    [(_, plain)] = _Parsed(pages.part("image", views.Image(SRC, "a chart"))).tags
    assert "class" not in plain and plain["alt"] == "a chart"


@pytest.mark.parametrize("text", HOSTILE)
def test_a_figure_shows_its_title_as_text_and_links_its_export(text):
    parsed = _Parsed(pages.part("figure", views.Figure(views.Image(SRC, text), text, text)))
    assert [tag for tag, _ in parsed.tags] == ["figure", "img", "figcaption", "a"]
    assert parsed.tags[1][1]["alt"] == text and parsed.tags[3][1] == {"href": text}
    assert "".join(item[1] for item in parsed.items if item[0] == "text") == f"{text} (SVG)"


def test_links_keep_each_href_and_text_and_are_separated_by_a_dot():
    items = [views.Link(text, f"{i}-{text}") for i, text in enumerate(HOSTILE)]
    parsed = _Parsed(pages.part("links", items))
    assert [attributes for _, attributes in parsed.tags] == [{"href": i.href} for i in items]
    assert "".join(item[1] for item in parsed.items if item[0] == "text") == " · ".join(
        i.text for i in items)
    assert pages.part("links", []) == ""


def test_a_definition_is_shown_as_indented_json_in_the_order_written():
    definition = {"name": "한국어", "grid": {"z": [1, 2], "a": "<b>"}}
    assert pages.definition_text(definition) == (
        '{\n  "name": "한국어",\n  "grid": {\n    "z": [\n      1,\n      2\n    ],\n'
        '    "a": "<b>"\n  }\n}')


# A study's own texts through `build`, from a database written by hand (nothing trained): the
# question, the arms' names ([report.names]), a figure's title and a claim. The study's name
# cannot carry markup (the study file's schema refuses it, see test_report_pages); the tests
# above render one anyway.
NAMES = {"tanh": f"t' onload='window.__pwned = 1' x=' {SCRIPT}",
         "sigmoid": f's" onerror="window.__pwned = 2" y=" {SCRIPT}'}
STUDY = {
    "name": "hostile", "seeds": 2, "question": f"Is {SCRIPT} shown as text?",
    "about": f"About {SCRIPT}.", "data": {"dataset": "xor"}, "model": {"hidden": [2]},
    "training": {"steps": 10, "batch_size": 4}, "grid": {"activation": list(NAMES)},
    "report": {"names": NAMES, "figures": [{"kind": "final", "title": f"Final {SCRIPT}"}]},
    "claims": [{"id": "tanh-wins", "text": f"{SCRIPT} tanh beats sigmoid", "kind": "better",
                "metric": "val_accuracy", "arm": {"activation": "tanh"},
                "baseline": {"activation": "sigmoid"}}],
}


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    folder = tmp_path_factory.mktemp("hostile")
    study = expand(copy.deepcopy(STUDY), source="hostile.toml", light=True)
    with Store(folder / "r.db") as store:
        for i, spec in enumerate(study.runs):
            store.write(RunRecord(
                spec.key, spec.study, spec.arm, spec.seed, "finished", spec.config,
                spec.overrides, "2026-01-01T00:00:00", "2026-01-01T00:00:01", 1.0,
                metrics={"val_accuracy": 0.5 + 0.1 * i, "val_loss": 0.7}))
        store.write_study(study.name, "hostile.toml", False, STUDY,
                          [spec.key for spec in study.runs])
        claim = STUDY["claims"][0]
        store.write_claims(study.name, [{
            "study": study.name, "claim_id": claim["id"], "text": claim["text"],
            "kind": claim["kind"], "metric": claim["metric"], "arm": claim["arm"],
            "baseline": claim["baseline"], "n": 2, "statistic": 3.0, "p_value": 0.25,
            "p_adjusted": 0.5, "effect": 1.0, "estimate": {"arm_median": 1.0},
            "verdict": "inconclusive", "evaluated_at": "2026-01-01T00:00:00"}])
    build(folder / "r.db", folder / "out")
    return {p.stem: _Parsed(p.read_text(encoding="utf-8"))
            for p in (folder / "out").glob("*.html")}


def test_a_studys_texts_show_as_text_on_every_page_and_in_every_attribute(built):
    assert sorted(built) == ["hostile", "index"]
    for name, parsed in built.items():
        for tag, attributes in parsed.tags:
            # The only scripts: the charts' bundle (the package's code as a data: URI) and
            # their data (JSON, not run).
            assert tag != "script" or attributes in (
                {"src": script.uri(), "defer": None},
                {"type": "application/json", "class": "chart-data"}), (name, attributes)
            assert not [a for a in attributes if a.startswith("on")], (name, tag, attributes)
    texts = {name: [item[1] for item in parsed.items if item[0] == "text"]
             for name, parsed in built.items()}
    alts = [a["alt"] for tag, a in built["hostile"].tags if tag == "img"]
    for page in ("hostile", "index"):
        assert STUDY["question"] in texts[page]
    assert STUDY["about"] in texts["hostile"]
    assert f"Final {SCRIPT} (" in texts["hostile"]  # the figure's caption, before its link
    assert set(NAMES.values()) <= set(texts["hostile"])  # the results table's rows
    assert all(n in alts[0] for n in NAMES.values())  # the figure's alt text names the arms
    claim = STUDY["claims"][0]["text"]
    assert claim in texts["hostile"] and f": {claim}" in texts["index"]  # after its verdict
    # the study file as it ran, in its <pre>, reads back as the JSON it is
    [definition] = [json.loads(t) for t in texts["hostile"]
                    if t.startswith("{") and "question" in json.loads(t)]
    assert definition["question"] == STUDY["question"]
    assert definition["report"]["names"] == NAMES
