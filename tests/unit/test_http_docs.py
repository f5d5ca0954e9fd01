"""The docs pages work offline: Swagger UI and ReDoc load only the pinned assets shipped in the package."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from typing import Any

import msgspec
import pytest
from litestar.testing import AsyncTestClient

from predictor_litestar import create_app
from predictor_litestar.docs import ASSETS, ASSETS_DIR
from tests.fakes import fake_service, toy_manifest

PAGES = ["/docs", "/docs/redoc"]
_LINKED = re.compile(r"""(?:src|href)\s*=\s*["']([^"']+)["']""")
_CDN = re.compile(r"(?:https?:)?//[^\"'\s]*(?:cdn|jsdelivr|unpkg|googleapis|redoc\.ly)", re.IGNORECASE)
_TYPES = {
    ".js": {"text/javascript", "application/javascript"},
    ".css": {"text/css"},
    ".png": {"image/png"},
}


@pytest.fixture
async def client() -> AsyncIterator[AsyncTestClient[Any]]:
    service, registry = fake_service()
    async with AsyncTestClient(create_app(service, registry)) as c:
        yield c


async def linked(client: AsyncTestClient[Any], page: str) -> list[str]:
    r = await client.get(page)
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/html")
    assert not _CDN.search(r.text), _CDN.search(r.text)
    return _LINKED.findall(r.text)


@pytest.mark.parametrize("page", PAGES)
async def test_docs_pages_link_only_to_shipped_assets(client, page) -> None:
    urls = await linked(client, page)
    assert any(u.endswith(".js") for u in urls), urls
    assert all(u.startswith(f"{ASSETS}/") for u in urls), urls


@pytest.mark.parametrize("page", PAGES)
async def test_every_linked_asset_is_served_with_its_content_type(client, page) -> None:
    for url in await linked(client, page):
        r = await client.get(url)
        assert r.status_code == 200, url
        media = r.headers["content-type"].split(";")[0].strip()
        assert media in _TYPES[url[url.rindex(".") :]], (url, media)
        assert r.content == (ASSETS_DIR / url.removeprefix(f"{ASSETS}/")).read_bytes()


@pytest.mark.parametrize("page", PAGES)
async def test_the_pages_content_security_policy_allows_their_own_origin_only(client, page) -> None:
    r = await client.get(page)
    meta = re.search(r'<meta http-equiv="Content-Security-Policy" content="([^"]+)"', r.text)
    assert meta is not None
    assert r.text.index(meta[0]) < r.text.index("<script")  # it governs every script of the page
    header = r.headers.get("content-security-policy")
    for policy in [meta[1]] if header is None else [meta[1], header]:
        directives = dict(d.strip().split(" ", 1) for d in policy.split(";") if d.strip())
        for directive in ("script-src", "style-src", "img-src", "connect-src"):
            assert "'self'" in directives.get(directive, directives.get("default-src", "")), directive
        assert "http" not in policy  # no other origin, CDN or otherwise


async def test_assets_stay_out_of_the_api_and_unknown_files_are_404(client) -> None:
    spec = (await client.get("/docs/openapi.json")).json()
    assert not [p for p in spec["paths"] if p.startswith(ASSETS)]
    assert (await client.get(f"{ASSETS}/swagger-ui/nope.js")).status_code == 404
    assert (await client.get(f"{ASSETS}/../app.py")).status_code == 404


def test_the_assets_readme_names_the_versions_shipped() -> None:
    readme = (ASSETS_DIR / "README.md").read_text()
    swagger = re.search(
        r'PACKAGE_VERSION:"([\d.]+)"', (ASSETS_DIR / "swagger-ui/swagger-ui-bundle.js").read_text()
    )
    redoc = re.search(
        r'Version: "([\d.]+)"', (ASSETS_DIR / "redoc/redoc.standalone.js.LICENSE.txt").read_text()
    )
    assert swagger is not None
    assert redoc is not None
    assert f"swagger-ui-dist@{swagger[1]}" in readme
    assert f"redoc@{redoc[1]}" in readme
    for license_file in ("swagger-ui/LICENSE", "redoc/LICENSE"):
        assert (ASSETS_DIR / license_file).is_file()


async def test_null_feature_values_stay_in_the_documented_examples() -> None:
    """Litestar drops None from dicts in the document; a null (missing) value must stay, or it is refused."""
    manifest = toy_manifest()
    record = {"x": 1.0, "y": 2.0, "n": 3, "flag": True, "colour": None}
    schema = msgspec.structs.replace(manifest.schema, examples=(record,))
    service, registry = fake_service([msgspec.structs.replace(manifest, schema=schema)])
    async with AsyncTestClient(create_app(service, registry)) as c:
        spec = (await c.get("/docs/openapi.json")).json()
        for path, key in [("/predict", "default model"), ("/models/{name}/predict", "toy")]:
            content = spec["paths"][path]["post"]["requestBody"]["content"]["application/json"]
            assert content["examples"][key]["value"] == {"features": record}
        assert (await c.post("/predict", json={"features": record})).status_code == 200
        assert (await c.get("/models/toy")).json()["example"] == record
