"""Exports for talks and theses: a notebook run top to bottom, written as HTML and reveal.js slides
in which every mrunc widget still shows its state, with no kernel and no network.

A live widget is a view drawn by JavaScript from a model in the kernel. Exported, it is only as
good as what the file carries: nbconvert prefers the widget view over any other output, draws it
with a script from a CDN, and then shows the state saved at the end of the run with dead buttons
(offline: nothing). So every mrunc widget is a StaticView: it can draw its state as
self-contained HTML/SVG (`static_html()`), and its output carries that drawing beside the live view
(`text/html`, which JupyterLab ignores while the widget renders, and which GitHub, Jupyter Book and
nbconvert show when there is no kernel).

A drawing made at display time is already stale by the next click. So a widget is shown with a
display id and redraws its drawing in place (`redraw_static()`, an update_display_data) when it
reaches its end state: the stepper when the walk is over, the monitor when its container stopped.
Not at every change: JupyterLab re-creates the live view on each update (a click on it then
could be lost).
That keeps a notebook saved from JupyterLab, or executed by nbclient (Jupyter Book, MyST), current.
An export goes further and asks the widgets themselves at the end of the run, in the same kernel:

  1. execute the notebook with nbclient, plus one more cell that calls `collect()`: each widget
     that was displayed finishes what a reader should see (the stepper walks every remaining
     phase: `export_finish()`) and hands over `static_html()`, keyed by its model id;
  2. that cell is dropped; in every output showing one of those widgets, the widget view is
     replaced by its drawing (and the saved widget state goes when no widget view is left);
  3. nbconvert writes `NAME.html` and, with slides, `NAME.slides.html` (reveal.js); with ipynb,
     the executed notebook itself is kept too (`NAME.ipynb`, for GitHub or a Jupyter Book /
     MyST site built without executing);
  4. what those pages load — require.js, MathJax, and for the slides reveal.js and jQuery — is
     copied beside them (mrunc-assets/), and the pages point there, not at a CDN: the export
     dir works offline, and anywhere it is copied. The copies come from npm packages that
     `make export-assets` fetched at pinned versions (tools/export-assets).

The interface a widget needs to take part (course widgets, e.g. the file-access monitor): derive
from StaticView (before the ipywidgets class) and define `static_html() -> str`; call
`redraw_static()` when its state reaches a moment worth keeping; optionally `export_finish()`.

This module is imported by the widgets, so at its top it imports only the standard library;
nbclient and nbconvert come in inside export(), i.e. only for `mrunc export`.
"""
from __future__ import annotations

import os
import tempfile
import weakref
from pathlib import Path

__all__ = ["StaticView", "collect", "export", "MIME"]

MIME = "application/vnd.mrunc.static+json"
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
WIDGET_STATE = "application/vnd.jupyter.widget-state+json"

# The widgets shown in this kernel, by model id: the ones whose outputs an export redraws.
_SHOWN: weakref.WeakValueDictionary = weakref.WeakValueDictionary()


class StaticView:
    """Mixin for an ipywidgets widget: a static drawing of its state beside its live view."""

    def static_html(self) -> str:
        raise NotImplementedError

    def _repr_mimebundle_(self, **kw):
        bundle = super()._repr_mimebundle_(**kw) or {}
        if WIDGET_VIEW in bundle:
            _SHOWN[bundle[WIDGET_VIEW]["model_id"]] = self
        bundle["text/html"] = self.static_html()
        return bundle

    def _ipython_display_(self):
        """Shown with a display id, so that redraw_static() can update the drawing in place."""
        from IPython.display import display
        handle = display(self._repr_mimebundle_(), raw=True, display_id=True)
        if handle is not None:
            self._static_handles = [*getattr(self, "_static_handles", ()), handle]

    def redraw_static(self):
        """Bring the drawing in this widget's outputs up to date (update_display_data), so a
        notebook saved from JupyterLab, or run by nbclient (Jupyter Book, MyST), keeps the
        state. JupyterLab re-creates the live view too: widgets call this when a moment is
        worth keeping (the end of a walk or a watch), not at every change."""
        handles = getattr(self, "_static_handles", ())
        if handles:
            bundle = self._repr_mimebundle_()
            for handle in handles:
                handle.update(bundle, raw=True)


def collect(finish=True) -> dict:
    """In the kernel, at the end of an export: {model id: static_html()} of every StaticView shown,
    after `export_finish()` of each (when `finish`). Also displayed under MIME for the exporter."""
    from IPython.display import display
    drawings = {}
    for model_id, widget in list(_SHOWN.items()):
        if finish and hasattr(widget, "export_finish"):
            widget.export_finish()
        drawings[model_id] = widget.static_html()
    display({MIME: drawings}, raw=True)
    return drawings


_COLLECT_CELL = "from mrunc.notebook.export import collect as _mrunc_collect\n_mrunc_collect();"


class ExportError(Exception):
    """One line for the command: what failed, where."""


# ---- offline: what the pages load, copied beside them ------------------------------------------

