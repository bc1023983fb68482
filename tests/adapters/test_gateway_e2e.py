"""Gateway mode proven with real processes: a Relais in front of a Relais playing France Travail.

A reference-store ``relais serve`` loaded with the demo data speaks France Travail's contract
(paths, token endpoint, headers, bodies): it stands in for the platform. A second ``relais
serve``, configured by environment only (``RELAIS_BACKEND=france-travail``, ``RELAIS_FT_*``),
forwards to it. Every partner operation is made through the gateway and, the same moment, made
directly on a twin of the upstream (a copy of its data directory, served in the test's own
process, so both evolve alike): the two
answers must agree (status, body, codes) but for what two Relais generate each their own (the
jeton, which the gateway replaces with its own, ids and instants). The test ends by checking
that every operationId the specs serve under ``/partenaire/`` was compared so.

The gateway calls with one France Travail application per organisation
(``RELAIS_FT_CREDENTIALS_FILE``): CD33 and CD2A each see their own usagers only, and CD93's
application is throttled upstream (1 call per second) to see a 429 come back with its
``Retry-After``. Finally the upstream is stopped: the gateway answers the contracts' 503.

The gateway's own store is the run's database (PostgreSQL when ``RELAIS_TEST_DATABASE_URL`` is
set); the upstreams keep the embedded SQLite. Bounded: two servers, two demo loads, about a
hundred loopback calls.
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.testclient import TestClient

from api.app import create_app
from habilitations.clients import create_client
from relais.core.config import Settings
from relais.core.db import Database
from relais.demo.dataset import build_demo_records, demo_parcours
from tests.adapters.gateway_e2e_support import (
    READY_TIMEOUT,
    Server,
    Side,
    body_of,
    comparable,
    finish,
    relais_env,
    start_cli,
)
from tests.adapters.gateway_fixtures import operation_of, partner_routes

P = "/partenaire"
RECHERCHE = f"{P}/rechercher-usager/v2/usagers"
INFOS = f"{P}/informations-administratives/v1/usager"
STATUT = f"{P}/contrat-usager/v2/contrat"
ACTIVITES_V1 = f"{P}/activites-operationnelles/v1/activites/chercher"
ACTIVITES_V2 = f"{P}/activites-operationnelles/v2/activites/chercher"
ORIENTATION = f"{P}/orientationusager/v1"
RDV = f"{P}/rendez-vous-partenaire/v1"
CONTRAT = f"{P}/contrat-engagement/v1"
SANCTIONS = f"{P}/gestion-sanctions-rsa/v1"
DIAGNOSTICS = f"{P}/diagnosticargumente/v4/diagnostics"
RECHERCHE_SCOPES = "api_rechercher-usagerv2 rechercheusager profil_accedant"
# The upstream application CD93 calls with: a throttled one, to see France Travail's 429.
THROTTLED = "ft-cd93-limitee"


@dataclass
class Platform:
    gateway: Side
    # Calls made directly on the twin of the upstream the gateway forwards to.
    direct: Side
    # The upstream itself, called directly only to check a gateway jeton is useless there.
    upstream: Side
    upstream_server: Server
    demo: dict[str, Any]
    # The partner operationIds called through the gateway and found to answer as directly.
    compared: set[str] = field(default_factory=set)

    def both(
        self, method: str, path: str, *, client: str = "demo-cd33", usager: str | None = None, **kwargs: Any
    ) -> tuple[httpx.Response, httpx.Response]:
        """The same call through the gateway and on the twin; they must answer alike."""
        through = self.gateway.call(method, path, client=client, usager=usager, **kwargs)
        direct = self.direct.call(method, path, client=client, usager=usager, **kwargs)
        self.alike(method, path, through, direct)
        return through, direct

    def alike(self, method: str, path: str, through: httpx.Response, direct: httpx.Response) -> None:
        """Both answers agree (status, body but for jetons, ids, instants); counts the operation."""
        assert through.status_code == direct.status_code, (method, path, through.text, direct.text)
        assert comparable(body_of(through)) == comparable(body_of(direct)), (method, path)
        operation = operation_of(method, path)
        assert operation is not None, f"{method} {path}: no partner operation of the specs"
        self.compared.add(operation)

    def search(self, numero: str, *, client: str = "demo-cd33") -> tuple[httpx.Response, httpx.Response]:
        answers = self.both(
            "POST", f"{RECHERCHE}/par-numero-francetravail", client=client, json={"numeroFranceTravail": numero}
        )
        for side, answer in zip((self.gateway, self.direct), answers, strict=True):
            jeton = body_of(answer).get("jetonUsager") if answer.status_code == 200 else None
            if isinstance(jeton, str):
                side.jetons[(client, numero)] = jeton
        return answers


@pytest.fixture
def platform(tmp_path: Path, database_url: str) -> Iterator[Platform]:
    upstream_dir, twin_dir, gateway_dir = tmp_path / "upstream", tmp_path / "twin", tmp_path / "gateway"
    upstream_env = relais_env(upstream_dir)
    # The gateway's own clients, agents and habilitations (its own keys, as in real life), in
    # the run's database; both loads at once.
    loads = [
        start_cli(upstream_env, "demo", "--json"),
        start_cli(relais_env(gateway_dir, RELAIS_DATABASE_URL=database_url), "demo"),
    ]
    demo = json.loads(finish(loads[0]))
    finish(loads[1])
    throttled_secret = _create_throttled_client(upstream_dir)
    # The twin: same data, same keys, so the upstream and its twin answer alike call after call.
    shutil.copytree(upstream_dir, twin_dir)

    secrets = {client["client_id"]: client["client_secret"] for client in demo["clients"]}
    credentials_file = tmp_path / "ft-credentials.json"
    credentials_file.write_text(
        json.dumps(
            {
                "CD33": {"client_id": "demo-cd33", "client_secret": secrets["demo-cd33"]},
                "CD2A": {"client_id": "demo-cd2a", "client_secret_env": "FT_SECRET_CD2A"},
                "CD93": {"client_id": THROTTLED, "client_secret": throttled_secret},
            }
        )
    )
    upstream = Server("upstream", upstream_env, tmp_path / "upstream.log")
    gateway = Server(
        "gateway",
        relais_env(
            gateway_dir,
            RELAIS_DATABASE_URL=database_url,
            RELAIS_BACKEND="france-travail",
            RELAIS_FT_API_URL=upstream.url,
            RELAIS_FT_TOKEN_URL=f"{upstream.url}/connexion/oauth2/access_token",
            RELAIS_FT_CREDENTIALS_FILE=str(credentials_file),
            # A 429 goes back to the caller at once, with its Retry-After.
            RELAIS_FT_MAX_RETRIES="0",
            RELAIS_FT_TIMEOUT_SECONDS="10",
            RELAIS_FT_CONNECT_TIMEOUT_SECONDS="2",
            FT_SECRET_CD2A=secrets["demo-cd2a"],
        ),
        tmp_path / "gateway.log",
    )
    servers = [upstream, gateway]
    all_scopes = {client["client_id"]: " ".join(client["scopes"]) for client in demo["clients"]}
    try:
        for server in servers:
            server.start()
        # The twin is served in this process (its modules are loaded already): no third server.
        twin_settings = Settings(data_dir=twin_dir, database_url=f"sqlite:///{(twin_dir / 'relais.db').as_posix()}")
        with (
            TestClient(create_app(twin_settings)) as twin,
            httpx.Client(base_url=gateway.url, timeout=30) as through,
            httpx.Client(base_url=upstream.url, timeout=30) as direct_upstream,
        ):
            deadline = time.monotonic() + READY_TIMEOUT
            for server in servers:
                server.wait_ready(deadline)
            yield Platform(
                gateway=Side(through, secrets, all_scopes),
                direct=Side(
                    twin, {**secrets, THROTTLED: throttled_secret}, {**all_scopes, THROTTLED: RECHERCHE_SCOPES}
                ),
                upstream=Side(direct_upstream, secrets, all_scopes),
                upstream_server=upstream,
                demo=demo,
            )
    finally:
        for server in reversed(servers):
            server.stop()


def _create_throttled_client(data_dir: Path) -> str:
    """CD93's upstream application, limited to 1 call per second; its secret."""
    database = Database(f"sqlite:///{(data_dir / 'relais.db').as_posix()}")
    try:
        with database.transaction() as session:
            _, secret = create_client(
                session,
                client_id=THROTTLED,
                organisation_code="CD93",
                scopes=RECHERCHE_SCOPES.split(),
                rate_limit_per_second=1,
                national=False,
            )
    finally:
        database.dispose()
    return str(secret)


