"""GET /docs: Swagger UI served from this server (no CDN, no inline script).

The Swagger UI files come from the `swagger-ui-bundle-v2` package and are mounted at
/docs-assets by `app.main`; the start-up code is /docs/init.js. Without the package, /docs
is a plain page listing the endpoints, with a link to /openapi.json.
"""

from __future__ import annotations

import html
import importlib.util

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

router = APIRouter(include_in_schema=False)

ASSETS = "/docs-assets"

_SWAGGER_PAGE = f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>cnnviz API</title>
<link rel="stylesheet" href="{ASSETS}/swagger-ui.css">
<link rel="icon" href="{ASSETS}/favicon-32x32.png">
</head>
<body>
<div id="swagger-ui"></div>
<script src="{ASSETS}/swagger-ui-bundle.js"></script>
<script src="/docs/init.js"></script>
</body>
</html>
"""

_INIT_JS = """"use strict";
window.addEventListener("load", function () {
  window.ui = SwaggerUIBundle({
    url: "/openapi.json",
    dom_id: "#swagger-ui",
    deepLinking: true,
    validatorUrl: null,
    presets: [SwaggerUIBundle.presets.apis],
    layout: "BaseLayout",
  });
});
"""


def swagger_ui_dir():
    """The Swagger UI dist directory, or None when swagger-ui-bundle is not installed."""
    if importlib.util.find_spec("swagger_ui_bundle") is None:
        return None
    from swagger_ui_bundle import swagger_ui_path

    return swagger_ui_path


def _fallback_page(request: Request) -> str:
    rows = []
    for path, ops in request.app.openapi().get("paths", {}).items():
        for method, op in ops.items():
            rows.append(
                f"<li><code>{html.escape(method.upper())} {html.escape(path)}</code> "
                f"— {html.escape(op.get('summary', ''))}</li>"
            )
    return (
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>"
        "<title>cnnviz API</title></head><body><h1>cnnviz API</h1>"
        f"<ul>{''.join(rows)}</ul><p>The OpenAPI schema: "
        "<a href='/openapi.json'>/openapi.json</a>; the guide: docs/api.md.</p>"
        "</body></html>"
    )


@router.get("/docs", response_class=HTMLResponse)
def docs_page(request: Request) -> HTMLResponse:
    if swagger_ui_dir() is None:
        return HTMLResponse(_fallback_page(request))
    return HTMLResponse(_SWAGGER_PAGE)


@router.get("/docs/init.js")
def docs_init() -> Response:
    return Response(_INIT_JS, media_type="text/javascript")
