"""Check that a built book works offline: find every remote script, stylesheet, image or font it would load."""

from __future__ import annotations

import os
import re
from html.parser import HTMLParser
from pathlib import Path

_LOADING_RELS = {"stylesheet", "preload", "modulepreload", "prefetch", "icon", "shortcut", "apple-touch-icon",
                 "manifest", "import"}
_REMOTE = re.compile(r"^\s*(?:https?:)?//", re.I)
_CSS_URL = re.compile(r"""(?:url\(\s*['"]?|@import\s+['"])\s*((?:https?:)?//[^'")\s]+)""", re.I)


class _AssetScanner(HTMLParser):
    """Collects, in ``found``, each tag attribute or inline style of one HTML page that loads a remote URL."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.found: list[str] = []
        self._in_style = False

    def handle_starttag(self, tag, attrs):
        a = {k.lower(): (v or "") for k, v in attrs}
        if tag in ("script", "img", "iframe", "embed", "source", "audio", "video", "track", "input"):
            if _REMOTE.match(a.get("src", "")):
                self.found.append(f"<{tag} src={a['src']}>")
        if tag == "link":
            rels = set(a.get("rel", "").lower().split())
            if rels & _LOADING_RELS and _REMOTE.match(a.get("href", "")):
                self.found.append(f"<link rel={a.get('rel')} href={a['href']}>")
        if tag == "object" and _REMOTE.match(a.get("data", "")):
            self.found.append(f"<object data={a['data']}>")
        style = a.get("style", "")
        for url in _CSS_URL.findall(style):
            self.found.append(f"<{tag} style=url({url})>")
        if tag == "style":
            self._in_style = True

    def handle_endtag(self, tag):
        if tag == "style":
            self._in_style = False

    def handle_data(self, data):
        if self._in_style:
            for url in _CSS_URL.findall(data):
                self.found.append(f"<style> url({url})")


def remote_assets(html_dir: str | os.PathLike) -> list[str]:
    """Remote resources the built book would load: ``"page.html: <script src=https://...>"`` lines.

    Scans every ``.html`` file for ``script``/``img``/``iframe``/... ``src`` and loading ``link`` tags
    (stylesheet, preload, icon, ...) whose URL is ``http(s)://`` or protocol-relative, plus ``url()``
    and ``@import`` in inline styles, and every ``.css`` file for remote ``url()``/``@import`` (fonts).
    URLs in plain text, ``<a href>`` links, ``data-*`` attributes and JavaScript strings (such as
    thebe's, which loads only on click) are not requests and are ignored. An empty list means the book
    works offline.
    """
    html_dir = Path(html_dir)
    found: list[str] = []
    for page in sorted(html_dir.rglob("*.html")):
        scanner = _AssetScanner()
        scanner.feed(page.read_text(encoding="utf-8", errors="replace"))
        rel = page.relative_to(html_dir).as_posix()
        found.extend(f"{rel}: {item}" for item in scanner.found)
    for css in sorted(html_dir.rglob("*.css")):
        rel = css.relative_to(html_dir).as_posix()
        text = re.sub(r"/\*.*?\*/", "", css.read_text(encoding="utf-8", errors="replace"), flags=re.S)
        found.extend(f"{rel}: url({url})" for url in _CSS_URL.findall(text))
    return found
