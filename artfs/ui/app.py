"""The web app of ``artfs ui`` (the one module importing ``flask``).

Each page is a URL that can be shared on the machine, and each has a JSON twin under ``/api``
with the data it draws (see :mod:`artfs.ui.reads`)::

    /                                       /api/                      projects and artifacts
    /a/PROJECT/NAME                         /api/a/PROJECT/NAME        versions, newest first
    /v/PROJECT/NAME/VERSION                 /api/v/...                 record, files, lineage
    /v/PROJECT/NAME/VERSION/f/PATH          /api/v/.../f/PATH          one file, its preview
    /v/PROJECT/NAME/VERSION/diff?against=V  /api/v/.../diff            changes between versions
    /lineage/PROJECT/NAME/VERSION           /api/lineage/...           the graph (?direction, depth)
    /run/RUN                                /api/run/RUN               a run, its inputs, outputs
    /raw/PROJECT/NAME/VERSION/PATH                                     one file's bytes

VERSION is ``vN`` or an alias. Routes only parse and render; what they show comes from
:mod:`artfs.ui.reads`, so the HTML and the JSON cannot disagree.
"""

from __future__ import annotations

import hmac
import json
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import quote

from flask import (
    Flask,
    Response,
    g,
    jsonify,
    render_template,
    request,
    stream_with_context,
    url_for,
)

from artfs import views
from artfs.errors import ArtfsError, InvalidName, NotFound
from artfs.names import ArtifactName, check_name
from artfs.store import Store
from artfs.ui import charts, graph, reads
from artfs.ui.preview import PREVIEW_BYTES, image_type, preview

