"""The website as readers use it: every page of ``_toc.yml`` in a real browser.

Debian's chromium, driven by Playwright, reads the built site served on 127.0.0.1 by a
local HTTP server. Each page must load with everything it uses (HTTP 200 for the page and
every local link, image, script and stylesheet), without a JavaScript error, without a
single request leaving 127.0.0.1 (requests elsewhere are recorded and aborted), with its
math typeset by the locally served MathJax and its figures loaded. The interactions a
reader relies on are exercised: sidebar navigation, previous/next links, search, dark
mode, the page's .ipynb download, the launch links and the assignment download.

A screenshot of each page's first screen is saved under ``test-artifacts/screenshots/``.
"""

from __future__ import annotations

import functools
import http.server
import json
import os
import re
import shutil
import threading
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import nbformat
import pytest
import yaml

from tests.book.conftest import BOOK_BUILD_TIMEOUT, ROOT, book_root, toc_pages

CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SCREENSHOTS = ROOT / "test-artifacts" / "screenshots"
VIEWPORT = {"width": 1280, "height": 800}
SOLUTION_MARKERS = ("### BEGIN SOLUTION", "### END SOLUTION", "BEGIN HIDDEN TESTS", "END HIDDEN TESTS", "BEGIN MARK SCHEME")


def _chromium() -> str | None:
    """Debian's chromium (``CHROMIUM`` overrides the path)."""
    for candidate in (os.environ.get("CHROMIUM"), "/usr/bin/chromium", shutil.which("chromium")):
        if candidate and Path(candidate).is_file() and os.access(candidate, os.X_OK):
            return candidate
    return None


def _has_playwright() -> bool:
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return False
    return True


CHROMIUM = _chromium()
pytestmark = [
    pytest.mark.browser,
    pytest.mark.slow,
    pytest.mark.timeout(BOOK_BUILD_TIMEOUT),  # the first test here may build the book
    pytest.mark.skipif(CHROMIUM is None, reason="no chromium at /usr/bin/chromium: `make chromium` (as root) installs Debian's"),
    pytest.mark.skipif(not _has_playwright(), reason="the playwright Python package is not installed (requirements.txt)"),
]

BOOK = book_root()
PAGES = toc_pages(BOOK)


# --------------------------------------------------------------------------- sources


def source_of(page: str) -> Path:
    for suffix in (".md", ".ipynb"):
        path = BOOK / f"{page}{suffix}"
        if path.is_file():
            return path
    raise FileNotFoundError(f"{page}: no .md or .ipynb source in {BOOK}")


def _front_matter(text: str) -> dict:
    match = re.match(r"---\n(.*?)\n---\n", text, re.S)
    return (yaml.safe_load(match.group(1)) or {}) if match else {}


def is_notebook_page(page: str) -> bool:
    """MyST-NB treats a page as a notebook when it has a kernelspec (the MyST notebook
    header of CONTRIBUTING.md), and only notebooks get an .ipynb download."""
    path = source_of(page)
    if path.suffix == ".ipynb":
        return True
    return "kernelspec" in _front_matter(path.read_text(encoding="utf-8"))


_FENCE = re.compile(r"^(?P<fence>`{3,}|~{3,})(?P<info>[^\n]*)\n.*?^(?P=fence)[ \t]*$", re.M | re.S)
_MATH = re.compile(r"\$\$|(?<![\\$\w])\$(?=[^\s$])[^$\n]*?(?<=[^\s\\$])\$(?![\w$])|\{math\}|\\begin\{(equation|align)")


def source_has_math(page: str) -> bool:
    """Does the page's Markdown (outside code) contain $...$, $$...$$ or {math}?"""
    path = source_of(page)
    text = path.read_text(encoding="utf-8")
    if path.suffix == ".ipynb":
        nb = nbformat.reads(text, as_version=4)
        text = "\n\n".join(c.source for c in nb.cells if c.cell_type == "markdown")
    text = re.sub(r"^---\n.*?\n---\n", "", text, count=1, flags=re.S)
    text = _FENCE.sub(lambda m: m.group(0) if m.group("info").strip().startswith("{math}") else "", text)
    text = re.sub(r"(`+).*?\1", "", text, flags=re.S)
    return bool(_MATH.search(text))


