"""Self-contained HTML for the reports: escaped text, tables, inline PNG images (data: URIs),
and the page around them. No script, no stylesheet or font from the network: a report opens
from a laptop's disk, a bucket's download or an e-mail attachment alike."""

from __future__ import annotations

import base64
import html
import io
import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
from PIL import Image

STYLE = """
body{font-family:system-ui,-apple-system,'Segoe UI',sans-serif;margin:2em auto;max-width:72em;padding:0 1em;color:#222}
h1{margin-bottom:.2em} h2{border-bottom:1px solid #ccc;padding-bottom:.2em;margin-top:2em}
table{border-collapse:collapse;margin:.5em 0} td,th{border:1px solid #ddd;padding:.25em .6em;text-align:left;
vertical-align:top;font-size:.92em} th{background:#f4f4f4} .muted{color:#777} .num{text-align:right}
.strip{display:flex;flex-wrap:wrap;gap:.6em;margin:.6em 0;padding:.4em;border:1px solid #eee}
figure{margin:0;width:7.5em;text-align:center} figure img{width:96px;height:96px;image-rendering:pixelated;
border:1px solid #ccc;object-fit:contain;background:#000} figcaption{font-size:.72em;word-break:break-all}
.bad{width:96px;height:96px;display:flex;align-items:center;justify-content:center;background:#fee;
border:1px solid #c99;font-size:.7em;overflow:hidden} pre{background:#f7f7f7;padding:.8em;overflow:auto;font-size:.85em}
"""


def escape(value: Any) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def png_data_uri(png: bytes) -> str:
    """PNG bytes as a `data:` URI, so that the page embeds the image itself."""
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def pixels_png(pixels: np.ndarray) -> bytes:
    """(H, W, C) uint8 pixels as PNG bytes."""
    buffer = io.BytesIO()
    Image.fromarray(pixels[:, :, 0] if pixels.shape[2] == 1 else pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def image_tag(png: bytes, alt: str, style: str = "") -> str:
    return f'<img src="{png_data_uri(png)}" alt="{escape(alt)}"{f" style={chr(34)}{style}{chr(34)}" if style else ""}>'


def table(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    """An HTML table; numbers are right-aligned."""
    head = "".join(f"<th>{escape(cell)}</th>" for cell in header)
    body = "".join("<tr>" + "".join(
        f'<td class="num">{escape(_number(cell))}</td>' if isinstance(cell, (int, float)) and not isinstance(cell, bool)
        else f"<td>{escape(cell)}</td>" for cell in row) + "</tr>" for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def raw_table(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    """A table whose first cell of each row is HTML already (a link); the others are escaped."""
    head = "".join(f"<th>{escape(cell)}</th>" for cell in header)
    body = "".join(f"<tr><td>{row[0]}</td>" + "".join(f"<td>{escape(cell)}</td>" for cell in row[1:]) + "</tr>"
                   for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def mapping_table(values: Mapping[str, Any]) -> str:
    """A two-column table of a flat mapping (nested values as compact JSON)."""
    return table(("", "value"), [(key, value if isinstance(value, (int, float, str, bool)) or value is None
                                  else json.dumps(value, default=str)) for key, value in values.items()])


def _number(value: int | float) -> str:
    if isinstance(value, int):
        return f"{value:,}"
    return f"{value:.4g}"


def figure(thumbnail: bytes | None, caption: str, reason: str | None = None) -> str:
    """One thumbnail with its caption, or a red box with the reason it could not be shown."""
    if thumbnail is None:
        return f'<figure><div class="bad">not shown</div><figcaption>{escape(caption)}<br>{escape(reason)}</figcaption></figure>'
    return f"<figure>{image_tag(thumbnail, caption)}<figcaption>{escape(caption)}</figcaption></figure>"


def page(title: str, body: Sequence[str]) -> str:
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<meta name=\"viewport\" content=\"width=device-width\"><title>{escape(title)}</title>"
            f"<style>{STYLE}</style></head><body>\n" + "\n".join(body) + "\n</body></html>\n")
