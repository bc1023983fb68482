"""/metrics: behind a token, labelled only by the specs' operation ids, free of any value a
caller sent (issue 14 finding 4); probes with a valid token are audited (finding 8)."""

from __future__ import annotations

import pytest
from sqlmodel import col, select

from audit.models import AuditEvent
from tests.support.hub import Hub
from tests.support.people import GIRONDE
from tests.support.scopes import RECHERCHE

METRICS_TOKEN = "metrics-token-for-tests-0123456789"


@pytest.fixture
def metrics_hub(hub: Hub) -> Hub:
    # The hub puts the settings back on exit.
    hub.services.settings = hub.services.settings.model_copy(update={"metrics_token": METRICS_TOKEN})
    return hub


def _metrics(hub: Hub) -> str:
    response = hub.client.get("/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"})
    assert response.status_code == 200
    return response.text


def _events(hub: Hub) -> list[AuditEvent]:
    with hub.services.database.session() as session:
        return list(session.exec(select(AuditEvent).order_by(col(AuditEvent.seq))).all())


def test_metrics_count_calls_by_operation_and_status(metrics_hub: Hub) -> None:
    hub = metrics_hub
    token = hub.token()
    hub.client.post(
        f"{RECHERCHE}/par-numero-francetravail",
        json={"numeroFranceTravail": GIRONDE.numero},
        headers=hub.headers(token),
    )
    text = _metrics(hub)
    assert 'relais_requests_total{operation="RechercherUsagerParNumeroFranceTravail",status="200"} 1.0' in text
    assert "relais_audit_append_duration_seconds_count" in text
    assert "relais_request_duration_seconds_bucket" in text


def test_metrics_need_the_configured_token(metrics_hub: Hub) -> None:
    hub = metrics_hub
    assert hub.client.get("/metrics").status_code == 401
    assert hub.client.get("/metrics", headers={"Authorization": "Bearer wrong"}).status_code == 401
    assert hub.client.get("/metrics", headers={"Authorization": f"Basic {METRICS_TOKEN}"}).status_code == 401
    assert "relais_requests_total" not in hub.client.get("/metrics").text


def test_metrics_are_off_without_a_configured_token(hub: Hub) -> None:
    assert hub.services.settings.metrics_token == ""
    response = hub.client.get("/metrics", headers={"Authorization": "Bearer "})
    assert response.status_code == 404
    assert "relais_requests_total" not in response.text


def test_unknown_paths_share_one_label_and_no_value_reaches_metrics_or_logs(
    metrics_hub: Hub, capsys: pytest.CaptureFixture[str]
) -> None:
    hub = metrics_hub
    nir = GIRONDE.nir
    capsys.readouterr()
    for index in range(50):
        hub.client.get(f"/partenaire/x/{nir}/{index}")
        hub.client.get(f"/nowhere/{nir}-{index}?nir={nir}", headers={"pa-nom-agent": nir})
    # In a body, to an unknown path and to a known one that refuses it.
    hub.client.post(f"/nowhere/{nir}", json={"nir": nir}, headers={"pa-identifiant-agent": nir})
    hub.client.post(
        f"{RECHERCHE}/par-datenaissance-et-nir",
        json={"nir": nir, "dateNaissance": "bad"},
        headers={"pa-nom-agent": nir},
    )
    logged = capsys.readouterr().err
    text = _metrics(hub)
    assert nir not in text and nir not in logged
    assert "/nowhere" not in text and "/nowhere" not in logged
    assert '"operation": "unknown"' in logged
    assert 'relais_requests_total{operation="unknown",status="404"} 101.0' in text
    # One label per operation and status, however many paths callers invent.
    assert text.count("relais_requests_total{") < 10


def test_a_probe_with_a_valid_token_is_audited(hub: Hub) -> None:
    token = hub.token()
    before = len(_events(hub))
    unknown = hub.client.get("/partenaire/rechercher-usager/v2/admin", headers=hub.headers(token))
    wrong_method = hub.client.delete(f"{RECHERCHE}/par-numero-francetravail", headers=hub.headers(token))
    anonymous = hub.client.get("/partenaire/rechercher-usager/v2/admin")
    forged = hub.client.get("/partenaire/rechercher-usager/v2/admin", headers={"Authorization": "Bearer x.y.z"})
    assert [r.status_code for r in (unknown, wrong_method, anonymous, forged)] == [404, 405, 404, 404]
    events = _events(hub)[before:]
    # The two probes with a valid token, attributed; the anonymous ones only logged.
    assert [(e.operation, e.http_status, e.client_id, e.reason) for e in events] == [
        ("unknown", 404, "cd33", "no_such_operation"),
        ("unknown", 405, "cd33", "no_such_operation"),
    ]