def _today() -> str:
    return datetime.now(UTC).date().isoformat()


def _activites(platform: Platform, code: str) -> list[dict[str, Any]]:
    through, _ = platform.both("GET", ACTIVITES_V2, params={"codeActivite": code})
    assert through.status_code == 200, through.text
    return list(through.json()["activites"])


def test_the_whole_parcours_through_a_gateway_in_front_of_a_real_relais(platform: Platform) -> None:
    usagers = {usager["organisation"]: usager for usager in reversed(platform.demo["usagers"])}
    gironde, corse = usagers["CD33"]["numeroFranceTravail"], usagers["CD2A"]["numeroFranceTravail"]

    _rechercher_usager(platform, gironde)
    _lectures(platform, gironde)
    _orientation(platform)
    _rendez_vous(platform, gironde)
    _contrat_engagement(platform, gironde)
    _sanctions(platform)
    _diagnostic(platform, gironde)
    _per_organisation_credentials(platform, gironde, corse)
    _throttled_upstream(platform, gironde)
    _upstream_stopped(platform, gironde)
    # Every partner operation of every API went through the gateway and answered as directly:
    # an operation added to a contract and not to this journey fails here.
    missing = sorted(set(partner_routes()) - platform.compared)
    assert not missing, f"partner operations never compared through the gateway: {missing}"


