"""GET /docs: the interactive API reference (Swagger UI over /openapi.json), served from files
installed with the package, so nothing loads from a CDN. (GET / is the dashboard, whose sign-in
page links here.)

The files come from swagger-ui-py, which ships Swagger UI's own distribution and follows its
releases (Swagger UI 5 renders OpenAPI 3.1 and its `webhooks`); the package's framework glue and
templates are not used, only its static folder.
"""

from __future__ import annotations

from importlib.util import find_spec
from pathlib import Path

from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.staticfiles import StaticFiles


def _assets_folder() -> Path:
    # Located, not imported: the package's own modules (and their Jinja2) are never loaded.
    spec = find_spec("swagger_ui")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("swagger-ui-py is not installed")
    return Path(spec.submodule_search_locations[0]) / "static"


ASSETS = _assets_folder()
ASSETS_PATH = "/docs/assets"

# validatorUrl: null keeps Swagger UI from sending the document to its public validator.
PAGE = f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>videohooks API reference</title>
<link rel="stylesheet" href="{ASSETS_PATH}/swagger-ui.css">
<link rel="icon" type="image/png" href="{ASSETS_PATH}/favicon-32x32.png" sizes="32x32">
</head>
<body>
<div id="reference"></div>
<script src="{ASSETS_PATH}/swagger-ui-bundle.js"></script>
<script src="/docs/start.js"></script>
</body>
</html>
"""

START = """window.ui = SwaggerUIBundle({
  url: "/openapi.json",
  dom_id: "#reference",
  deepLinking: true,
  validatorUrl: null,
  persistAuthorization: true,
  presets: [SwaggerUIBundle.presets.apis],
  layout: "BaseLayout"
});
"""


def assets() -> StaticFiles:
    return StaticFiles(directory=ASSETS)


async def page(request: Request) -> Response:
    return HTMLResponse(PAGE)


async def start(request: Request) -> Response:
    return Response(START, media_type="text/javascript")
