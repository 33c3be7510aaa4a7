"""Open every page of a built book in headless Chromium and check what a reader would see.

:func:`check_book` drives Debian's ``chromium`` through Selenium and ``chromedriver`` and reports, per page:
cell outputs that are errors or tracebacks, Python object reprs in the text (an output or glued value that
did not render), images that did not load (natural width 0), tables wider than the
text column that do not scroll inside it, internal links whose file or anchor does not exist; then it runs a
search and saves a screenshot of the front page. Nothing is
fetched from the network: pages are opened as ``file://`` URLs.
"""

from __future__ import annotations

import os
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote, urlparse

from .errors import DnalmInputError

CHROMIUM_CANDIDATES = ("chromium", "chromium-browser", "google-chrome")
#: Cell outputs myst-nb renders for errors and tracebacks.
ERROR_SELECTOR = "div.output.error, div.output.traceback, .cell_output .traceback"
#: Words that make a stderr output a problem (progress bars on stderr are fine).
STDERR_PROBLEMS = ("Traceback", "Error", "Warning", "warn(")
#: A Python object's default repr ("<IPython.core.display.Markdown object>", "<foo.Bar object at 0x7f..>"): what
#: a page shows where a glue role or an output got an object it cannot render (e.g. {glue:text} of Markdown).
OBJECT_REPR_RE = re.compile(r"<(?:[A-Za-z_]\w*\.)+[A-Za-z_]\w* object(?: at 0x[0-9a-fA-F]+)?>")


def object_reprs(text: str) -> list[str]:
    """The distinct Python object reprs (:data:`OBJECT_REPR_RE`) in a page's visible text, in order of appearance."""
    return list(dict.fromkeys(OBJECT_REPR_RE.findall(text)))


@dataclass
class BrowserReport:
    """What :func:`check_book` found. pages: checked page paths (relative to the HTML folder); images: images
    seen; problems: one line per problem (empty = all good); search_hits: results for the query;
    screenshot: the front-page PNG."""

    pages: list[str] = field(default_factory=list)
    images: int = 0
    links: int = 0
    problems: list[str] = field(default_factory=list)
    search_hits: int = 0
    screenshot: Path | None = None


def find_browser() -> tuple[str, str]:
    """(chromium binary, chromedriver) on PATH; DnalmInputError naming the Debian packages if missing."""
    binary = next((shutil.which(c) for c in CHROMIUM_CANDIDATES if shutil.which(c)), None)
    driver = shutil.which("chromedriver")
    if not binary or not driver:
        raise DnalmInputError(
            "the browser test needs Chromium and its driver: install them with "
            "`apt-get install -y chromium chromium-driver` (Debian) or put `chromium` and `chromedriver` on PATH."
        )
    return binary, driver


def _driver(width: int = 1400, height: int = 1000):
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    binary, driver = find_browser()
    opts = Options()
    opts.binary_location = binary
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                f"--window-size={width},{height}", "--allow-file-access-from-files"):
        opts.add_argument(arg)
    return webdriver.Chrome(service=Service(driver), options=opts)


#: [table width, text column width] in CSS pixels for each table of the page's article that is wider than the
#: column and has no scrolling container (overflow-x auto/scroll, no wider than the column) inside the article;
#: such a table widens the whole page instead of scrolling in place. Tables in a closed <details> have width 0.
WIDE_TABLES_JS = """
return Array.from(document.querySelectorAll('article table')).flatMap(t => {
  const article = t.closest('article');
  const limit = article.clientWidth + 1;
  if (t.getBoundingClientRect().width <= limit) return [];
  for (let e = t.parentElement; e && e !== article; e = e.parentElement) {
    const o = getComputedStyle(e).overflowX;
    if ((o === 'auto' || o === 'scroll') && e.getBoundingClientRect().width <= limit) return [];
  }
  return [[Math.round(t.getBoundingClientRect().width), article.clientWidth]];
});
"""

_ID_RE = re.compile(r"""\sid=["']([^"']+)["']""")


def _ids(path: Path, cache: dict) -> set[str]:
    if path not in cache:
        cache[path] = set(_ID_RE.findall(path.read_text(errors="replace"))) if path.is_file() else set()
    return cache[path]