def source_code_cells(page: str) -> list[str]:
    """The code of the page's code cells, as MyST-NB reads them."""
    from myst_nb.core.read import read_myst_markdown_notebook

    path = source_of(page)
    text = path.read_text(encoding="utf-8")
    nb = nbformat.reads(text, as_version=4) if path.suffix == ".ipynb" else read_myst_markdown_notebook(text)
    return [c.source.strip() for c in nb.cells if c.cell_type == "code"]


# Code that draws: a page whose code cells do this must show at least one image.
_DRAWS = re.compile(r"\bplt\.(subplots|figure|plot|imshow|show|hist|scatter|bar)\(|\bshow_images\(|\bshow_heatmaps\(")


def source_draws(page: str) -> bool:
    return any(_DRAWS.search(code) for code in source_code_cells(page))


def assignments() -> list[str]:
    return sorted(p.parent.name for p in (BOOK / "solutions").glob("*/*.ipynb") if p.stem == p.parent.name)


# --------------------------------------------------------------------------- fixtures


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format, *args):  # noqa: A002
        pass


@pytest.fixture(scope="session")
def site(built_site: Path):
    """Base URL of ``_build/html`` served on 127.0.0.1 (random free port), e.g.
    ``http://127.0.0.1:43121/``."""
    handler = functools.partial(_QuietHandler, directory=str(built_site / "_build" / "html"))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, name="book-server", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture(scope="session")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


class Reader:
    """A browser tab that records what the page asks for and what goes wrong."""

    def __init__(self, browser, site: str):
        self.site = site
        self.context = browser.new_context(viewport=VIEWPORT, accept_downloads=True, color_scheme="light")
        self.requests: list[str] = []
        self.outside: list[str] = []
        self.failed: list[str] = []
        self.errors: list[str] = []
        self.context.route("**/*", self._route)
        self.page = self.context.new_page()
        self.page.on("request", lambda r: self.requests.append(r.url))
        self.page.on("response", self._response)
        self.page.on("requestfailed", self._failed)
        self.page.on("console", self._console)
        self.page.on("pageerror", lambda exc: self.errors.append(f"uncaught: {exc}"))

    def is_local(self, url: str) -> bool:
        return url.startswith(self.site) or url.startswith(("data:", "blob:"))

    def _route(self, route):
        url = route.request.url
        if self.is_local(url):
            route.continue_()
        else:  # never let the test reach the internet; the request is a failure either way
            self.outside.append(url)
            route.abort()

    def _response(self, response):
        if response.status >= 400:
            self.failed.append(f"HTTP {response.status} {response.url}")

    def _failed(self, request):
        if self.is_local(request.url):
            self.failed.append(f"{request.failure} {request.url}")

    def _console(self, message):
        if message.type == "error":
            self.errors.append(f"console: {message.text} ({message.location.get('url', '')})")

    def open(self, path: str):
        response = self.page.goto(urllib.parse.urljoin(self.site, path), wait_until="load")
        wait_for_mathjax(self.page)
        self.page.wait_for_load_state("networkidle")
        return response

    def assert_clean(self):
        assert not self.outside, f"requests left 127.0.0.1: {self.outside}"
        assert not self.failed, f"failed requests: {self.failed}"
        assert not self.errors, f"JavaScript errors: {self.errors}"

    def close(self):
        self.context.close()


@pytest.fixture
def reader(browser, site):
    tab = Reader(browser, site)
    yield tab
    tab.close()


# --------------------------------------------------------------------------- helpers


def page_url(site: str, page: str) -> str:
    return urllib.parse.urljoin(site, f"{page}.html")


def docname(site: str, url: str) -> str | None:
    """``chapters/softmax/index`` for a URL of the site, None for other URLs."""
    url = urllib.parse.urldefrag(url)[0]
    if not url.startswith(site) or not url.endswith(".html"):
        return None
    return url[len(site):-len(".html")]


@functools.cache
def fetch(url: str) -> tuple[int, bytes]:
    """(HTTP status, body) of a URL of the local site (cached: the site does not change)."""
    try:
        with urllib.request.urlopen(url, timeout=30) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as err:
        return err.code, b""