ASSETS = "mrunc-assets"             # the folder beside the exported files
# npm package -> the files and folders of it the pages load. MathJax: only the TeX input and
# the CommonHTML output that nbconvert's configuration (TeX-AMS_CHTML-full) uses, 4 of its 71 MB.
ASSET_FILES = {
    "requirejs": ["require.js", "package.json"],      # its licence is in package.json
    "jquery": ["dist/jquery.min.js", "LICENSE.txt"],
    "reveal.js": ["dist/reveal.js", "dist/reveal.css", "dist/theme/white.css",
                  "dist/theme/fonts/source-sans-pro", "plugin/notes", "LICENSE"],
    "mathjax": ["MathJax.js", "config/TeX-AMS_CHTML-full.js", "config/Safe.js", "extensions",
                "jax/input/TeX", "jax/output/CommonHTML", "jax/element", "fonts/HTML-CSS/TeX/woff",
                "localization/en", "LICENSE"],
}
# nbconvert's URLs for them (HTMLExporter traits), relative to the exported page
URLS = {
    "require_js_url": f"{ASSETS}/requirejs/require.js",
    "jquery_url": f"{ASSETS}/jquery/dist/jquery.min.js",
    "mathjax_url": f"{ASSETS}/mathjax/MathJax.js?config=TeX-AMS_CHTML-full,Safe",
}
REVEAL = f"{ASSETS}/reveal.js"
REVEAL_THEME = "white"              # nbconvert's "simple" imports its fonts from Google; white's are local


def assets_source() -> Path:
    """The node_modules `make export-assets` filled (build/export-assets in the repo), or
    $MRUNC_EXPORT_ASSETS for an mrunc installed elsewhere."""
    env = os.environ.get("MRUNC_EXPORT_ASSETS")
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[2] / "build" / "export-assets" / "node_modules"


def check_assets(src: Path) -> None:
    """Before running anything: every file the pages will load is there to copy."""
    for package, files in ASSET_FILES.items():
        for f in files:
            if not (src / package / f).exists():
                raise ExportError(f"{src / package / f} is missing (what the exported pages load, "
                                  "to work offline): run `make export-assets`, or point "
                                  "MRUNC_EXPORT_ASSETS at a node_modules holding "
                                  f"{', '.join(ASSET_FILES)}")


def copy_assets(src: Path, out: Path) -> Path:
    """Copy what the pages load into out/mrunc-assets (refreshed at each export)."""
    import shutil
    dest = out / ASSETS
    for package, files in ASSET_FILES.items():
        for f in files:
            target = dest / package / f
            target.parent.mkdir(parents=True, exist_ok=True)
            if (src / package / f).is_dir():
                shutil.copytree(src / package / f, target, dirs_exist_ok=True)
            else:
                shutil.copyfile(src / package / f, target)
    return dest


def export(notebook, out_dir=None, *, html=True, slides=True, ipynb=False, timeout=600,
           kernel_name=None, reveal_prefix=None) -> list[Path]:
    """Run `notebook` in a fresh kernel (its own directory as cwd) and write NAME.html,
    NAME.slides.html and/or NAME.ipynb (executed, widgets drawn: for GitHub, or a Jupyter Book /
    MyST site that does not execute) into `out_dir` (default: export/ beside the notebook).
    Returns the paths."""
    import nbformat
    from nbclient import NotebookClient
    from nbclient.exceptions import DeadKernelError

    src = Path(notebook).resolve()
    out = Path(out_dir) if out_dir else src.parent / "export"
    try:
        nb = nbformat.read(src, as_version=4)
    except OSError as e:
        raise ExportError(f"{notebook}: {e.strerror}") from None
    except (ValueError, nbformat.ValidationError) as e:   # not JSON; JSON but not a notebook
        raise ExportError(f"{notebook}: not a notebook: {str(e).splitlines()[0]}") from None
    nb.cells.append(nbformat.v4.new_code_cell(_COLLECT_CELL))
    kw = {"kernel_name": kernel_name} if kernel_name else {}
    client = NotebookClient(nb, timeout=timeout, resources={"metadata": {"path": str(src.parent)}},
                            **kw)
    kernel_from = "--kernel" if kernel_name else "the notebook's metadata.kernelspec.name"
    # What the user typed is judged first (the notebook, then its kernel), then what the
    # installation lacks: all before the run, not after it.
    _check_kernel(client, notebook, kernel_from)
    assets = assets_source()
    check_assets(assets)
    # The kernel's own log (its warnings about TCP, a crash) goes to a file, read if it died.
    with tempfile.TemporaryFile("w+") as kernel_log:
        try:
            _run(client, nb, notebook, timeout, kernel_log)
        except DeadKernelError:
            kernel_log.seek(0)
            last = kernel_log.read().strip().splitlines()[-1:] or ["(no message)"]
            raise ExportError(f"{notebook}: the kernel died: {last[0]}") from None
    drawings = _collected(nb.cells.pop())
    replace_views(nb, drawings)
    out.mkdir(parents=True, exist_ok=True)
    if html or slides:
        copy_assets(assets, out)
    written = []
    if html:
        written.append(_write(out / f"{src.stem}.html", _html(nb)))
    if slides:
        written.append(_write(out / f"{src.stem}.slides.html", _slides(nb, reveal_prefix)))
    if ipynb:
        written.append(_write(out / f"{src.stem}.ipynb", nbformat.writes(nb)))
    return written


