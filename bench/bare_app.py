"""The baseline: a bare Starlette app answering the Rechercher usager path with a fixed JSON body.

It does what every ASGI JSON endpoint must do (route, read and parse the JSON body, serialise a
JSON answer) and nothing Relais adds (token check, spec validation, database, audit), so the
Relais / bare ratio isolates the cost of Relais itself on the same machine and server stack.
"""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

PATH = "/partenaire/rechercher-usager/v2/usagers/par-numero-francetravail"

# The shape of Relais' S002 answer, so both servers send bodies of comparable size.
ANSWER = {
    "codeRetour": "S002",
    "message": "Aucun usager trouvé",
    "topIdentiteCertifiee": "null",
    "jetonUsager": "null",
}


async def rechercher(request: Request) -> JSONResponse:
    # Parse the body like Relais does, so the baseline pays for reading the request too.
    await request.json()
    return JSONResponse(ANSWER)


async def healthz(request: Request) -> JSONResponse:
    # Same readiness probe path as Relais, so run.py waits for both servers the same way.
    return JSONResponse({"status": "ok"})


app = Starlette(routes=[Route(PATH, rechercher, methods=["POST"]), Route("/healthz", healthz)])
