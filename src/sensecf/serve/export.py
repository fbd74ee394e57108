"""One intervention (POST /intervention's document) as a one-page printable HTML file."""

from __future__ import annotations

from pathlib import Path

import jinja2

_ENV = jinja2.Environment(loader=jinja2.FileSystemLoader(Path(__file__).parent / "templates"),
                          autoescape=jinja2.select_autoescape(["html"]), undefined=jinja2.StrictUndefined)


def intervention_html(doc: dict, info: dict) -> str:
    """Render the intervention with the features' labels and units (`info` = GET /info)."""
    view = doc["view"]
    changed = {c["feature"]: c for c in view["changes"]}
    rows = [{"label": f["label"], "unit": f["unit"], "current": view["factual"][f["name"]],
             "suggested": view["counterfactual"][f["name"]], "fixed": f["immutable"],
             "change": changed[f["name"]]["change_text"] if f["name"] in changed else ""}
            for f in info["features"]]
    return _ENV.get_template("intervention.html").render(doc=doc, view=view, rows=rows,
                                                         llm=doc.get("llm_narrative"))
