"""What a login leaves in Relais' logs: never the code, a token, the e-mail, the names or the sub."""

from __future__ import annotations

import json
from urllib.parse import parse_qs, urlsplit

import pytest

from tests.fakes.proconnect import FakeProConnect, FakeUser
from tests.habilitations.test_login import EMAIL, SIRET, Login, flow, proconnect
from tests.support.hub import Hub, hub, hub_app

# Fixtures the test below requests by name.
FIXTURES = (hub, hub_app, flow, proconnect)


def _server_log(captured: str) -> str:
    """Relais' own log lines: the test client's lines about its calls to the app are the test's."""
    return "\n".join(
        line for line in captured.splitlines() if "http://testserver/" not in line and "Captured" not in line
    )


def test_no_personal_data_or_secret_reaches_the_logs(
    flow: Login, hub: Hub, proconnect: FakeProConnect, capsys: pytest.CaptureFixture[str]
) -> None:
    capsys.readouterr()
    callback = flow.callback_url()
    code = parse_qs(urlsplit(callback).query)["code"][0]
    state = parse_qs(urlsplit(callback).query)["state"][0]
    body = flow.finish(callback).json()
    hub.client.get("/relais/connexion/v1/moi", headers={"Authorization": f"Bearer {body['jetonAcces']}"})
    hub.client.post(
        "/relais/connexion/v1/deconnexion",
        json={"jetonIdentite": body["jetonIdentite"]},
        headers={"Authorization": f"Bearer {body['jetonAcces']}"},
    )
    # Refusals too: a replay, an unknown person, a forged ID token.
    flow.finish(callback)
    proconnect.user = FakeUser(email="personne.inconnue@gironde.fr", given_name="Zoé", usual_name="Inconnue")
    flow.login()
    proconnect.id_token_signer = "intruder"
    flow.login()

    log = _server_log(capsys.readouterr().err)

    lines = [json.loads(line) for line in log.splitlines() if line.startswith("{")]
    assert any(line.get("event") == "request" and line.get("operation") == "terminerConnexion" for line in lines)
    secrets_and_personal_data = [
        code,
        state,
        body["jetonAcces"],
        body["jetonIdentite"],
        proconnect.client_secret,
        EMAIL,
        "personne.inconnue",
        "Claire",
        "Martin",
        "Zoé",
        "Inconnue",
        proconnect.user.sub,
        SIRET,
    ]
    for value in secrets_and_personal_data:
        assert value.lower() not in log.lower(), f"found in the logs: {value[:12]}..."