def wait_for_mathjax(page) -> None:
    """Wait until MathJax (when the page loads it) has typeset everything."""
    page.wait_for_function(
        "() => !document.querySelector('script[src*=\"mathjax\"]') || "
        "(window.MathJax && MathJax.startup && MathJax.startup.promise)",
        timeout=30_000,
    )
    page.evaluate("() => window.MathJax && MathJax.startup && MathJax.startup.promise ? MathJax.startup.promise.then(() => true) : true")


UNRENDERED_TEX = re.compile(r"\$\$|\\frac|\\begin\{|\\\(|\\\[|\\mathbf")

_VISIBLE_TEXT_JS = """() => {
  const root = document.querySelector('article.bd-article') || document.body;
  const skip = 'pre, code, script, style, mjx-container, .highlight, .cell_input, kbd, samp, textarea';
  const walker = document.createTreeWalker(root, NodeFilter.SHOW_TEXT);
  const out = [];
  for (let node = walker.nextNode(); node; node = walker.nextNode()) {
    const el = node.parentElement;
    if (!el || el.closest(skip)) continue;
    if (!el.getClientRects().length) continue;  // not displayed
    out.push(node.textContent);
  }
  return out.join(' ');
}"""

_IMAGES_JS = """async () => {
  const imgs = [...document.querySelectorAll('img')];
  imgs.forEach(img => { img.loading = 'eager'; });
  await Promise.all(imgs.map(img => img.complete ? null : new Promise(done => {
    img.addEventListener('load', done); img.addEventListener('error', done); setTimeout(done, 15000);
  })));
  return imgs.map(img => ({src: img.currentSrc || img.src, width: img.naturalWidth, complete: img.complete,
                           figure: !!img.closest('article.bd-article')}));
}"""

_RESOURCES_JS = """() => {
  const out = [];
  document.querySelectorAll('a[href]').forEach(a => out.push(['a', a.href]));
  document.querySelectorAll('img[src], script[src], iframe[src], source[src], video[src], audio[src]')
    .forEach(el => out.push([el.tagName.toLowerCase(), el.src]));
  document.querySelectorAll('link[href]').forEach(l => out.push(['link ' + l.rel, l.href]));
  return out;
}"""


# --------------------------------------------------------------------------- every page


@pytest.mark.parametrize("page", PAGES)
def test_page_renders_everything_locally(reader, site, page):
    """Loads with all it uses from 127.0.0.1, no JS error, math typeset, figures loaded."""
    response = reader.open(f"{page}.html")
    assert response is not None and response.status == 200, f"{page}.html: HTTP {response and response.status}"
    assert reader.page.locator("article.bd-article h1").count() >= 1, f"{page}: no title in the article"

    # Every local link, image, script and stylesheet the page uses answers 200, and
    # every in-page anchor of a local link exists. Resources (not links) must be local.
    problems = []
    for kind, url in reader.page.evaluate(_RESOURCES_JS):
        if url.startswith(("mailto:", "javascript:", "tel:")):
            continue
        if not reader.is_local(url):
            if kind != "a":
                problems.append(f"{kind} from outside the site: {url}")
            continue
        if url.startswith(("data:", "blob:")):
            continue
        target, fragment = urllib.parse.urldefrag(url)
        status, body = fetch(target)
        if status != 200:
            problems.append(f"{kind} {url}: HTTP {status}")
        elif kind == "a" and fragment and target.endswith(".html"):
            anchor = urllib.parse.unquote(fragment)
            if f'id="{anchor}"' not in body.decode("utf-8", "replace"):
                problems.append(f"link to a missing anchor: {url}")
    assert not problems, f"{page}:\n" + "\n".join(sorted(set(problems)))

    # Math: typeset by MathJax wherever the source has math, no raw TeX left visible.
    containers = reader.page.locator("mjx-container").count()
    if source_has_math(page):
        assert containers > 0, f"{page}: the source has math but the page shows no MathJax output"
    untypeset = reader.page.evaluate(
        "() => [...document.querySelectorAll('.math')].filter(e => !e.querySelector('mjx-container'))"
        ".map(e => e.textContent.trim().slice(0, 80))"
    )
    assert not untypeset, f"{page}: math left as TeX: {untypeset[:5]}"
    raw = sorted(set(UNRENDERED_TEX.findall(reader.page.evaluate(_VISIBLE_TEXT_JS))))
    assert not raw, f"{page}: raw LaTeX visible in the text: {raw}"

    # Figures: every image loaded, with real pixels; no figure printed as its repr.
    images = reader.page.evaluate(_IMAGES_JS)
    broken = [img["src"] for img in images if img["figure"] and not (img["complete"] and img["width"] > 0)]
    assert not broken, f"{page}: figures that did not load: {broken}"
    if source_draws(page):
        assert any(img["figure"] for img in images), f"{page}: its code draws figures but the page shows none"
    outputs = " ".join(reader.page.locator(".cell_output").all_inner_texts())
    assert not re.search(r"<Figure size \d+x\d+ with \d+ Axes>", outputs), f"{page}: a figure shows as text, not as an image"

    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    name = page.replace("/", "__")
    reader.page.screenshot(path=SCREENSHOTS / f"{name}.png")
    figures = reader.page.locator("article.bd-article .cell_output img")
    if figures.count():  # the first figure too: it is rarely on the first screen
        figures.first.scroll_into_view_if_needed()
        figures.first.screenshot(path=SCREENSHOTS / f"{name}--figure.png")
    reader.assert_clean()


