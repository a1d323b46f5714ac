"""The status page's shell and Swagger UI, served from the package (static/): /docs
works offline and loads no code from elsewhere. Neither holds data: no token asked."""

from __future__ import annotations

from importlib import resources

from fastapi import APIRouter, HTTPException
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import FileResponse, HTMLResponse

# static/swagger-ui (Apache-2.0)
SWAGGER_FILES = {"swagger-ui-bundle.js", "swagger-ui.css", "favicon-32x32.png"}

router = APIRouter(include_in_schema=False)


@router.get("/", response_class=HTMLResponse)
async def status_page() -> HTMLResponse:
    page = resources.files("cdc_verify.api").joinpath("static/status.html").read_text()
    return HTMLResponse(page)


@router.get("/docs", response_class=HTMLResponse)
async def docs() -> HTMLResponse:
    return get_swagger_ui_html(
        openapi_url="openapi.json",
        title="cdc-verify API",
        swagger_js_url="docs/swagger-ui-bundle.js",
        swagger_css_url="docs/swagger-ui.css",
        swagger_favicon_url="docs/favicon-32x32.png",
        swagger_ui_parameters={"validatorUrl": None},  # no badge fetched from elsewhere
    )


@router.get("/docs/{name}")
async def docs_asset(name: str) -> FileResponse:
    if name not in SWAGGER_FILES:
        raise HTTPException(404, f"no file {name!r}")
    path = resources.files("cdc_verify.api").joinpath(f"static/swagger-ui/{name}")
    return FileResponse(str(path), headers={"cache-control": "max-age=86400"})