def _rechercher_usager(platform: Platform, numero: str) -> None:
    through, direct = platform.search(numero)
    assert through.status_code == 200 and through.json()["codeRetour"] == "S001", through.text
    # The gateway hands out its own jeton, never France Travail's.
    assert through.json()["jetonUsager"] != direct.json()["jetonUsager"]
    nir = next(usager for usager in platform.demo["usagers"] if usager["numeroFranceTravail"] == numero)
    by_nir, _ = platform.both(
        "POST", f"{RECHERCHE}/par-datenaissance-et-nir", json={"nir": nir["nir"], "dateNaissance": nir["dateNaissance"]}
    )
    assert by_nir.json()["codeRetour"] == "S001"
    # Unknown usager (S002), bad request (R997): the upstream's own answers, come back alike.
    unknown, _ = platform.both(
        "POST", f"{RECHERCHE}/par-numero-francetravail", json={"numeroFranceTravail": "00000000000"}
    )
    assert unknown.json()["codeRetour"] == "S002"
    bad, _ = platform.both("POST", f"{RECHERCHE}/par-numero-francetravail", json={"numero": numero})
    assert (bad.status_code, bad.json()["codeRetour"]) == (400, "R997")
    # A gateway jeton means nothing to the platform: the upstream refuses it.
    gateway_jeton = platform.gateway.jetons[("demo-cd33", numero)]
    refused = platform.upstream.call("GET", INFOS, client="demo-cd33", jeton=gateway_jeton)
    assert refused.status_code == 401


def _lectures(platform: Platform, numero: str) -> None:
    infos, _ = platform.both("GET", INFOS, usager=numero)
    assert infos.status_code == 200 and infos.json()["numeroFranceTravail"] == numero
    statut, _ = platform.both("GET", STATUT, usager=numero)
    assert statut.status_code == 200 and "m_contrat" in statut.json()
    v1, _ = platform.both("GET", ACTIVITES_V1, params={"codeFamille": "GLI100"})
    assert v1.status_code in (200, 204)
    v2, _ = platform.both("GET", ACTIVITES_V2, params={"codeFamille": "GLI100"})
    assert v2.status_code in (200, 204)