@pytest.mark.parametrize("page", PAGES)
def test_previous_and_next_links_follow_the_table_of_contents(reader, site, page):
    i = PAGES.index(page)
    reader.open(f"{page}.html")
    for selector, expected in (("a.left-prev", PAGES[i - 1] if i > 0 else None),
                               ("a.right-next", PAGES[i + 1] if i + 1 < len(PAGES) else None)):
        links = reader.page.locator(f".prev-next-area {selector}")
        if expected is None:
            assert links.count() == 0, f"{page}: unexpected {selector}"
            continue
        assert links.count() == 1, f"{page}: no {selector} link (expected {expected})"
        href = links.first.evaluate("a => a.href")
        assert docname(site, href) == expected, f"{page}: {selector} goes to {href}, expected {expected}"
    reader.assert_clean()


@pytest.mark.parametrize("page", PAGES)
def test_page_downloads_as_notebook(reader, site, page):
    """The download menu offers the page as an .ipynb, which is a valid, executed notebook."""
    path = source_of(page)
    assert is_notebook_page(page), (
        f"{path.relative_to(BOOK)} has no MyST notebook header (kernelspec), so its download menu "
        "offers no .ipynb: start the page with the header from CONTRIBUTING.md"
    )
    reader.open(f"{page}.html")
    menu = reader.page.locator("button[aria-label='Download this page']")
    assert menu.count() == 1, f"{page}: no download menu"
    menu.click()
    link = reader.page.locator("a.btn-download-notebook-button")
    link.wait_for(state="visible", timeout=5_000)
    assert link.inner_text().strip() == ".ipynb"
    url = link.evaluate("a => a.href")
    status, body = fetch(url)
    assert status == 200, f"{page}: {url} answers HTTP {status}"
    nb = nbformat.reads(body.decode("utf-8"), as_version=4)
    nbformat.validate(nb)
    assert nb.metadata.get("kernelspec", {}).get("name"), f"{page}: the downloaded notebook has no kernelspec"
    # It is this page: the same code cells as the source, with the outputs the page shows
    # (also when the page came from jupyter-cache: see _ext/notebook_downloads.py).
    # First the cell that installs `lib` outside the course's environment (Colab, a copy).
    assert nb.cells[0].metadata.get("tags") == ["course-setup"], f"{page}: the download has no setup cell first"
    assert 'find_spec("lib.data") is None' in nb.cells[0].source
    cells = [c.source.strip() for c in nb.cells[1:] if c.cell_type == "code"]
    expected = source_code_cells(page)
    assert cells == expected, f"{page}: the downloaded notebook's code cells differ from the page's source"
    shown = reader.page.locator(".cell_output").count()
    kept = sum(1 for c in nb.cells if c.cell_type == "code" and c.get("outputs"))
    assert (kept > 0) == (shown > 0), f"{page}: the page shows {shown} outputs, the download has {kept} cells with outputs"
    reader.assert_clean()


