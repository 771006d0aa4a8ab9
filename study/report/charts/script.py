"""The JavaScript a page with charts runs, as one data: URI: our `loader.js` bundled with the
Vega, Vega-Lite and Vega-Embed it uses by the `vl-convert-python` wheel (its
`javascript_bundle(snippet)`: no download, no CDN; the snippet sees `vegaEmbed`, and the Vega
views it returns; `vega` itself is null in vl-convert 1.9's bundle, so the loader uses none of
its functions). A data: URI rather than inline text: the page template writes it as an attribute
value, escaped like every other, and no study text can ever end the script early.
"""

from __future__ import annotations

import base64
import functools
from importlib import resources


@functools.cache
def uri() -> str:
    import vl_convert  # the wheel's bundler; 1 s, once per process

    loader = resources.files("study.report.charts").joinpath("loader.js").read_text("utf-8")
    code = vl_convert.javascript_bundle(loader).encode("utf-8")
    return "data:text/javascript;base64," + base64.b64encode(code).decode("ascii")


def versions() -> str:
    """Which Vega libraries a page runs, for the report's index."""
    import vl_convert

    return (f"Vega {vl_convert.get_vega_version()}, Vega-Lite "
            f"{vl_convert.get_vegalite_versions()[-1]}, Vega-Embed "
            f"{vl_convert.get_vega_embed_version()} (vl-convert-python)")