def _check_kernel(client, notebook, kernel_from):
    """The kernel named exists: its spec is looked up (nothing is started; the run reuses the
    manager made here)."""
    from jupyter_client.kernelspec import NoSuchKernel
    try:
        client.create_kernel_manager().kernel_spec
    except NoSuchKernel as e:
        raise ExportError(f"{notebook}: no kernel named {e.name!r} ({kernel_from})") from None


def _run(client, nb, notebook, timeout, kernel_log):
    from nbclient.exceptions import CellExecutionError, CellTimeoutError
    try:
        client.execute(stderr=kernel_log)
    except CellExecutionError as e:
        raise ExportError(f"{notebook}: {_first_error(nb, e)}") from None
    except CellTimeoutError:
        raise ExportError(f"{notebook}: a cell ran longer than {timeout} s (--timeout)") from None


def _first_error(nb, exc) -> str:
    for i, cell in enumerate(nb.cells):
        for o in cell.get("outputs", ()):
            if o.get("output_type") == "error":
                what = ("drawing the widgets failed" if cell.source == _COLLECT_CELL else
                        f"cell {i + 1} failed")
                return f"{what}: {o.get('ename')}: {o.get('evalue')}"
    return str(exc).strip().splitlines()[-1]


def _collected(cell) -> dict:
    for o in cell.get("outputs", ()):
        if MIME in o.get("data", {}):
            return dict(o["data"][MIME])
    raise ExportError("the kernel did not hand over the widgets' drawings (is mrunc importable "
                      "in the notebook's kernel?)")


def replace_views(nb, drawings) -> int:
    """Each output showing a widget in `drawings` shows its drawing instead; the saved widget
    state goes once no widget view is left (nothing would read it). Returns how many replaced."""
    replaced, left = 0, 0
    for cell in nb.cells:
        for o in cell.get("outputs", ()):
            view = o.get("data", {}).get(WIDGET_VIEW)
            if view is None:
                continue
            drawing = drawings.get(view.get("model_id"))
            if drawing is None:
                left += 1
                continue
            del o["data"][WIDGET_VIEW]
            o["data"]["text/html"] = drawing
            replaced += 1
    if not left:
        nb.metadata.pop("widgets", None)
    return replaced


def slide_breaks(nb):
    """Without slide metadata, each markdown cell that opens with a heading starts a slide; what
    follows it (its code and outputs) goes on that slide. Metadata already there is kept."""
    if any("slideshow" in c.get("metadata", {}) for c in nb.cells):
        return nb
    for cell in nb.cells:
        if cell.cell_type == "markdown" and cell.source.lstrip().startswith("#"):
            cell.metadata["slideshow"] = {"slide_type": "slide"}
    return nb


def _html(nb) -> str:
    from nbconvert import HTMLExporter
    body, _ = HTMLExporter(**URLS).from_notebook_node(nb)
    return body


# nbconvert's slides, with two changes:
# - they import mermaid (an ES module: from file:// Chromium refuses it anyway) on every page;
#   load it only when a diagram is there, as its HTML pages do. None of ours has one.
# - a slide taller than the screen scrolls only once reveal.js moved to it (slidechanged):
#   the first slide was cut off. Tell the page reveal moved to the first one too.
_SLIDES_TEMPLATE = """{%- extends 'index.html.j2' -%}
{% from 'mermaidjs.html.j2' import mermaid_js %}
{%- block html_head_js_mermaidjs -%}
{{ mermaid_js(resources.mermaid_js_url, resources.mermaid_layout_elk_js_url) }}
{%- endblock html_head_js_mermaidjs -%}
{%- block footer_js -%}
{{ super() }}
<script>
require(["{{ resources.reveal.url_prefix }}/dist/reveal.js"], function (Reveal) {
  function atFirst() { Reveal.dispatchEvent({type: "slidechanged"}); }
  if (Reveal.isReady()) { atFirst(); } else { Reveal.on("ready", atFirst); }
});
</script>
{%- endblock footer_js -%}
"""


def _slides(nb, reveal_prefix) -> str:
    import copy

    import jinja2
    from nbconvert import SlidesExporter
    exporter = SlidesExporter(
        reveal_scroll=True,                 # a filmstrip is taller than a slide
        reveal_url_prefix=reveal_prefix or REVEAL, reveal_theme=REVEAL_THEME, **URLS,
        extra_loaders=[jinja2.DictLoader({"mrunc-slides.html.j2": _SLIDES_TEMPLATE})],
        template_file="mrunc-slides.html.j2")
    body, _ = exporter.from_notebook_node(slide_breaks(copy.deepcopy(nb)))
    return body


def _write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path