def _html_pages(html_dir: Path) -> list[Path]:
    skip = {"genindex.html", "search.html"}
    return sorted(p for p in html_dir.rglob("*.html")
                  if p.name not in skip and "_static" not in p.parts and "_sources" not in p.parts)


def check_book(html_dir: str | os.PathLike, *, query: str = "overlapping", screenshot: str | os.PathLike | None = None,
               timeout: float = 30.0) -> BrowserReport:
    """Open every HTML page of ``html_dir`` in headless Chromium and check it (see the module docstring).

    ``query``: a word that must find results with the book's search page; ``screenshot``: where to save a
    PNG of the front page (default ``<html_dir>/../screenshots/front_page.png``).
    """
    from selenium.webdriver.support.ui import WebDriverWait

    html_dir = Path(html_dir).resolve()
    if not (html_dir / "index.html").is_file():
        raise DnalmInputError(f"{html_dir} holds no built book (index.html missing): run `dnalm-book build` first.")
    report = BrowserReport()
    ids_cache: dict = {}
    d = _driver()
    try:
        for page in _html_pages(html_dir):
            rel = page.relative_to(html_dir).as_posix()
            report.pages.append(rel)
            d.get(page.as_uri())
            WebDriverWait(d, timeout).until(lambda dr: dr.execute_script("return document.readyState") == "complete")
            errors = d.execute_script(f"return document.querySelectorAll({ERROR_SELECTOR!r}).length")
            text = d.execute_script("return document.body.innerText")
            stderr = d.execute_script("return Array.from(document.querySelectorAll('div.output.stderr')).map(e => e.textContent)")
            bad = [t for t in stderr if any(w in t for w in STDERR_PROBLEMS)]
            if errors or bad or "Traceback (most recent call last)" in text:
                first = (bad[0].strip().splitlines() or [""])[0][:120] if bad else ""
                report.problems.append(f"{rel}: {errors} error output(s), {len(bad)} warning/error stream(s) {first!r}")
            report.problems += [f"{rel}: a Python object's repr shows instead of its content: {r}" for r in object_reprs(text)]
            images = d.execute_script(
                "return Array.from(document.images).map(i => [i.getAttribute('src'), i.complete && i.naturalWidth > 0])")
            report.images += len(images)
            report.problems += [f"{rel}: image {src} did not load" for src, ok in images if not ok]
            report.problems += [f"{rel}: a table {w} px wide runs past the {col} px text column instead of scrolling "
                                "inside it" for w, col in d.execute_script(WIDE_TABLES_JS)]
            hrefs = d.execute_script("return Array.from(document.querySelectorAll('a[href]')).map(a => a.href)")
            for href in hrefs:
                url = urlparse(href)
                if url.scheme != "file":
                    continue  # external links are not followed (the book is read offline)
                report.links += 1
                target = Path(unquote(url.path))
                if not target.exists():
                    report.problems.append(f"{rel}: link to missing {target.relative_to(html_dir) if target.is_relative_to(html_dir) else target}")
                elif url.fragment and target.suffix == ".html" and unquote(url.fragment) not in _ids(target, ids_cache):
                    report.problems.append(f"{rel}: link to missing anchor #{url.fragment} in {target.name}")
        d.get((html_dir / "search.html").as_uri() + f"?q={query}")
        count = "return document.querySelectorAll('#search-results ul.search li').length"
        try:
            WebDriverWait(d, timeout).until(lambda dr: dr.execute_script(count) > 0)
        except Exception:
            pass
        report.search_hits = int(d.execute_script(count))
        if report.search_hits == 0:
            report.problems.append(f"search.html: searching {query!r} found nothing")
        shot = Path(screenshot) if screenshot else html_dir.parent / "screenshots" / "front_page.png"
        shot.parent.mkdir(parents=True, exist_ok=True)
        d.get((html_dir / "index.html").as_uri())
        WebDriverWait(d, timeout).until(lambda dr: dr.execute_script("return document.readyState") == "complete")
        d.save_screenshot(str(shot))
        report.screenshot = shot
    finally:
        d.quit()
    return report
