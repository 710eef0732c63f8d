"""One self-contained HTML page: the config, metric tables and the plots embedded as data URIs."""
from __future__ import annotations

import base64
import html
import json
import os
import time
from collections.abc import Mapping, Sequence
from typing import Any

import yaml

_STYLE = """
body { font-family: sans-serif; margin: 2em auto; max-width: 1100px; color: #222; }
table { border-collapse: collapse; margin: 0.5em 0 1.5em; font-size: 0.9em; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: right; }
th { background: #f0f0f0; } td.key { text-align: left; font-weight: bold; } td.text { text-align: left; }
pre { background: #f7f7f7; padding: 1em; overflow-x: auto; font-size: 0.85em; }
figure { margin: 1em 0; } img { max-width: 100%; border: 1px solid #ddd; }
"""


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4f}" if abs(value) < 1e5 else f"{value:.4g}"
    if isinstance(value, (list, dict)):
        return html.escape(json.dumps(value, default=str)[:200])
    return html.escape(str(value))


def _td(value: Any) -> str:
    numeric = isinstance(value, (int, float)) and not isinstance(value, bool)
    return f"<td>{_cell(value)}</td>" if numeric else f"<td class='text'>{_cell(value)}</td>"


def _table(data: Any) -> str:
    """A dict (key: value, or key: dict of columns) or a list of row dicts / a pandas DataFrame."""
    if hasattr(data, "to_dict") and hasattr(data, "columns"):
        data = data.to_dict(orient="records")
    if isinstance(data, Mapping):
        if data and all(isinstance(v, Mapping) for v in data.values()):
            columns = sorted({k for v in data.values() for k in v}, key=str)
            head = "".join(f"<th>{html.escape(str(c))}</th>" for c in columns)
            body = "".join(f"<tr><td class='key'>{html.escape(str(k))}</td>"
                           + "".join(_td(v.get(c, "")) for c in columns) + "</tr>"
                           for k, v in data.items())
            return f"<table><tr><th></th>{head}</tr>{body}</table>"
        body = "".join(f"<tr><td class='key'>{html.escape(str(k))}</td>{_td(v)}</tr>"
                       for k, v in data.items())
        return f"<table>{body}</table>"
    rows = list(data)
    if not rows:
        return "<p>(empty)</p>"
    columns = list(dict.fromkeys(k for r in rows for k in r))
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in columns)
    body = "".join("<tr>" + "".join(_td(r.get(c, "")) for c in columns) + "</tr>" for r in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def write_report(path: str, title: str, *, config: Mapping | None = None, tables: Mapping[str, Any] | None = None,
                 plots: Sequence[str] = (), notes: Sequence[str] = ()) -> str:
    """Writes ``path`` (atomically) and returns it. Plots are PNG paths, embedded as base64."""
    parts = [f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>",
             f"<style>{_STYLE}</style></head><body>", f"<h1>{html.escape(title)}</h1>",
             f"<p>Written {time.strftime('%Y-%m-%d %H:%M:%S')} by deepflash.</p>"]
    for note in notes:
        parts.append(f"<p>{html.escape(note)}</p>")
    for name, data in (tables or {}).items():
        parts.append(f"<h2>{html.escape(name)}</h2>{_table(data)}")
    if plots:
        parts.append("<h2>Plots</h2>")
    for plot in plots:
        with open(plot, "rb") as f:
            encoded = base64.b64encode(f.read()).decode("ascii")
        name = os.path.splitext(os.path.basename(plot))[0]
        parts.append(f"<figure><img alt='{html.escape(name)}' src='data:image/png;base64,{encoded}'>"
                     f"<figcaption>{html.escape(name)}</figcaption></figure>")
    if config is not None:
        parts.append("<h2>Config</h2><pre>" + html.escape(yaml.safe_dump(dict(config), sort_keys=False)) + "</pre>")
    parts.append("</body></html>")
    from deepflash.io import fs

    fs.write_bytes(fs.qualify(path, local=True), "\n".join(parts).encode("utf-8"))
    return path
