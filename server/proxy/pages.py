"""The web UI's files: ``/`` sends a browser to ``/web/``, which is the single-page app's
shell, and ``/web/static/`` serves its scripts, styles and the vendored xterm.js, all
from inside the installed package (no CDN, nothing fetched at run time).

Their security headers (a page CSP instead of the API's, revalidated caching) are set by
``EdgeMiddleware``, which owns every answer's headers.
"""

from __future__ import annotations

from importlib import resources

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

PAGE_PREFIX = "/web/"
PACKAGE = "server.proxy"


def _index_html() -> bytes:
    return (resources.files(PACKAGE) / "web" / "index.html").read_bytes()


def page_routes() -> list[BaseRoute]:
    index = _index_html()  # read once: a broken install fails at start, not per request

    async def to_app(request: Request) -> Response:
        return RedirectResponse(PAGE_PREFIX, status_code=302)

    async def shell(request: Request) -> Response:
        if request.url.query:
            # The app routes by the fragment; a query here is nobody's, and would make
            # the one page many cache keys.
            return RedirectResponse(PAGE_PREFIX, status_code=302)
        return Response(index, media_type="text/html; charset=utf-8")

    return [
        Route("/", to_app, methods=["GET"]),
        Route("/web", to_app, methods=["GET"]),
        Route(PAGE_PREFIX, shell, methods=["GET"]),
        Mount(
            f"{PAGE_PREFIX}static",
            app=StaticFiles(packages=[(PACKAGE, "web/static")], follow_symlink=False),
        ),
    ]
