"""The docs pages: Swagger UI at `/docs`, ReDoc at `/docs/redoc`, the spec at `/docs/openapi.json`.

Both pages load their scripts and styles from `docs_assets/`, shipped in this package at pinned versions
(its README says which, where from and how to update them) and served under `/docs/assets`: the pages
work with no network access and cannot change under a deployed release. No page asks a CDN for anything,
favicon and fonts included, and each page carries a Content-Security-Policy that lets it load from its own
origin only (which also keeps ReDoc's footer from fetching Redocly's logo).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from litestar import Request, Router
from litestar.openapi import OpenAPIConfig
from litestar.openapi.plugins import RedocRenderPlugin, SwaggerRenderPlugin
from litestar.openapi.spec import Components, SecurityScheme
from litestar.static_files import create_static_files_router

from predictor_litestar.options import ApiOptions

__all__ = ["ASSETS", "ASSETS_DIR", "DOCS", "POLICY", "assets_router", "openapi_config"]

DOCS = "/docs"
ASSETS = f"{DOCS}/assets"
"""Where the files of `ASSETS_DIR` are served."""
ASSETS_DIR = Path(__file__).parent / "docs_assets"
_SWAGGER = f"{ASSETS}/swagger-ui"
_FAVICON = f"<link rel='icon' type='image/png' href='{_SWAGGER}/favicon-32x32.png'>"
POLICY = (
    "default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data: blob:; font-src 'self' data:; worker-src 'self' blob:; connect-src 'self'; "
    "base-uri 'self'; form-action 'self'"
)
"""The docs pages' Content-Security-Policy: their own origin only. Inline scripts and styles are allowed
because each page starts its UI from an inline script holding the spec, and both UIs inject styles."""
_POLICY_META = f'<meta http-equiv="Content-Security-Policy" content="{POLICY}">'.encode()


class _Swagger(SwaggerRenderPlugin):
    def render(self, request: Request[Any, Any, Any], openapi_schema: dict[str, Any]) -> bytes:
        return _with_policy(super().render(request, openapi_schema))


class _Redoc(RedocRenderPlugin):
    def render(self, request: Request[Any, Any, Any], openapi_schema: dict[str, Any]) -> bytes:
        return _with_policy(super().render(request, openapi_schema))


def _with_policy(page: bytes) -> bytes:
    """The page with `POLICY` as the first element of its head (before any script or style it governs)."""
    return page.replace(b"<head>", b"<head>" + _POLICY_META, 1)


_SCHEMES: dict[str, Any] = {
    "bearer": SecurityScheme(
        type="http",
        scheme="bearer",
        bearer_format="pk_<id>_<secret>",
        description="An API key from `predictor keys create`, as `Authorization: Bearer <key>`.",
    ),
    "apiKey": SecurityScheme(
        type="apiKey",
        name="X-API-Key",
        security_scheme_in="header",
        description="The same key, as `X-API-Key: <key>`.",
    ),
}
"""How a key is sent; the operations that need one name these (`openapi.document_access`)."""


def openapi_config(options: ApiOptions) -> OpenAPIConfig:
    """The OpenAPI document and its two pages, rendered with the shipped assets only."""
    return OpenAPIConfig(
        title=options.title,
        version=options.version,
        description="Predictions from tabular models served through ONNX, every one recorded.",
        path=DOCS,
        components=Components(security_schemes=_SCHEMES),
        render_plugins=[
            _Swagger(
                path="/",
                js_url=f"{_SWAGGER}/swagger-ui-bundle.js",
                css_url=f"{_SWAGGER}/swagger-ui.css",
                standalone_preset_js_url=f"{_SWAGGER}/swagger-ui-standalone-preset.js",
                favicon=_FAVICON,
            ),
            _Redoc(
                path="/redoc",
                js_url=f"{ASSETS}/redoc/redoc.standalone.js",
                google_fonts=False,
                favicon=_FAVICON,
            ),
        ],
    )


def assets_router() -> Router:
    """The shipped Swagger UI and ReDoc files, under `/docs/assets`, left out of the OpenAPI document."""
    return create_static_files_router(
        path=ASSETS, directories=[ASSETS_DIR], name="docs-assets", include_in_schema=False
    )
