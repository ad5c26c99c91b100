"""Student markdown and HTML made inert before any grader or student sees it.

Feedback pages and the formgrader's submission pages are nbconvert HTML exports of the student's
notebook, open in a browser where the grader is logged in to the formgrader (whose API writes
files and starts kernels). A ``<script>``, an ``onerror`` handler or a ``javascript:`` link in a
free-text answer, or in HTML a cell displayed, would run there with the grader's rights.

One sanitizer, the one nbconvert's own ``HTMLExporter.sanitize_html`` uses (bleach, with
bleach's CSS sanitizer), cleans everything rendered from a submission:

- ``settings.nbgrader_config`` turns ``sanitize_html`` on for every HTML export (feedback, the
  formgrader), and swaps two of nbconvert's template filters for this module's:
  ``markdown2html`` (nbgrader's feedback and formgrade templates render markdown cells without
  nbconvert's sanitizing branch) and ``clean_html`` (nbconvert's allows no ``<p>``, ``<img>`` or
  ``<th>``, so markdown rendered through it shows raw tags). Outputs of type ``text/html`` and
  ``text/markdown`` pass ``clean_html``; ``application/javascript`` is dropped; SVG is shown as
  an ``<img>``, where no script runs. A text too long to clean in reasonable time, or past what
  one page cleans, is shown as plain text instead (``within_budget``).
- ``sanitize_notebook`` cleans the graders' copy that ``autograder/grading/gradebook.py`` stores for the
  formgrader, so that the stored notebook is inert in any viewer: a markdown cell that the
  sanitizer would change is kept as text (its source in a fenced block) under a note naming what
  was removed; HTML outputs are cleaned, JavaScript outputs dropped, SVG outputs turned into
  ``<img>``. A cell the sanitizer leaves unchanged is stored as the student wrote it.

What stays: text, headings, lists, tables, code, links (http, https, mailto, relative), images
(relative, http(s), and ``data:`` images), math (``$...$`` is text until MathJax, loaded with its
``Safe`` extension by nbconvert, typesets it). What goes: scripts, event handlers, ``javascript:``
and other URL schemes, frames, objects, embeds, forms and inputs, ``id`` attributes (a student's
element must not take the id of one of the formgrader's own), style properties outside bleach's list.
"""
from __future__ import annotations

import base64
import re
from html import escape as html_escape
from typing import Any

import bleach
import jinja2
from bleach.css_sanitizer import CSSSanitizer
from bleach.html5lib_shim import convert_entities
from nbconvert.filters.markdown_mistune import IPythonRenderer, MarkdownWithMath
from nbformat import NotebookNode
from nbformat.v4 import new_output

import course_config as cfg
from autograder.text import storable

TAGS = frozenset(bleach.ALLOWED_TAGS) | {
    "p", "br", "hr", "h1", "h2", "h3", "h4", "h5", "h6", "div", "span", "pre", "img", "figure", "figcaption",
    "table", "thead", "tbody", "tfoot", "tr", "th", "td", "caption", "colgroup", "col",
    "sub", "sup", "del", "ins", "s", "u", "mark", "small", "big", "kbd", "samp", "var", "q", "cite", "dfn", "tt",
    "dl", "dt", "dd", "details", "summary", "center", "font"}
ATTRIBUTES: dict[str, frozenset[str]] = {
    "*": frozenset({"class", "title", "dir", "lang", "style", "align"}),
    "a": frozenset({"href"}),
    "img": frozenset({"src", "alt", "width", "height"}),
    "th": frozenset({"colspan", "rowspan"}), "td": frozenset({"colspan", "rowspan"}),
    "col": frozenset({"span", "width"}), "colgroup": frozenset({"span", "width"}),
    "ol": frozenset({"start", "type"}), "details": frozenset({"open"}), "font": frozenset({"color"}),
}
URL_ATTRIBUTES = frozenset({"href", "src"})
LINK_SCHEMES = frozenset({"http", "https", "mailto"})
# in <img src> only: an image never runs script, SVG included (a browser runs no script in an <img>)
IMAGE_DATA = re.compile(r"^data:image/(png|jpeg|gif|webp|svg\+xml)[;,]")
SCHEME = re.compile(r"^([a-z][a-z0-9+.-]*):")
NOT_CLEANED = frozenset({"id"})  # dropped without a note: nbconvert puts them on every heading
CSS = CSSSanitizer()  # bleach's list of CSS properties: no position, no url() beyond what it allows

# output types shown as they are (nbconvert's SanitizeHTML.safe_output_keys), cleaned, or dropped
SAFE_OUTPUTS = frozenset({"text/plain", "text/latex", "application/json", "image/png", "image/jpeg", "image/gif"})
SCRIPT_OUTPUTS = re.compile(r"javascript|ecmascript", re.I)


