"""Self-contained HTML pages: sections of blocks (notes, tables, figures as embedded PNG data
URIs, preformatted text) rendered with one Jinja2 template (autoescaped), written atomically.
A Content-Security-Policy forbids every fetch: the page opens from a USB stick, offline."""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from pathlib import Path

from jinja2 import Environment, PackageLoader, select_autoescape

from ..io.write import atomic_path

__all__ = ["Block", "Section", "figure", "note", "table", "preformatted", "render_page"]


@dataclass
class Block:
    """One item of a section: ``kind`` is note, table, figure or pre."""

    kind: str
    data: dict = field(default_factory=dict)


@dataclass
class Section:
    id: str
    title: str
    blocks: list[Block]


def note(text: str, level: str = "") -> Block:
    """A sentence; ``level`` ``bad`` or ``warn`` highlights it."""
    return Block("note", {"text": text, "level": level})


def table(columns: list[str], rows: list[list], *, row_classes: list[str] | None = None,
          cell_classes: list[list[str]] | None = None, caption: str = "", links: dict[int, list[str]] | None = None) -> Block:
    """A table; ``row_classes``/``cell_classes`` (``bad``, ``warn``) highlight rows or cells;
    ``links``: column index → one relative URL per row (that cell links to it)."""
    return Block("table", {"columns": columns, "rows": [[str(v) for v in row] for row in rows],
                           "row_classes": row_classes or [""] * len(rows),
                           "cell_classes": cell_classes or [[""] * len(columns) for _ in rows],
                           "caption": caption, "links": links or {}})


def figure(png: bytes, alt: str, caption: str = "") -> Block:
    """A PNG embedded as a data URI."""
    return Block("figure", {"src": "data:image/png;base64," + base64.b64encode(png).decode("ascii"),
                            "alt": alt, "caption": caption or alt})


def preformatted(text: str, caption: str = "") -> Block:
    return Block("pre", {"text": text, "caption": caption})


_ENV = Environment(loader=PackageLoader("pigment_connect.report", "templates"),
                   autoescape=select_autoescape(["html"]), trim_blocks=True, lstrip_blocks=True)


def render_page(path: Path, title: str, sections: list[Section], *, subtitle: str = "",
                nav: list[tuple[str, str]] | None = None) -> Path:
    """Write the page to ``path`` (atomically) and return it."""
    html = _ENV.get_template("page.html").render(title=title, subtitle=subtitle, sections=sections, nav=nav or [])
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        Path(tmp).write_text(html, encoding="utf-8")
    return path