def _orientation(platform: Platform) -> None:
    # The IND preconisation waits too (ACT382) but must be completed first: take a decidable one.
    decidable = set(demo_parcours(build_demo_records())["preconisations"])
    numero = next(
        activite["usager"]["identifiant"]
        for activite in _activites(platform, "ACT382")
        if activite["usager"]["identifiant"] in decidable
    )
    platform.search(numero)
    lecture, _ = platform.both(
        "GET", f"{ORIENTATION}/lectureOrientation", usager=numero, params={"etatOrientation": "EN_ATTENTE"}
    )
    assert lecture.status_code == 200 and lecture.json(), lecture.text
    decision = {
        "etat_decision": "ACCEPTEE",
        "date_decision": _today(),
        "organisme_decision": "CD",
        "agent_decision": "Claire Martin",
    }
    decided, _ = platform.both("POST", f"{ORIENTATION}/decisionOrientation", usager=numero, json=decision)
    assert decided.status_code == 201, decided.text
    # A parcours rule: nothing is pending any more, a second decision is refused alike.
    again, _ = platform.both("POST", f"{ORIENTATION}/decisionOrientation", usager=numero, json=decision)
    assert again.status_code in (404, 409), again.text
    calcul, _ = platform.both(
        "POST",
        f"{ORIENTATION}/calculOrientation",
        usager=numero,
        json={
            "brsa": True,
            "date_naissance": "1990-04-12",
            "adresse": {"code_commune": "33063", "libelle_commune": "BORDEAUX", "code_postal": "33000"},
            "type_emploi": "AUTRE",
        },
    )
    assert calcul.status_code < 500, calcul.text
    forced, _ = platform.both(
        "POST", f"{ORIENTATION}/orientation", usager=numero, json={"parcours": "PED", "organisme": "FT"}
    )
    assert forced.status_code < 500, forced.text


def _rendez_vous(platform: Platform, numero: str) -> None:
    body = {
        "date": "2030-01-15T10:30:00+01:00",
        "duree": 45,
        "motif": "ACC",
        "statut": "PRIS",
        "modaliteContact": "PHYSIQUE",
        "typeReception": "IND",
        "initiateur": "PARTENAIRE",
        "organisme": {"code": "CD", "emailContact": "insertion@example.org"},
    }
    created_through = platform.gateway.call("POST", f"{RDV}/rendez-vous", client="demo-cd33", usager=numero, json=body)
    created_direct = platform.direct.call("POST", f"{RDV}/rendez-vous", client="demo-cd33", usager=numero, json=body)
    assert created_through.status_code == 202, created_through.text
    platform.alike("POST", f"{RDV}/rendez-vous", created_through, created_direct)
    listed, _ = platform.both("GET", f"{RDV}/rendez-vous-usager", usager=numero)
    assert listed.status_code == 200
    # Each side modifies and deletes its own rendez-vous (ids are generated by each upstream).
    for side, created in ((platform.gateway, created_through), (platform.direct, created_direct)):
        side.jetons[("rdv", "id")] = str(created.json()["id"])
    modified = [
        side.call(
            "PUT",
            f"{RDV}/rendez-vous",
            client="demo-cd33",
            usager=numero,
            json={**body, "id": side.jetons[("rdv", "id")], "duree": 60},
        )
        for side in (platform.gateway, platform.direct)
    ]
    assert modified[0].status_code < 300, modified[0].text
    platform.alike("PUT", f"{RDV}/rendez-vous", *modified)
    deleted = [
        side.call("DELETE", f"{RDV}/rendez-vous/{side.jetons[('rdv', 'id')]}", client="demo-cd33", usager=numero)
        for side in (platform.gateway, platform.direct)
    ]
    assert deleted[0].status_code < 300, deleted[0].text
    platform.alike("DELETE", f"{RDV}/rendez-vous/{platform.gateway.jetons[('rdv', 'id')]}", *deleted)
    # An unknown rendez-vous: the platform's refusal comes back as it was sent.
    unknown, _ = platform.both("DELETE", f"{RDV}/rendez-vous/RDV-INCONNU", usager=numero)
    assert (unknown.status_code, unknown.json()["codeErreur"]) == (400, "ID_NON_RECONNU"), unknown.text


