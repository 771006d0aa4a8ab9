"""The JavaScript a page with charts runs, as one data: URI: Vega, Vega-Lite and Vega-Embed
from the `vl-convert-python` wheel (its `javascript_bundle`: no download, no CDN), then our
`loader.js`. A data: URI rather than inline text: the page template writes it as an attribute
value, escaped like every other, and no study text can ever end the script early.
"""

from __future__ import annotations

import base64
import functools
from importlib import resources


@functools.cache
def uri() -> str:
    import vl_convert  # the wheel's bundler; 1 s, once per process

    bundle = vl_convert.javascript_bundle()
    loader = resources.files("study.report.charts").joinpath("loader.js").read_text("utf-8")
    code = f"{bundle}\n{loader}".encode("utf-8")
    return "data:text/javascript;base64," + base64.b64encode(code).decode("ascii")


def versions() -> str:
    """Which Vega libraries a page runs, for the report's index."""
    import vl_convert

    return (f"Vega {vl_convert.get_vega_version()}, Vega-Lite "
            f"{vl_convert.get_vegalite_versions()[-1]}, Vega-Embed "
            f"{vl_convert.get_vega_embed_version()} (vl-convert-python)")