@pytest.mark.parametrize("page", PAGES)
def test_launch_links(reader, site, page):
    """Notebook pages offer the launch services of _config.yml (links only, never loaded)."""
    if not is_notebook_page(page):
        pytest.skip(f"{page} is not a notebook page (no kernelspec): no launch buttons")
    config = yaml.safe_load((BOOK / "_config.yml").read_text()).get("launch_buttons", {})
    expected = {"Binder": config.get("binderhub_url"), "JupyterHub": config.get("jupyterhub_url"),
                "Colab": config.get("colab_url")}
    reader.open(f"{page}.html")
    reader.page.locator("button[aria-label='Launch interactive content']").click()
    reader.page.locator(".dropdown-launch-buttons .dropdown-menu").wait_for(state="visible", timeout=5_000)
    links = reader.page.evaluate(
        "() => [...document.querySelectorAll('.dropdown-launch-buttons a')].map(a => [a.innerText.trim(), a.href])"
    )
    offered = dict(links)
    for service, base in expected.items():
        if base:
            assert service in offered, f"{page}: no {service} launch link ({links})"
            assert offered[service].startswith(base.rstrip("/")), offered[service]
            assert f"{page}.md" in urllib.parse.unquote(offered[service]) or f"{page}.ipynb" in offered[service]
    if expected["Colab"]:
        # Colab opens the page's notebook from the branch the book workflow publishes it on:
        # the notebook of the download menu, which the site holds at _sources/<page>.ipynb.
        branch = yaml.safe_load((BOOK / "_config.yml").read_text())["sphinx"]["config"]["colab_notebooks_branch"]
        assert offered["Colab"].endswith(f"/blob/{branch}/{page}.ipynb"), offered["Colab"]
        status, body = fetch(f"{site}_sources/{page}.ipynb")
        assert status == 200, f"{page}: no _sources/{page}.ipynb to publish for Colab"
        assert nbformat.reads(body.decode("utf-8"), as_version=4).cells[0].metadata.get("tags") == ["course-setup"]
    reader.assert_clean()


# --------------------------------------------------------------------------- interactions


def test_sidebar_lists_every_page_and_navigates(reader, site):
    reader.open(f"{PAGES[0]}.html")
    hrefs = reader.page.evaluate("() => [...document.querySelectorAll('nav.bd-docs-nav a.reference')].map(a => a.href)")
    listed = {docname(site, h) for h in hrefs} - {None}
    missing = [p for p in PAGES[1:] if p not in listed]
    assert not missing, f"pages missing from the sidebar: {missing}"

    # A chapter from the sidebar, then a section of it from that chapter's open sidebar.
    chapter = reader.page.locator("nav.bd-docs-nav li.toctree-l1 > a.reference").nth(1)
    target = docname(site, chapter.evaluate("a => a.href"))
    chapter.click()
    reader.page.wait_for_load_state("load")
    assert docname(site, reader.page.url) == target
    sections = reader.page.locator("nav.bd-docs-nav li.toctree-l2 > a.reference")
    if sections.count():
        section = sections.first
        target = docname(site, section.evaluate("a => a.href"))
        section.click()
        reader.page.wait_for_load_state("load")
        assert docname(site, reader.page.url) == target
    wait_for_mathjax(reader.page)
    reader.assert_clean()


def test_next_link_navigates(reader, site):
    if len(PAGES) < 2:
        pytest.skip("one page only")
    reader.open(f"{PAGES[0]}.html")
    reader.page.locator(".prev-next-area a.right-next").click()
    reader.page.wait_for_load_state("load")
    assert docname(site, reader.page.url) == PAGES[1]
    reader.page.locator(".prev-next-area a.left-prev").click()
    reader.page.wait_for_load_state("load")
    assert docname(site, reader.page.url) == PAGES[0]
    wait_for_mathjax(reader.page)
    reader.assert_clean()


def _search_results(reader) -> list[str]:
    reader.page.wait_for_function(
        "() => { const s = document.querySelector('#search-results .search-summary, #search-results p');"
        " return s && /found|did not match/i.test(s.innerText); }",
        timeout=30_000,
    )
    return reader.page.evaluate("() => [...document.querySelectorAll('#search-results li a')].map(a => a.href)")