def _contrat_engagement(platform: Platform, numero: str) -> None:
    lecture, _ = platform.both("GET", f"{CONTRAT}/lecture", usager=numero)
    assert lecture.status_code in (200, 204)
    signed, _ = platform.both(
        "POST",
        f"{CONTRAT}/signer",
        usager=numero,
        json={"dateSignature": datetime.now(UTC).isoformat(timespec="seconds")},
    )
    assert signed.status_code in (200, 201), signed.text
    # A second first signature breaks a parcours rule: refused alike.
    refused, _ = platform.both(
        "POST", f"{CONTRAT}/refuser", usager=numero, json={"dateRefus": datetime.now(UTC).isoformat(timespec="seconds")}
    )
    assert 400 <= refused.status_code < 500, refused.text
    for method, action, name in (("PATCH", "signer", "dateSignature"), ("PATCH", "refuser", "dateRefus")):
        answer, _ = platform.both(
            method, f"{CONTRAT}/{action}", usager=numero, json={name: datetime.now(UTC).isoformat(timespec="seconds")}
        )
        assert answer.status_code < 500, answer.text
    after, _ = platform.both("GET", f"{CONTRAT}/lecture", usager=numero)
    assert after.status_code == 200


def _sanctions(platform: Platform) -> None:
    (activite, *_) = _activites(platform, "ACT366")
    numero = activite["usager"]["identifiant"]
    identifiant = next(
        a["valeur"] for a in activite["attributsSpecifiques"] if a["nom"] == "identifiantConsequenceSanction"
    )
    platform.search(numero)
    detail, _ = platform.both(
        "GET", f"{SANCTIONS}/detailManquement", usager=numero, params={"identifiantSanction": identifiant}
    )
    assert detail.status_code == 200, detail.text
    unknown, _ = platform.both(
        "GET", f"{SANCTIONS}/detailManquement", usager=numero, params={"identifiantSanction": "INCONNU"}
    )
    assert unknown.status_code == 404, unknown.text
    saisie = {
        "identifiantConsequenceSanction": identifiant,
        "evenement": {"typeEvenement": "SAISIE_SANCTION", "dateEvenement": _today()},
    }
    seized, _ = platform.both("POST", f"{SANCTIONS}/evenementSanctionRSA", usager=numero, json=saisie)
    assert seized.status_code < 300, seized.text
    decision = {
        "identifiantConsequenceSanction": identifiant,
        "dateNotificationDecisionSanction": _today(),
        "natureManquement": "N65",
        "rangManquement": "R2",
        "typeSanctionValide": "SUSP_RSA",
        "modaliteDecisionValidee": "P",
        "montantValide": 50,
        "dureeValidee": 4,
    }
    decided, _ = platform.both("POST", f"{SANCTIONS}/decisionSanctionRSAPartenaire", usager=numero, json=decision)
    assert decided.status_code < 500, decided.text
    radiation, _ = platform.both(
        "POST", f"{SANCTIONS}/demandeRadiation", usager=numero, json={"identifiantConsequenceSanction": identifiant}
    )
    assert radiation.status_code < 500, radiation.text


def _diagnostic(platform: Platform, numero: str) -> None:
    listed, _ = platform.both("GET", DIAGNOSTICS, usager=numero)
    assert listed.status_code == 200 and "diagnostics" in listed.json(), listed.text
    body = {"codeTypologie": "MR", "codeRome": "F1204", "codeAppellation": "19070", "nomMetier": "Boulanger"}
    # Each side deletes the diagnostic it created (ids are generated by each upstream).
    created = [
        side.call("POST", DIAGNOSTICS, client="demo-cd33", usager=numero, json=body) for side in _sides(platform)
    ]
    assert created[0].status_code == 200 and created[0].json()["statut"] == "EN_COURS", created[0].text
    platform.alike("POST", DIAGNOSTICS, *created)
    after, _ = platform.both("GET", DIAGNOSTICS, usager=numero)
    assert len(after.json()["diagnostics"]) == len(listed.json()["diagnostics"]) + 1
    deleted = [
        side.call(
            "DELETE", f"{DIAGNOSTICS}/{answer.json()['idDiagnostic']}/supprime", client="demo-cd33", usager=numero
        )
        for side, answer in zip(_sides(platform), created, strict=True)
    ]
    assert deleted[0].status_code == 200, deleted[0].text
    platform.alike("DELETE", f"{DIAGNOSTICS}/{created[0].json()['idDiagnostic']}/supprime", *deleted)
    # Deleted already: the parcours rule's 404 comes back as the upstream sent it.
    again, _ = platform.both("DELETE", f"{DIAGNOSTICS}/{created[0].json()['idDiagnostic']}/supprime", usager=numero)
    assert (again.status_code, again.json()["codeErreur"]) == (404, "DIAGNOSTIC_INCONNU"), again.text