def url_scheme(value: str) -> tuple[str, str | None]:
    """(the URL as bleach reads it: entities converted, control characters, spaces and non-ASCII
    dropped, lower case; its scheme, None for a relative URL or an anchor)."""
    url = re.sub(r"[`\x00-\x20\x7f-\xa0\s]+", "", convert_entities(value))
    url = re.sub(r"[^\x00-\x7f]", "", url).lower()
    scheme = SCHEME.match(url)
    return url, scheme.group(1) if scheme else None


def url_allowed(tag: str, name: str, value: str) -> bool:
    """Whether an ``href``/``src`` value may stay: relative, http(s), mailto, or a ``data:`` image in ``<img src>``."""
    url, scheme = url_scheme(value)
    if scheme is None or scheme in LINK_SCHEMES:
        return True  # figures/loss.png, #anchor, https://...
    return tag == "img" and name == "src" and IMAGE_DATA.match(url) is not None


class Cleaner:
    """bleach's cleaner with this course's lists; ``removed`` collects what the last clean dropped."""

    def __init__(self, *, strip: bool = False):
        self.removed: list[str] = []
        self._bleach = bleach.Cleaner(tags=TAGS, attributes=self._attribute, protocols=LINK_SCHEMES | {"data"},
                                      strip=strip, strip_comments=True, css_sanitizer=CSS)

    def _attribute(self, tag: str, name: str, value: str) -> bool:
        allowed = name in ATTRIBUTES["*"] or name in ATTRIBUTES.get(tag, ())
        if allowed and name in URL_ATTRIBUTES and not url_allowed(tag, name, value):
            allowed = False
            self.removed.append(f"a {url_scheme(value)[1][:20]}: URL in <{tag} {name}>")
        elif not allowed and name not in NOT_CLEANED:
            self.removed.append(f"the {name}= attribute of <{tag}>")
        return allowed

    def clean(self, html: str) -> str:
        self.removed = []
        return self._bleach.clean(storable(html))


def clean(html: Any) -> str:
    """HTML with every tag, attribute and URL outside the lists above escaped or dropped (bleach).

    Disallowed tags are escaped, not removed: a grader sees ``<script>...`` as text, and what the
    student wrote stays readable.
    """
    if isinstance(html, bytes):
        html = html.decode("utf-8", "replace")
    return Cleaner().clean(str(html))


def inspect_html(html: str) -> tuple[str, list[str]]:
    """(cleaned html, what the sanitizer removed): tags it would escape and attributes it drops."""
    escaping, stripping = Cleaner(), Cleaner(strip=True)
    cleaned = escaping.clean(html)
    removed = list(dict.fromkeys(escaping.removed))
    if stripping.clean(html) != cleaned:  # the two differ exactly where a tag is not allowed
        tags = sorted({t.lower() for t in re.findall(r"<\s*/?\s*([a-zA-Z][\w:-]*)", html)} - TAGS)
        removed[:0] = [f"<{tag}>" for tag in tags] or ["markup that is not allowed"]
    return cleaned, removed


def render_markdown(source: str, attachments: dict | None = None, path: str = "") -> str:
    """Markdown as nbconvert's HTMLExporter renders it (math kept as text for MathJax), not yet cleaned."""
    renderer = IPythonRenderer(escape=False, attachments=attachments or {}, embed_images=False, path=path,
                               anchor_link_text="¶", exclude_anchor_links=False)
    return MarkdownWithMath(renderer=renderer).render(source)


def as_text(text: str, why: str) -> str:
    """``text`` as an escaped ``<pre>`` block, cut to ``course_config.SHOWN_TEXT_CHARS``, under a note saying ``why``."""
    cut = html_escape(storable(text[:cfg.SHOWN_TEXT_CHARS]))
    return (f"<p><b>[grader] {html_escape(why)}: the first {min(len(text), cfg.SHOWN_TEXT_CHARS):,} of its "
            f"{len(text):,} characters are shown as plain text.</b></p><pre>{cut}</pre>")


def within_budget(resources: Any, text: str) -> str | None:
    """None when ``text`` may be rendered and cleaned; else why not (too long, or the page has cleaned enough).

    bleach reads 30,000 to 120,000 characters a second: a text past ``course_config.SHOWN_TEXT_CHARS``,
    or past ``PAGE_CHARS`` cleaned on one page (kept in the export's ``resources``), is shown as plain
    text instead, so that a huge submission costs seconds. No honest notebook comes near either.
    """
    if len(text) > cfg.SHOWN_TEXT_CHARS:
        return "This text is too long to show as written"
    if isinstance(resources, dict):
        spent = resources.get(BUDGET_KEY, 0) + len(text)
        resources[BUDGET_KEY] = spent
        if spent > PAGE_CHARS:
            return "This notebook holds too much text to show it all as written"
    return None


PAGE_CHARS = 10 * cfg.SHOWN_TEXT_CHARS  # cleaned on one page at most (the notebook's own markdown is ~25,000)
BUDGET_KEY = "autograder_cleaned_chars"