def test_search_finds_the_softmax_chapter(reader, site):
    if not any(p.startswith("chapters/softmax/") for p in PAGES):
        pytest.skip("no softmax chapter in _toc.yml")
    reader.open("search.html?q=softmax")
    found = {docname(site, h) for h in _search_results(reader)}
    assert any(p and p.startswith("chapters/softmax/") for p in found), f"search for softmax found {found}"

    # The same from a page, the way readers search: the search dialog (Ctrl+K), Enter.
    reader.open(f"{PAGES[0]}.html")
    reader.page.keyboard.press("Control+k")
    box = reader.page.locator("#pst-search-dialog input[name='q']")
    box.wait_for(state="visible", timeout=5_000)
    box.fill("softmax")
    box.press("Enter")
    reader.page.wait_for_url(re.compile(r"search\.html\?q=softmax"))
    found = {docname(site, h) for h in _search_results(reader)}
    assert any(p and p.startswith("chapters/softmax/") for p in found), f"search dialog for softmax found {found}"
    reader.assert_clean()


def test_dark_mode_toggle(reader, site):
    page = PAGES[1] if len(PAGES) > 1 else PAGES[0]
    reader.open(f"{page}.html")
    theme = lambda: reader.page.evaluate("() => document.documentElement.dataset.theme")  # noqa: E731
    background = lambda: reader.page.evaluate("() => getComputedStyle(document.body).backgroundColor")  # noqa: E731
    assert theme() == "light"
    light_background = background()
    button = reader.page.locator("button.theme-switch-button").first
    for _ in range(3):  # the button cycles through auto / light / dark
        button.click()
        if theme() == "dark":
            break
    assert theme() == "dark", "the colour-mode button never switched data-theme to dark"
    assert background() != light_background, "data-theme is dark but the page did not change colour"
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    reader.page.screenshot(path=SCREENSHOTS / f"{page.replace('/', '__')}--dark.png")
    reader.open(f"{page}.html")  # the choice is remembered on the next page load
    assert theme() == "dark"
    reader.assert_clean()


@pytest.mark.parametrize("name", assignments() or ["(none)"])
def test_chapter_links_the_student_notebook(reader, site, name):
    """Some page links release/<name>/<name>.ipynb, generated at build time, without solutions."""
    if name == "(none)":
        pytest.skip("no assignment in solutions/")
    links = []
    for page in PAGES:
        status, body = fetch(page_url(site, page))
        for href in re.findall(r'href="([^"]*_downloads/[^"]*/' + re.escape(name) + r'\.ipynb)"', body.decode("utf-8", "replace")):
            links.append((page, urllib.parse.urljoin(page_url(site, page), href)))
    chapter = f"chapters/{name}/index"
    where = f"{chapter}.md" if chapter in PAGES else f"its chapter (no {chapter} in _toc.yml yet)"
    assert links, (
        f"no page links the student notebook {name}.ipynb: add to {where} the line\n"
        f"{{download}}`Download the assignment notebook, {name}.ipynb <../../release/{name}/{name}.ipynb>`"
    )

    page, url = links[0]
    reader.open(f"{page}.html")
    link = reader.page.locator(f"a.download[href$='/{name}.ipynb']").first
    link.scroll_into_view_if_needed()
    with reader.page.expect_download() as download:
        link.click()
    text = Path(download.value.path()).read_text(encoding="utf-8")
    assert download.value.suggested_filename == f"{name}.ipynb"
    nb = nbformat.reads(text, as_version=4)
    nbformat.validate(nb)
    leaked = [marker for marker in SOLUTION_MARKERS if marker in text]
    assert not leaked, f"{page}: the student notebook {url} contains {leaked}"
    assert any(c.get("metadata", {}).get("nbgrader", {}).get("solution") for c in nb.cells), "no answer cells"
    released = BOOK / "release" / name / f"{name}.ipynb"
    assert released.is_file() and json.loads(released.read_text()) == json.loads(text), (
        f"{url} differs from {released.relative_to(BOOK)}: the site was built from an older release"
    )
    for _, other in links[1:]:
        status, _ = fetch(other)
        assert status == 200, f"{other}: HTTP {status}"
    reader.assert_clean()