def _sides(platform: Platform) -> tuple[Side, Side]:
    return platform.gateway, platform.direct


def _per_organisation_credentials(platform: Platform, gironde: str, corse: str) -> None:
    # CD33's application does not reach CD2A's usager (R002), and the other way round.
    foreign, _ = platform.search(corse, client="demo-cd33")
    assert (foreign.status_code, foreign.json()["codeRetour"]) == (403, "R002"), foreign.text
    own, _ = platform.search(corse, client="demo-cd2a")
    assert own.json()["codeRetour"] == "S001", own.text
    infos, _ = platform.both("GET", INFOS, client="demo-cd2a", usager=corse)
    assert infos.status_code == 200 and infos.json()["numeroFranceTravail"] == corse
    other_way, _ = platform.search(gironde, client="demo-cd2a")
    assert other_way.json()["codeRetour"] == "R002", other_way.text
    # A jeton obtained through CD33's account is never usable through CD2A's.
    cd33_jeton = platform.gateway.jetons[("demo-cd33", gironde)]
    for path in (INFOS, STATUT, f"{CONTRAT}/lecture"):
        stolen = platform.gateway.call("GET", path, client="demo-cd2a", jeton=cd33_jeton)
        assert stolen.status_code in (401, 403), (path, stolen.text)
        assert gironde not in stolen.text


def _throttled_upstream(platform: Platform, numero: str) -> None:
    # CD93's upstream application allows 1 call per second: a burst meets France Travail's 429.
    # Each side gets its own burst (timings through the gateway are not the direct ones).
    path, body = f"{RECHERCHE}/par-numero-francetravail", {"numeroFranceTravail": numero}
    through = [platform.gateway.call("POST", path, client="demo-cd93", json=body) for _ in range(4)]
    direct = [platform.direct.call("POST", path, client=THROTTLED, json=body) for _ in range(4)]
    limited = [answer for answer in through if answer.status_code == 429]
    expected = [answer for answer in direct if answer.status_code == 429]
    assert limited and expected, ([a.status_code for a in through], [a.status_code for a in direct])
    assert all(float(answer.headers["retry-after"]) > 0 for answer in limited)
    # France Travail's 429 is plain text; it comes back as sent, with its rate-limit headers.
    assert body_of(limited[0]) == body_of(expected[0])
    assert "x-ratelimit-burst-capacity-clientidlimiter" in limited[0].headers
    # The calls let through got the same answer as directly (CD93 does not reach a CD33 usager).
    assert (through[0].status_code, comparable(body_of(through[0]))) == (
        direct[0].status_code,
        comparable(body_of(direct[0])),
    )


def _upstream_stopped(platform: Platform, numero: str) -> None:
    platform.upstream_server.stop()
    search = platform.gateway.call(
        "POST", f"{RECHERCHE}/par-numero-francetravail", client="demo-cd33", json={"numeroFranceTravail": numero}
    )
    assert (search.status_code, search.json()["codeRetour"]) == (503, "R999"), search.text
    infos = platform.gateway.call("GET", INFOS, client="demo-cd33", usager=numero)
    assert infos.status_code == 503 and infos.json()["codeErreur"] == "SERVICE_INDISPONIBLE", infos.text
    activites = platform.gateway.call("GET", ACTIVITES_V2, client="demo-cd33", params={"codeActivite": "ACT380"})
    assert activites.status_code == 503, activites.text