@jinja2.pass_context
def clean_html(context: Any, html: Any) -> str:
    """The ``clean_html`` filter of the HTML exports: ``clean``, within the page's budget (``within_budget``)."""
    html = html.decode("utf-8", "replace") if isinstance(html, bytes) else str(html)
    why = within_budget(context.get("resources"), html)
    return clean(html) if why is None else as_text(html, why)


@jinja2.pass_context
def markdown2html(context: Any, source: str) -> str:
    """The ``markdown2html`` filter of the HTML exports: nbconvert's rendering, then ``clean``.

    It replaces ``HTMLExporter.markdown2html``, which nbgrader's feedback and formgrade templates
    call for every markdown cell without cleaning; a cell's attachments and the notebook's path
    are read from the template's context, as nbconvert does.
    """
    resources = context.get("resources")
    why = within_budget(resources, source)
    if why is not None:
        return as_text(source, why)
    cell = context.get("cell", {}) or {}
    path = (resources or {}).get("metadata", {}).get("path", "")
    return clean(render_markdown(source, cell.get("attachments", {}), path))


def fenced(text: str) -> str:
    """``text`` as a fenced code block that no line of it can close."""
    longest = max((len(run) for run in re.findall(r"~{3,}", text)), default=0)
    fence = "~" * max(3, longest + 1)
    return f"{fence}text\n{text}\n{fence}"


def note(what: str, removed: list[str]) -> str:
    return f"[grader] {what} held content a browser would run or load, shown here as text: {', '.join(removed)}"


def sanitize_markdown_cell(cell: NotebookNode, budget: dict | None = None) -> list[str]:
    """Make one markdown cell inert; return what was removed (nothing: the cell is unchanged).

    ``budget``: shared by the cells of one notebook (``within_budget``).
    """
    why = within_budget(budget, cell.source)
    if why is not None:
        shown = cell.source[:cfg.SHOWN_TEXT_CHARS]
        cell.source = f"**[grader] {why}: the first {len(shown):,} of its {len(cell.source):,} characters are " \
                      f"shown as text.**\n\n{fenced(shown)}"
        return ["a text too long to show as written"]
    _, removed = inspect_html(render_markdown(cell.source, cell.get("attachments", {})))
    if removed:
        cell.source = f"**{note('This answer', removed)}**\n\n{fenced(cell.source)}"
    return removed


def sanitize_outputs(cell: NotebookNode, budget: dict | None = None) -> list[str]:
    """Make one code cell's outputs inert; return what was removed. ``budget``: as for markdown cells."""
    removed: list[str] = []
    for output in cell.get("outputs", []):
        data = output.get("data")
        if not isinstance(data, dict):
            continue  # streams and errors: plain text, escaped by every template
        for key in list(data):
            value = data[key]
            text = value if isinstance(value, str) else "".join(value) if isinstance(value, list) else ""
            if SCRIPT_OUTPUTS.search(key):
                del data[key]
                removed.append(f"a {key} output")
            elif key == "image/svg+xml":
                encoded = base64.b64encode(storable(text).encode("utf-8")).decode("ascii")
                del data[key]
                data.setdefault("text/html", f'<img src="data:image/svg+xml;base64,{encoded}">')
            elif key in ("text/html", "text/markdown") and within_budget(budget, text) is not None:
                data[key] = as_text(text, "This output is too long to show as written")
                removed.append(f"a {key} output too long to show as written")
                if key == "text/markdown":  # now HTML: shown as such, never as markdown
                    data["text/html"] = data.pop(key)
            elif key == "text/html":
                cleaned, found = inspect_html(text)
                if found:
                    data[key] = cleaned
                    removed += found
            elif key == "text/markdown":
                _, found = inspect_html(render_markdown(text))
                if found:
                    del data[key]
                    data.setdefault("text/plain", text)
                    removed += found
            elif key not in SAFE_OUTPUTS and not key.startswith(("image/", "application/vnd.jupyter")):
                del data[key]
                removed.append(f"a {key} output")
    if removed:
        cell.outputs.append(new_output("stream", name="stdout", text=note("This cell's output", removed) + "\n"))
    return removed


def sanitize_notebook(nb: NotebookNode) -> dict[int, list[str]]:
    """Make a submission's notebook inert in place (see the module's docstring); return, per cell
    index, what was removed. Cells the sanitizer leaves alone are not touched."""
    found, budget = {}, {}
    for index, cell in enumerate(nb.cells):
        if cell.cell_type == "markdown":
            removed = sanitize_markdown_cell(cell, budget)
        elif cell.cell_type == "code":
            removed = sanitize_outputs(cell, budget)
        elif cell.cell_type == "raw":
            cleaned, removed = inspect_html(cell.source)
            if removed:
                cell.source = cleaned
        else:
            removed = []
        if removed:
            found[index] = removed
    return found