TOKEN_COOKIE = "artfs_ui_token"
LINEAGE_DEPTH_ON_VERSION = 2  # the version page draws its neighbourhood; /lineage draws all
RUN_ROWS_SHOWN = 20  # the last history rows a run's page lists (its JSON has every row)
RUNS_CHARTED = 16  # runs whose charts are kept drawn (a few KB of SVG per metric)
SECURITY_HEADERS = {
    # No JavaScript at all; images only from this app; nothing may frame the pages.
    "Content-Security-Policy": (
        "default-src 'none'; img-src 'self'; style-src 'unsafe-inline'; "
        "form-action 'self'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",  # a token in the URL stays here
}


def _artifact(project: str, name: str) -> ArtifactName:
    return ArtifactName(check_name(project, "project name"), check_name(name, "artifact name"))


def _int_arg(name: str, default: int | None) -> int | None:
    text = request.args.get(name, "")
    if not text:
        return default
    try:
        return int(text)
    except ValueError:
        raise InvalidName(f"invalid {name} {text!r}: give a whole number") from None


def _node_url(node: dict[str, Any]) -> str:
    """Where a lineage node links: a version's page (its lineage when deleted), a run's page."""
    if node["kind"] == "run":
        return url_for("run_page", run_id=node["run_id"])
    art, _, selector = node["ref"].partition(":")
    project, _, name = art.partition("/")
    endpoint = "lineage_page" if node.get("deleted") else "version_page"
    return url_for(endpoint, project=project, name=name, selector=selector)


def _svg(data: dict[str, Any]) -> dict[str, str]:
    """The graph drawn, or why it cannot be (the page shows the rest either way)."""
    try:
        return {"svg": graph.render_svg(graph.lineage_dot(data, _node_url))}
    except ArtfsError as exc:
        return {"error": str(exc)}


def _ref_link(ref: str) -> str:
    art, _, selector = ref.partition(":")
    project, _, name = art.partition("/")
    return url_for("version_page", project=project, name=name, selector=selector)


def _shown(name: str) -> str:
    """``name`` as a page can show it: a byte that is not UTF-8 (a file stored before artfs
    refused such names) as U+FFFD, where the page's encoding would fail on it."""
    return name.encode("utf-8", "surrogateescape").decode("utf-8", "replace")


def _is_text(name: str) -> bool:
    """Whether ``name`` is valid UTF-8, so that a URL can name it."""
    return _shown(name) == name


Page = Callable[..., tuple[str, dict[str, Any]]]


class _Routes:
    """Registers each page as an HTML route and its ``/api`` JSON twin. A page builder returns
    its template and what it draws, the JSON under ``"data"``; ``html`` says whether drawings
    (the lineage SVG) are wanted too."""

    def __init__(self, app: Flask) -> None:
        self.app = app

    def page(self, rule: str, endpoint: str) -> Callable[[Page], Page]:
        def register(build: Page) -> Page:
            def html(**kwargs: Any) -> str:
                template, data = build(html=True, **kwargs)
                return render_template(template, **data)

            def api(**kwargs: Any) -> Response:
                _, data = build(html=False, **kwargs)
                return jsonify(data["data"])

            self.app.add_url_rule(rule, endpoint, html)
            self.app.add_url_rule("/api" + rule, endpoint + "_json", api)
            return build

        return register


def create_app(
    store: Store, *, token: str | None = None, allowed_hosts: set[str] | None = None
) -> Flask:
    """The app over ``store`` (opened by the caller, read-only: see reads.open_readonly).

    With ``token``, every request must carry it (``?token=``, then a cookie the first such
    request sets); with ``allowed_hosts``, a request whose Host header is not one of them is
    refused (a page of another site cannot reach a loopback server by DNS rebinding).
    """
    app = Flask(__name__)
    app.json.sort_keys = True  # type: ignore[attr-defined]
    app.jinja_env.filters["human_size"] = views.human_size
    app.jinja_env.filters["pretty_json"] = lambda v: json.dumps(v, indent=2, sort_keys=True)
    app.jinja_env.globals["ref_link"] = _ref_link
    app.jinja_env.filters["shown"] = _shown
    app.jinja_env.tests["text"] = _is_text
    _guard(app, token, allowed_hosts)
    _errors(app)
    routes = _Routes(app)
    _register_pages(routes, store)
    _register_files(app, routes, store)
    return app


def _guard(app: Flask, token: str | None, allowed_hosts: set[str] | None) -> None:
    @app.before_request
    def check() -> tuple[str, int] | None:
        g.started = time.perf_counter()
        if allowed_hosts is not None and request.host not in allowed_hosts:
            return f"artfs ui: host {request.host!r} is not served here\n", 403
        if token is None:
            return None
        given = request.args.get("token") or request.cookies.get(TOKEN_COOKIE) or ""
        if not hmac.compare_digest(given.encode(), token.encode()):
            return "artfs ui: open the URL with ?token=... that 'artfs ui' printed\n", 401
        g.token_in_url = "token" in request.args  # it matched: the cookie is set for it
        return None

    @app.after_request
    def finish(response: Response) -> Response:
        response.headers.update(SECURITY_HEADERS)
        if "started" in g:
            elapsed_ms = (time.perf_counter() - g.started) * 1000
            response.headers["Server-Timing"] = f"app;dur={elapsed_ms:.1f}"
        # Not compared again here: this also runs for the 401 of a wrong token.
        if token is not None and g.get("token_in_url"):
            response.set_cookie(TOKEN_COOKIE, token, httponly=True, samesite="Strict")
        return response


def _errors(app: Flask) -> None:
    @app.errorhandler(ArtfsError)
    def artfs_error(exc: ArtfsError) -> tuple[Any, int]:
        status = 404 if isinstance(exc, NotFound) else 400 if isinstance(exc, InvalidName) else 500
        if request.path.startswith("/api/"):
            return jsonify({"error": str(exc)}), status
        return render_template("error.html", message=str(exc), status=status), status

    @app.errorhandler(404)
    def not_found(_exc: Exception) -> tuple[Any, int]:
        return artfs_error(NotFound(f"no page at {request.path}: start from the home page"))


def _register_pages(routes: _Routes, store: Store) -> None:
    @routes.page("/", "home_page")
    def home(html: bool) -> tuple[str, dict[str, Any]]:
        data = reads.home(store, request.args.get("q", ""))
        return "home.html", {"data": data}

    @routes.page("/a/<project>/<name>", "artifact_page")
    def artifact(project: str, name: str, html: bool) -> tuple[str, dict[str, Any]]:
        page = _int_arg("page", 1) or 1
        return "artifact.html", {"data": reads.artifact(store, _artifact(project, name), page)}

    @routes.page("/v/<project>/<name>/<selector>", "version_page")
    def version(project: str, name: str, selector: str, html: bool) -> tuple[str, dict[str, Any]]:
        art = _artifact(project, name)
        record = reads.resolve(store, art, selector)
        args = request.args
        data = reads.version(store, record, args.get("dir", ""), args.get("after", ""))
        data["lineage"] = url_for(  # what the page draws first, as JSON
            "lineage_page_json",
            project=project,
            name=name,
            selector=record.version,
            depth=LINEAGE_DEPTH_ON_VERSION,
        )
        drawn = {}
        if html:
            near = reads.lineage(store, art, record.version, depth=LINEAGE_DEPTH_ON_VERSION)
            drawn = _svg(near)
        return "version.html", {"data": data, "graph": drawn}

    @routes.page("/v/<project>/<name>/<selector>/diff", "diff_page")
    def diff(project: str, name: str, selector: str, html: bool) -> tuple[str, dict[str, Any]]:
        art = _artifact(project, name)
        new = reads.resolve(store, art, selector)
        against = request.args.get("against", "")
        if not against:
            raise InvalidName("give ?against=VERSION: the version to compare with, e.g. v0")
        old = reads.resolve(store, art, against)
        others = [v.version for v in store.versions(art)[::-1]]
        data = reads.version_diff(store, old, new)
        return "diff.html", {"data": data, "record": new, "others": others}

    @routes.page("/lineage/<project>/<name>/<selector>", "lineage_page")
    def lineage(project: str, name: str, selector: str, html: bool) -> tuple[str, dict[str, Any]]:
        direction = request.args.get("direction", "both")
        depth = _int_arg("depth", None)
        data = reads.lineage(store, _artifact(project, name), selector, direction, depth)
        drawn = _svg(data) if html else {}
        return "lineage.html", {"data": data, "graph": drawn}

    drawn_runs = _RunCharts(store)

    @routes.page("/run/<run_id>", "run_page")
    def run(run_id: str, html: bool) -> tuple[str, dict[str, Any]]:
        if not html:  # the JSON is `artfs runs show --json`'s: every row
            return "run.html", {"data": reads.run(store, run_id)}
        data = reads.run(store, run_id, last=RUN_ROWS_SHOWN)
        drawn = drawn_runs.charts(run_id, data["history_rows"])
        columns = charts.columns(data["history"])
        return "run.html", {"data": data, "charts": drawn, "columns": columns}


class _RunCharts:
    """The charts of recently shown runs, by (run id, rows stored). A history only grows
    (rows are appended, never rewritten), so the same count is the same rows, and a row
    logged since is a new key."""

    def __init__(self, store: Store, size: int = RUNS_CHARTED) -> None:
        self.store = store
        self.size = size
        self.lock = threading.Lock()  # waitress serves from several threads
        self.drawn: OrderedDict[tuple[str, int], list[dict[str, Any]]] = OrderedDict()

    def charts(self, run_id: str, stored: int) -> list[dict[str, Any]]:
        key = (run_id, stored)
        with self.lock:
            if key in self.drawn:
                self.drawn.move_to_end(key)
                return self.drawn[key]
        drawn = self._draw(run_id, stored)
        with self.lock:
            self.drawn[key] = drawn
            while len(self.drawn) > self.size:
                self.drawn.popitem(last=False)
        return drawn

    def _draw(self, run_id: str, stored: int) -> list[dict[str, Any]]:
        """From the outline kept as the run logged; from every row for a run that logged
        before outlines were kept."""
        if not stored:
            return []
        outline = reads.run_outline(self.store, run_id)
        if outline is not None and outline["rows"] == stored:
            return charts.outline_charts(outline)
        return charts.charts(reads.run_history(self.store, run_id))


def _register_files(app: Flask, routes: _Routes, store: Store) -> None:
    @routes.page("/v/<project>/<name>/<selector>/f/<path:path>", "file_page")
    def file(
        project: str, name: str, selector: str, path: str, html: bool
    ) -> tuple[str, dict[str, Any]]:
        record = reads.resolve(store, _artifact(project, name), selector)
        entry = reads.lookup(store, record, path)
        data = reads.entry_json(entry) | {"ref": record.ref}
        if entry.is_dir:  # its page is the version's listing of it
            listing = url_for("version_page", project=project, name=name, selector=selector)
            data["preview"] = {"kind": "directory", "listing": f"{listing}?dir={quote(path)}"}
        elif entry.is_reference:
            data["preview"] = {"kind": "reference"}  # no fetch from its URI to draw a page
        else:
            head = reads.read_head(store, entry, PREVIEW_BYTES)
            data["preview"] = preview(entry.name, head, entry.size)
        return "file.html", {"data": data, "record": record}

    @app.route("/raw/<project>/<name>/<selector>/<path:path>")
    def raw(project: str, name: str, selector: str, path: str) -> Response:
        record = reads.resolve(store, _artifact(project, name), selector)
        entry = reads.lookup(store, record, path)
        if entry.is_dir:
            raise InvalidName(f"{path} is a directory: download its files one by one")
        chunks = store.iter_file(entry)
        first = next(chunks, b"")
        # Only images are shown inline (for <img>); anything else is a download, so a stored
        # HTML or SVG file never runs as a page of this app.
        mime = image_type(first) if request.args.get("inline") else None
        disposition = "inline" if mime else "attachment"

        def body() -> Iterator[bytes]:
            yield first
            yield from chunks

        response = Response(
            stream_with_context(body()), mimetype=mime or "application/octet-stream"
        )
        response.headers["Content-Length"] = str(entry.size)
        filename = quote(entry.name, safe="")
        response.headers["Content-Disposition"] = f"{disposition}; filename*=UTF-8''{filename}"
        return response
