"""A realistic, deterministic demonstration dataset in the ``relais import`` format.

About 300 usagers live in Gironde (most), Corse-du-Sud and Seine-Saint-Denis, with valid
NIRs consistent with their sex and birth date, addresses in their département, contacts
on reserved example domains and ARCEP fiction numbers, and a France Travail registration
(``m_contrat``) for about four in five. Some records exist to demonstrate specific answers:
usagers without registration (204), explicit attachments to the mission locale and Cap
emploi, and one duplicate pair sharing NIR and birth date (S003 « Plusieurs usagers »).
The usagers with a contrat d'engagement also get a métier recherché (Diagnostic argumenté
v4), written by ``seed_demo_diagnostics`` after the import.

Registered Gironde usagers also have a parcours, so that the whole journey runs on demo
data (see ``demo_parcours``): preconisations waiting for the Gironde's decision (ACT382),
one of them indeterminate (IND, to complete with calculOrientation), decided orientations
with their first appointments and contrats d'engagement (one first appointment still to
take: ACT380), and sanction proposals to instruct (ACT366) or to process (ACT370). The
import runs them through the domain rules, which open those activities.

Longer than the house's ~600 lines on purpose: one generator whose parts (people, addresses,
parcours, habilitations) draw from one seeded random stream, so that the dataset stays the
same from run to run; splitting it would thread that stream through every module.
"""

from __future__ import annotations

import random
import unicodedata
from calendar import monthrange
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from sqlmodel import Session, select

from habilitations.policy import subscribable
from parcours import diagnostic as diagnostic_domain
from parcours.ports import Caller
from parcours.tables import Usager
from relais.core.nir import nir_key
from relais.core.tables import Organisation

DEFAULT_SEED = 2026

RECHERCHE_SCOPES = ("api_rechercher-usagerv2", "rechercheusager", "profil_accedant")
FOUNDATION_SCOPES = (
    *RECHERCHE_SCOPES,
    "api_informations-administrativesv1",
    "informationsadministrativesusager",
    "api_contrat-usagerv2",
    "statutcontratusager",
)
ORIENTATION_SCOPES = ("api_orientationusagerv1", "orientationusager")
ACTIVITES_SCOPES = (
    "api_activites-operationnellesv1",
    "api_activites-operationnellesv2",
    "activitesCD",
    "referentielCD",
)
RDV_SCOPES = ("api_rendez-vous-partenairev1", "gererRDV")
CONTRAT_ENGAGEMENT_SCOPES = ("api_contrat-engagementv1", "contratengagement")
SANCTIONS_SCOPES = (
    "api_gestion-sanctions-rsav1",
    "gestiondesmanquements",
    "decisionSanctionPartenaire",
    "demandeRadiation",
)
DIAGNOSTIC_SCOPES = ("api_diagnosticargumentev4", "diagnosticusageragent")
# Every partner API: what a département's software calls along the parcours.
PARTENAIRE_SCOPES = (
    *FOUNDATION_SCOPES,
    *ORIENTATION_SCOPES,
    *ACTIVITES_SCOPES,
    *RDV_SCOPES,
    *CONTRAT_ENGAGEMENT_SCOPES,
    *SANCTIONS_SCOPES,
    *DIAGNOSTIC_SCOPES,
)
# Relais' producer feed: France Travail's, never a département's.
ALIMENTATION_SCOPES = ("api_alimentationv1", "alimentationusager", "alimentationorientation", "alimentationmanquement")


@dataclass(frozen=True)
class DemoOrganisation:
    code: str
    type: str
    libelle: str
    territoire: tuple[str, ...]
    # Structure codes in France Travail's referentials (fictitious values).
    code_aurore: str | None = None
    code_safir: str | None = None


@dataclass(frozen=True)
class DemoClient:
    client_id: str
    # Published on purpose: these are demonstration credentials, never to be used elsewhere.
    client_secret: str
    organisation: str
    scopes: tuple[str, ...]
    description: str


DEMO_ORGANISATIONS: tuple[DemoOrganisation, ...] = (
    DemoOrganisation("CD33", "CD", "Département de la Gironde", ("33",), "NAQ0405", "33014"),
    DemoOrganisation("CD2A", "CD", "Collectivité de Corse — Corse-du-Sud", ("2A",), "COR0201", "20004"),
    DemoOrganisation("CD93", "CD", "Département de la Seine-Saint-Denis", ("93",), "IDF0930", "93008"),
    DemoOrganisation(
        "FT-NAQ", "FT", "France Travail Nouvelle-Aquitaine", ("24", "33", "40", "47", "64"), "NAQ0057", "33063"
    ),
    DemoOrganisation("ML-BDX", "ML", "Mission locale de Bordeaux", (), "NAQ0612", "33101"),
    DemoOrganisation("CE33", "CE", "Cap emploi Gironde", (), "NAQ0733", "33102"),
)

DEMO_CLIENTS: tuple[DemoClient, ...] = (
    DemoClient(
        "demo-cd33",
        "demo-cd33-secret-change-me-0001",
        "CD33",
        PARTENAIRE_SCOPES,
        "Département de la Gironde : toutes les API partenaires",
    ),
    DemoClient(
        "demo-cd2a",
        "demo-cd2a-secret-change-me-0002",
        "CD2A",
        PARTENAIRE_SCOPES,
        "Corse-du-Sud : toutes les API partenaires",
    ),
    DemoClient(
        "demo-cd93",
        "demo-cd93-secret-change-me-0003",
        "CD93",
        PARTENAIRE_SCOPES,
        "Seine-Saint-Denis : toutes les API partenaires",
    ),
    DemoClient(
        "demo-cd33-limite",
        "demo-cd33-limite-secret-change-me-0004",
        "CD33",
        RECHERCHE_SCOPES,
        "Gironde, Rechercher usager seulement : les autres API répondent 403",
    ),
    DemoClient(
        "demo-ft-naq",
        "demo-ft-naq-secret-change-me-0005",
        "FT-NAQ",
        ALIMENTATION_SCOPES,
        "France Travail Nouvelle-Aquitaine : l'alimentation de Relais (producteur)",
    ),
)


@dataclass(frozen=True)
class _Commune:
    insee: str
    code_postal: str
    libelle: str


# Real INSEE and postcodes, so that addresses place usagers in the right département.
_COMMUNES: dict[str, tuple[_Commune, ...]] = {
    "33": (
        _Commune("33063", "33000", "BORDEAUX"),
        _Commune("33063", "33800", "BORDEAUX"),
        _Commune("33063", "33300", "BORDEAUX"),
        _Commune("33281", "33700", "MERIGNAC"),
        _Commune("33318", "33600", "PESSAC"),
        _Commune("33522", "33400", "TALENCE"),
        _Commune("33039", "33130", "BEGLES"),
        _Commune("33550", "33140", "VILLENAVE-D'ORNON"),
        _Commune("33249", "33310", "LORMONT"),
        _Commune("33119", "33150", "CENON"),
        _Commune("33167", "33270", "FLOIRAC"),
        _Commune("33243", "33500", "LIBOURNE"),
        _Commune("33009", "33120", "ARCACHON"),
        _Commune("33529", "33260", "LA TESTE-DE-BUCH"),
        _Commune("33449", "33160", "SAINT-MEDARD-EN-JALLES"),
        _Commune("33056", "33290", "BLANQUEFORT"),
        _Commune("33227", "33210", "LANGON"),
    ),
    "2A": (
        _Commune("2A004", "20000", "AJACCIO"),
        _Commune("2A004", "20090", "AJACCIO"),
        _Commune("2A247", "20137", "PORTO-VECCHIO"),
        _Commune("2A272", "20100", "SARTENE"),
        _Commune("2A249", "20110", "PROPRIANO"),
        _Commune("2A041", "20169", "BONIFACIO"),
        _Commune("2A130", "20166", "GROSSETO-PRUGNA"),
    ),
    "93": (
        _Commune("93066", "93200", "SAINT-DENIS"),
        _Commune("93048", "93100", "MONTREUIL"),
        _Commune("93001", "93300", "AUBERVILLIERS"),
        _Commune("93005", "93600", "AULNAY-SOUS-BOIS"),
        _Commune("93008", "93000", "BOBIGNY"),
        _Commune("93010", "93140", "BONDY"),
        _Commune("93055", "93500", "PANTIN"),
        _Commune("93070", "93400", "SAINT-OUEN-SUR-SEINE"),
        _Commune("93051", "93160", "NOISY-LE-GRAND"),
        _Commune("93071", "93270", "SEVRAN"),
        _Commune("93029", "93700", "DRANCY"),
        _Commune("93014", "93390", "CLICHY-SOUS-BOIS"),
    ),
}

# How many usagers live in each département, and the share living in a QPV there.
_POPULATION = (("33", 192), ("2A", 44), ("93", 63))
_QPV_RATE = {"33": 0.12, "2A": 0.08, "93": 0.40}
# ARCEP reserves these landline blocks for fiction, one per region: 05 south-west, 04
# south-east and Corsica, 01 Île-de-France; 06 39 98 is the mobile one.
_FIXED_PREFIX = {"33": "053649", "2A": "046571", "93": "019900"}
_MOBILE_PREFIX = "063998"
_EMAIL_DOMAINS = ("example.org", "example.net", "example.com")

# Name and street tables are kept compact, several per line.
# fmt: off
_SURNAMES_COMMON = (
    "MARTIN", "BERNARD", "THOMAS", "PETIT", "ROBERT", "RICHARD", "DURAND", "DUBOIS", "MOREAU", "LAURENT",
    "SIMON", "MICHEL", "LEFEBVRE", "LEROY", "ROUX", "DAVID", "BERTRAND", "MOREL", "FOURNIER", "GIRARD",
    "BONNET", "DUPONT", "LAMBERT", "FONTAINE", "ROUSSEAU", "VINCENT", "MULLER", "FAURE", "ANDRE", "MERCIER",
    "BLANC", "GUERIN", "BOYER", "GARNIER", "CHEVALIER", "FRANCOIS", "LEGRAND", "GAUTHIER", "GARCIA", "PERRIN",
    "DA SILVA", "FERREIRA", "LOPEZ", "MARTINEZ", "NGUYEN", "LE GOFF", "DE SOUSA", "COSTA",
)
_SURNAMES_GIRONDE = (
    "LABORDE", "DARRIGRAND", "LACOSTE", "DUCASSE", "LAFARGUE", "BORDES", "CAZENAVE", "DUPUY", "LABAT",
    "DUBERNET", "LAPEYRE", "DUFAU", "LARRIEU", "SARRAZIN",
)
_SURNAMES_CORSE = (
    "SANTONI", "PIETRI", "COLONNA", "CASANOVA", "LECA", "LUCIANI", "GIACOMONI", "BARTOLI", "PAOLI", "ORSINI",
    "MATTEI", "SUSINI", "PERETTI", "FILIPPI", "AGOSTINI", "CASTELLI", "ALBERTINI", "GRIMALDI",
)
_SURNAMES_SEINE_SAINT_DENIS = (
    "DIALLO", "TRAORE", "BENALI", "HADDAD", "KONE", "BELKACEM", "CISSE", "N'DIAYE", "MEZIANE", "SYLLA",
    "CAMARA", "BOUAZIZ", "YILMAZ", "DOUMBIA", "KEITA", "MENDY", "CHERIF", "ZERROUKI",
)
_FIRST_NAMES = {
    "1": (
        "JEAN", "PIERRE", "NICOLAS", "JULIEN", "THOMAS", "KEVIN", "LUCAS", "HUGO", "MAXIME", "ANTOINE",
        "LAURENT", "STEPHANE", "CHRISTOPHE", "SEBASTIEN", "KARIM", "MEHDI", "MAMADOU", "YANNICK", "DAVID",
        "JEAN-PIERRE", "JEAN-LUC", "ALEXANDRE", "OLIVIER", "MATHIEU", "BRUNO", "ENZO", "NATHAN", "YANIS",
    ),
    "2": (
        "MARIE", "NATHALIE", "ISABELLE", "SYLVIE", "CELINE", "JULIE", "SANDRINE", "AURELIE", "CAMILLE",
        "MANON", "LEA", "CHLOE", "EMMA", "SARAH", "FATOU", "AMINATA", "NADIA", "SAMIA", "ANNE-MARIE",
        "MARIE-CLAIRE", "LAETITIA", "VALERIE", "SOPHIE", "CHRISTINE", "INES", "LINA", "OCEANE", "PAULINE",
    ),
}
_FIRST_NAMES_CORSE = {
    "1": ("ANTOINE", "DOMINIQUE", "JEAN-FRANCOIS", "PAUL", "ANGE", "XAVIER", "PASCAL", "LAURENT"),
    "2": ("MARIE-ANGE", "DOMINIQUE", "LAETITIA", "JULIA", "CATHERINE", "PAOLA", "ANNE", "LUCIE"),
}
_STREET_TYPES = ("RUE", "RUE", "AVENUE", "ALLEE", "BOULEVARD", "COURS", "CHEMIN", "IMPASSE", "PLACE")
_STREET_NAMES = (
    "DES LILAS", "JEAN JAURES", "VICTOR HUGO", "DE LA REPUBLIQUE", "PASTEUR", "DES ECOLES", "DU MARCHE",
    "GAMBETTA", "DE LA GARE", "DES TILLEULS", "JULES FERRY", "DU 8 MAI 1945", "DE LA LIBERATION",
    "EMILE ZOLA", "DES ACACIAS", "DU PORT", "GEORGES CLEMENCEAU", "DES VIGNES", "LOUISE MICHEL",
)
_RESIDENCES = (
    "RESIDENCE LES PINS", "RESIDENCE DU PARC", "LES JARDINS DU LAC", "CITE DES FLEURS", "LE BELVEDERE",
)

# Birthplaces outside the residence département: other départements, and abroad (INSEE
# country codes after département 99: Maroc, Algérie, Tunisie, Portugal, Espagne, Italie,
# Sénégal, Mali, Côte d'Ivoire, Turquie, Roumanie, Belgique).
_OTHER_BIRTH_DEPARTEMENTS = (
    "75", "69", "13", "31", "59", "64", "40", "24", "47", "17", "44", "67", "2B", "92",
)
_FOREIGN_COUNTRIES = ("350", "352", "351", "139", "134", "127", "341", "335", "326", "208", "114", "131")
# fmt: on
_FOREIGN_BIRTH_RATE = {"33": 0.08, "2A": 0.06, "93": 0.30}
_LOCAL_BIRTH_RATE = 0.55

_STATUTS = (("Inscrit", 60), ("Cessé", 15), ("Radié", 10), ("Identifié", 15))
_CATEGORIES = (
    ("1", "PERSONNE SANS EMPLOI DISPONIBLE DUREE INDETERMINEE PLEIN TPS"),
    ("2", "PERSONNE SANS EMPLOI DISPONIBLE DUREE INDETERMINEE PARTIEL"),
    ("3", "PERSONNE SANS EMPLOI DISPONIBLE DUREE DETERMINEE OU SAISONNIER"),
    ("4", "PERSONNE SANS EMPLOI NON DISPONIBLE IMMEDIATEMENT"),
    ("5", "PERSONNE POURVUE D'UN EMPLOI A LA RECHERCHE D'UN AUTRE EMPLOI"),
)
_MOTIFS_INSCRIPTION = (
    ("11", "LICENCIEMENT ECONOMIQUE"),
    ("12", "AUTRE LICENCIEMENT"),
    ("13", "DEMISSION"),
    ("14", "FIN DE CONTRAT A DUREE DETERMINEE"),
    ("15", "FIN DE MISSION D'INTERIM"),
    ("16", "PREMIERE ENTREE SUR LE MARCHE DU TRAVAIL"),
    ("18", "REPRISE D'ACTIVITE APRES UNE INTERRUPTION"),
    ("21", "RUPTURE CONVENTIONNELLE"),
)
_SITUATIONS = (
    ("ADR", "AIDE DIFFERENTIELLE AU RECLASSEMENT"),
    ("ARE", "ALLOCATION D'AIDE AU RETOUR A L'EMPLOI"),
    ("ASS", "ALLOCATION DE SOLIDARITE SPECIFIQUE"),
    ("NIN", "NON INDEMNISABLE"),
)
_CLOTURES = {
    "Cessé": (
        ("RE", "REPRISE D'EMPLOI DECLAREE"),
        ("EF", "ENTREE EN FORMATION"),
        ("CD", "CESSATION DE DEMANDE A L'INITIATIVE DU DEMANDEUR"),
    ),
    "Radié": (
        ("MV", "ABANDON ACTION AIDE A LA RECHERCHE D'UNE ACTIVITE SUPPRESSION DE 1 MOIS"),
        ("NC", "ABSENCE A CONVOCATION"),
        ("ID", "INSUFFISANCE DE RECHERCHE D'EMPLOI"),
    ),
}
_CONTRAT_RATE = 0.8
_CERTIFIED_RATE = 0.88
_STATUS_PERIOD = (date(2023, 1, 2), date(2026, 10, 30))
# Corsica got its two départements (2A, 2B) in 1976; people born there before keep 20.
_CORSICA_SPLIT_YEAR = 1976


def build_demo_records(seed: int = DEFAULT_SEED) -> list[dict[str, Any]]:
    """Organisations, clients, usagers, their parcours, then the habilitations, as ``relais import`` records."""
    rng = random.Random(seed)
    records: list[dict[str, Any]] = [_organisation_record(organisation) for organisation in DEMO_ORGANISATIONS]
    records += [_client_record(client) for client in DEMO_CLIENTS]
    usagers = _build_usagers(rng)
    records += [{"type": "usager", "data": usager} for usager in usagers]
    # A generator of its own: the parcours never shift the usagers drawn above.
    records += _parcours_records(random.Random(f"{seed}-parcours"), usagers)
    records += demo_habilitations_records()
    return records


def demo_samples(records: list[dict[str, Any]]) -> list[dict[str, str]]:
    """Three usagers worth typing into a first curl session, with the organisation that sees them.

    A registered Gironde usager (every API answers), a Corse-du-Sud usager (R002 for the
    Gironde client) and the duplicate NIR (S003 when searching by NIR and birth date).
    """
    usagers = [record["data"] for record in records if record["type"] == "usager"]
    gironde = next(u for u in usagers if _departement(u) == "33" and _statut(u) == "Inscrit" and _certified(u))
    corse = next(u for u in usagers if _departement(u) == "2A" and _statut(u) == "Inscrit")
    duplicate = _duplicates(usagers)[0]
    return [_sample(gironde, "CD33"), _sample(corse, "CD2A"), _sample(duplicate, "CD33")]


def _sample(usager: dict[str, Any], organisation: str) -> dict[str, str]:
    return {
        "numeroFranceTravail": usager["numeroFranceTravail"],
        "nir": usager["etatCivil"]["nir"],
        "dateNaissance": usager["etatCivil"]["dateNaissance"],
        "organisation": organisation,
    }


def _departement(usager: dict[str, Any]) -> str:
    return str(usager["adresses"][0]["codeInseeCommune"][:2])


def _statut(usager: dict[str, Any]) -> str | None:
    contrat = usager.get("contrat")
    return None if contrat is None else str(contrat["m_statut"])


def _certified(usager: dict[str, Any]) -> bool:
    return bool(usager["topIdentiteCertifiee"] == "O")


def _duplicates(usagers: list[dict[str, Any]]) -> list[dict[str, Any]]:
    seen: set[tuple[str, str]] = set()
    found = []
    for usager in usagers:
        key = (usager["etatCivil"]["nir"], usager["etatCivil"]["dateNaissance"])
        if key in seen:
            found.append(usager)
        seen.add(key)
    return found


def _organisation_record(organisation: DemoOrganisation) -> dict[str, Any]:
    return {
        "type": "organisation",
        "data": {
            "code": organisation.code,
            "type": organisation.type,
            "libelle": organisation.libelle,
            "territoire": list(organisation.territoire),
            "code_aurore": organisation.code_aurore,
            "code_safir": organisation.code_safir,
        },
    }


def _client_record(client: DemoClient) -> dict[str, Any]:
    return {
        "type": "client",
        "data": {
            "client_id": client.client_id,
            "client_secret": client.client_secret,
            "organisation": client.organisation,
            "scopes": list(client.scopes),
        },
    }


# Habilitations ----------------------------------------------------------------------------
#
# Every partner call is made for a habilitated agent: each organisation subscribes to what its
# demo clients may call, agent AGT-0042 (the curl walkthrough's) is habilitated for all of it,
# each département has a titular RGC (who, being RGC, has no data access) and demo-cd33 a
# technical identity BATCH for night jobs.

DEMO_AGENT_IDENTIFIANT = "AGT-0042"
DEMO_ACTE_ENGAGEMENT = "2025-09-01"


def demo_habilitations_records() -> list[dict[str, Any]]:
    held: dict[str, set[str]] = {}
    for client in DEMO_CLIENTS:
        held.setdefault(client.organisation, set()).update(client.scopes)
    subscriptions = [
        {"organisation": organisation, "api": api, "scopes": covered}
        for organisation, scopes in held.items()
        for api, covered in subscribable(scopes).items()
    ]
    records: list[dict[str, Any]] = [{"type": "subscription", "data": data} for data in subscriptions]
    for organisation in held:
        records.append(
            {
                "type": "agent",
                "data": {
                    "organisation": organisation,
                    "identifiant": DEMO_AGENT_IDENTIFIANT,
                    "nom": "Martin",
                    "prenom": "Claire",
                    "statut_emploi": "contractuel",
                },
            }
        )
        if organisation.startswith("CD"):
            rgc = f"RGC-{organisation}"
            records.append(
                {
                    "type": "agent",
                    "data": {
                        "organisation": organisation,
                        "identifiant": rgc,
                        # The console's RGC persona logs in as this agent.
                        "nom": "Durand",
                        "prenom": "Camille",
                        "statut_emploi": "fonctionnaire",
                    },
                }
            )
            records.append(
                {
                    "type": "designation",
                    "data": {
                        "organisation": organisation,
                        "agent": rgc,
                        "role": "rgc_titulaire",
                        "acte_engagement_le": DEMO_ACTE_ENGAGEMENT,
                    },
                }
            )
    records.append(
        {
            "type": "agent",
            "data": {
                "organisation": "CD33",
                "identifiant": "BATCH",
                "type": "technique",
                "client_id": "demo-cd33",
                "nom": "Traitements de nuit",
            },
        }
    )
    for data in subscriptions:
        grant = {
            "organisation": data["organisation"],
            "agent": DEMO_AGENT_IDENTIFIANT,
            "api": data["api"],
            "scopes": data["scopes"],
            "finalite": "Accompagnement des allocataires du RSA (démonstration)",
            # As an RGC writes it: a grant without one is an anomaly of the yearly review.
            "justification": "Référente RSA : accompagne les allocataires orientés vers le Département",
        }
        records.append({"type": "habilitation", "data": grant})
        if data["organisation"] == "CD33" and data["api"] == "rechercher-usager-v2":
            records.append({"type": "habilitation", "data": {**grant, "agent": "BATCH", "client_id": "demo-cd33"}})
    return records


# Usagers ----------------------------------------------------------------------------------


class _Registry:
    """Identifiers already handed out, so that generated ones never collide by chance."""

    def __init__(self) -> None:
        self.numeros: set[str] = set()
        self.nirs: set[str] = set()

    def numero(self, rng: random.Random) -> str:
        while True:
            # 11 digits, never starting with 0 so that spreadsheets keep them intact.
            numero = str(rng.randint(10**10, 10**11 - 1))
            if numero not in self.numeros:
                self.numeros.add(numero)
                return numero


def _build_usagers(rng: random.Random) -> list[dict[str, Any]]:
    registry = _Registry()
    usagers = [_build_usager(rng, registry, departement) for departement, count in _POPULATION for _ in range(count)]
    _attach(usagers, "ML-BDX", count=2, young=True)
    _attach(usagers, "CE33", count=2, young=False)
    usagers.append(_duplicate_of(rng, registry, usagers[9]))
    return usagers


def _build_usager(rng: random.Random, registry: _Registry, departement: str) -> dict[str, Any]:
    sexe = rng.choice("12")
    naissance = _birth_date(rng)
    nir13 = _nir13(rng, registry, sexe, naissance, departement)
    nom = rng.choice(_surnames(departement))
    prenom = rng.choice(_first_names(rng, departement, sexe))
    usager: dict[str, Any] = {
        "numeroFranceTravail": registry.numero(rng),
        "etatCivil": {
            "civilite": "M." if sexe == "1" else "Mme",
            "nom": nom,
            "prenom": prenom,
            "nomCorrespondance": _usage_name(rng, sexe, naissance, nom, departement),
            "prenomCorrespondance": prenom,
            "dateNaissance": naissance.isoformat(),
            "nir": nir13 + nir_key(nir13),
        },
        "adresses": [_address(rng, departement)],
        "emails": _emails(rng, prenom, nom),
        "telephones": _phones(rng, departement),
        "topIdentiteCertifiee": "O" if rng.random() < _CERTIFIED_RATE else "N",
        "organisations": [],
    }
    if rng.random() < _CONTRAT_RATE:
        usager["contrat"] = _contrat(rng)
    return usager


def _birth_date(rng: random.Random) -> date:
    year = rng.randint(1960, 2005)
    month = rng.randint(1, 12)
    return date(year, month, rng.randint(1, monthrange(year, month)[1]))


def _nir13(rng: random.Random, registry: _Registry, sexe: str, naissance: date, residence: str) -> str:
    while True:
        departement, commune = _birthplace(rng, naissance, residence)
        ordre = rng.randint(1, 999)
        nir13 = f"{sexe}{naissance.year % 100:02d}{naissance.month:02d}{departement}{commune}{ordre:03d}"
        if nir13 not in registry.nirs:
            registry.nirs.add(nir13)
            return nir13


def _birthplace(rng: random.Random, naissance: date, residence: str) -> tuple[str, str]:
    """(département, commune) as the NIR writes them: 2 + 3 characters."""
    draw = rng.random()
    if draw < _FOREIGN_BIRTH_RATE[residence]:
        return "99", rng.choice(_FOREIGN_COUNTRIES)
    if draw < _FOREIGN_BIRTH_RATE[residence] + _LOCAL_BIRTH_RATE:
        insee = rng.choice(_COMMUNES[residence]).insee
        departement, commune = insee[:2], insee[2:]
    else:
        departement, commune = rng.choice(_OTHER_BIRTH_DEPARTEMENTS), f"{rng.randint(1, 400):03d}"
    if departement in ("2A", "2B") and naissance.year < _CORSICA_SPLIT_YEAR:
        departement = "20"
    return departement, commune


def _surnames(departement: str) -> tuple[str, ...]:
    local = {"33": _SURNAMES_GIRONDE, "2A": _SURNAMES_CORSE, "93": _SURNAMES_SEINE_SAINT_DENIS}[departement]
    # Local names twice: over-represented, not exclusive.
    return _SURNAMES_COMMON + local + local


def _first_names(rng: random.Random, departement: str, sexe: str) -> tuple[str, ...]:
    if departement == "2A" and rng.random() < 0.5:
        return _FIRST_NAMES_CORSE[sexe]
    return _FIRST_NAMES[sexe]


def _usage_name(rng: random.Random, sexe: str, naissance: date, nom: str, departement: str) -> str:
    # Some women use a spouse's name for correspondence (nom d'usage).
    if sexe == "2" and naissance.year < 1995 and rng.random() < 0.25:
        return rng.choice(_surnames(departement))
    return nom


def _address(rng: random.Random, departement: str) -> dict[str, Any]:
    commune = rng.choice(_COMMUNES[departement])
    residence = rng.choice(_RESIDENCES) if rng.random() < 0.2 else None
    numero = rng.randint(1, 180)
    return {
        "codeInseeCommune": commune.insee,
        "codePostal": commune.code_postal,
        "complementAdresse": residence,
        "complementDestinataire": f"APPARTEMENT {rng.randint(1, 120)}" if residence else None,
        "complementDistribution": None,
        "libelleCommune": commune.libelle,
        "libellePays": "FRANCE",
        "numeroTypeLibelleVoie": f"{numero} {rng.choice(_STREET_TYPES)} {rng.choice(_STREET_NAMES)}",
        "indicateurResidentQPV": "QP" if rng.random() < _QPV_RATE[departement] else "NQ",
    }


def _emails(rng: random.Random, prenom: str, nom: str) -> list[dict[str, str]]:
    if rng.random() < 0.15:
        return []
    local = f"{_email_part(prenom)}.{_email_part(nom)}{rng.randint(1, 99)}"
    return [{"adresseEmail": f"{local}@{rng.choice(_EMAIL_DOMAINS)}"}]


def _email_part(name: str) -> str:
    ascii_name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    return "".join(char for char in ascii_name.lower() if char.isalnum() or char == "-")


def _phones(rng: random.Random, departement: str) -> list[dict[str, str]]:
    phones = []
    if rng.random() < 0.9:
        phones.append({"numeroTelephone": f"{_MOBILE_PREFIX}{rng.randint(0, 9999):04d}"})
    if rng.random() < 0.25:
        phones.append({"numeroTelephone": f"{_FIXED_PREFIX[departement]}{rng.randint(0, 9999):04d}"})
    return phones


def _contrat(rng: random.Random) -> dict[str, Any]:
    statut = rng.choices([name for name, _ in _STATUTS], weights=[weight for _, weight in _STATUTS])[0]
    start, end = _STATUS_PERIOD
    effet = start + timedelta(days=rng.randint(0, (end - start).days))
    contrat: dict[str, Any] = {"m_statut": statut, "m_date_effet_statut": effet.isoformat()}
    contrat.update(_durations(rng, statut))
    registered = statut != "Identifié"
    contrat.update(_coded("m_motif_inscription", rng.choice(_MOTIFS_INSCRIPTION) if registered else None))
    contrat.update(_coded("m_categ_inscription", rng.choice(_CATEGORIES) if registered else None))
    contrat.update(_coded("m_situation_reg_emp", rng.choice(_SITUATIONS) if registered else None))
    cloture = rng.choice(_CLOTURES[statut]) if statut in _CLOTURES else None
    contrat.update(_coded("m_motif_cloture", cloture))
    return contrat


def _durations(rng: random.Random, statut: str) -> dict[str, int]:
    """Months registered over the last 12, 24 and 36 months: nested windows, so non-decreasing."""
    if statut == "Identifié":
        d12 = d24 = d36 = 0
    else:
        d12 = rng.randint(1, 12) if statut == "Inscrit" else rng.randint(0, 8)
        d24 = d12 + rng.randint(0, 12)
        d36 = d24 + rng.randint(0, 12)
    return {"m_duree_inscription_12": d12, "m_duree_inscription_24": d24, "m_duree_inscription_36": d36}


def _coded(prefix: str, pair: tuple[str, str] | None) -> dict[str, str | None]:
    code, label = pair if pair is not None else (None, None)
    return {f"{prefix}_code": code, f"{prefix}_lib": label}


def _attach(usagers: list[dict[str, Any]], organisation: str, *, count: int, young: bool) -> None:
    """Attach ``count`` Gironde usagers explicitly (missions locales follow the under-26s)."""
    candidates = [
        usager
        for usager in usagers
        if _departement(usager) == "33"
        and not usager["organisations"]
        and (usager["etatCivil"]["dateNaissance"] >= "2000-01-01") == young
    ]
    for usager in candidates[:count]:
        usager["organisations"] = [organisation]


def _duplicate_of(rng: random.Random, registry: _Registry, original: dict[str, Any]) -> dict[str, Any]:
    """The same person registered twice: same identity, another numéro and address."""
    duplicate = {
        **original,
        "numeroFranceTravail": registry.numero(rng),
        "etatCivil": dict(original["etatCivil"]),
        "adresses": [_address(rng, _departement(original))],
        "organisations": [],
        "topIdentiteCertifiee": "N",
    }
    duplicate.pop("contrat", None)
    return duplicate


# Parcours -----------------------------------------------------------------------------------
#
# Dates are fixed (the dataset is deterministic) and in the past of any demo run: a decision
# or a manquement dated in the future would be refused.

_DEMO_AGENT = {"nom": "Martin", "prenom": "Claire", "identifiant": "AGT-0042"}
_ORIGINES = ("INSCRIPTION_VOLONTAIRE", "INSCRIPTION_AUTO_CAF", "INSCRIPTION_CONSEILLER_CD")
# (parcours, organisme, constraint that explains it) of France Travail's preconisations.
_Profile = tuple[str, str, dict[str, Any]]
_PRECONISATIONS: tuple[_Profile, ...] = (
    ("PSO", "CD", {"contrainte_mobilite": "AUCUN_MOYEN_DE_TRANSPORT"}),
    ("PSP", "CD", {"capacite_a_travailler": False}),
    ("PED", "FT", {}),
    ("PSO", "CD", {"contrainte_numerique": "NON_ACCES_INTERNET"}),
    ("PSP", "CD", {"contrainte_logement": "SANS_LOGEMENT"}),
    ("PED", "FT", {"projet_pro": "FORMATION"}),
)
_DECISIONS: tuple[tuple[_Profile, dict[str, Any]], ...] = (
    # Accepted as preconised.
    (
        ("PSO", "CD", {"contrainte_familiale": "AIDANT_FAMILIAL"}),
        {"etat_decision": "ACCEPTEE", "date_decision": "2026-01-08"},
    ),
    # Refused, with the département's counter-proposal.
    (
        ("PED", "FT", {}),
        {
            "etat_decision": "REFUSEE",
            "date_decision": "2026-01-14",
            "motif_refus": "APPRECIATION_DIFFERENTE",
            "commentaire_refus": "Freins périphériques à lever avant une recherche d'emploi",
            "parcours": "PSO",
            "organisme": "CD",
        },
    ),
    (("PSP", "CD", {"capacite_a_travailler": False}), {"etat_decision": "ACCEPTEE", "date_decision": "2026-01-21"}),
)
_SANCTIONS = (
    ("SUSP_RSA", "P", 50, 2, "R1", "2026-01-05"),
    ("SUSP_RSA", "P", 100, 1, "R2", "2026-01-09"),
    ("SUSP_RSA", "M", 150, 3, "R1", "2026-01-12"),
    ("SUPP_RSA", None, None, None, "R3", "2026-01-16"),
)
_NATURES_MANQUEMENT = ("N65", "N66", "N67")


def demo_parcours(records: list[dict[str, Any]]) -> dict[str, list[str]]:
    """Numéros France Travail of the usagers whose parcours shows each case, for the walkthrough.

    ``preconisations`` wait for the département's decision (ACT382), ``a_completer`` has an IND
    preconisation (calculOrientation), ``premier_rdv_a_prendre`` has a decided orientation and
    no appointment yet (ACT380), ``contrats`` have a contrat d'engagement, ``sanctions`` a
    proposal to instruct or process (ACT366, ACT370).
    """
    by_type: dict[str, list[dict[str, Any]]] = {}
    for record in records:
        by_type.setdefault(record["type"], []).append(record["data"])
    orientations = by_type.get("orientation", [])
    with_rdv = {rdv["numeroFranceTravail"] for rdv in by_type.get("rendez-vous", []) if rdv["motif"] == "ACC"}
    return {
        "preconisations": [
            o["numeroFranceTravail"] for o in orientations if o.get("etat") == "EN_ATTENTE" and o["parcours"] != "IND"
        ],
        "a_completer": [o["numeroFranceTravail"] for o in orientations if o["parcours"] == "IND"],
        "premier_rdv_a_prendre": [
            o["numeroFranceTravail"]
            for o in orientations
            if o.get("etat") == "OUVERT" and o["numeroFranceTravail"] not in with_rdv
        ],
        "contrats": [c["numeroFranceTravail"] for c in by_type.get("contrat-engagement", [])],
        "sanctions": [m["numeroFranceTravail"] for m in by_type.get("manquement", [])],
    }


def _parcours_records(rng: random.Random, usagers: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Orientations, then appointments and contracts, then manquements of registered Gironde usagers."""
    candidates = [
        usager
        for usager in usagers
        if _departement(usager) == "33"
        and _statut(usager) == "Inscrit"
        and _certified(usager)
        and not usager["organisations"]
    ]
    preconises = candidates[: len(_PRECONISATIONS)]
    a_completer = candidates[len(_PRECONISATIONS)]
    decides = candidates[len(_PRECONISATIONS) + 1 : len(_PRECONISATIONS) + 1 + len(_DECISIONS)]
    sanctionnes = candidates[len(_PRECONISATIONS) + 1 + len(_DECISIONS) :][: len(_SANCTIONS)]

    records = [
        _orientation(rng, usager, profile, etat="EN_ATTENTE")
        for usager, profile in zip(preconises, _PRECONISATIONS, strict=True)
    ]
    records.append(
        {
            "type": "orientation",
            "data": {
                "numeroFranceTravail": a_completer["numeroFranceTravail"],
                "parcours": "IND",
                "organisme": "IND",
                "structure": None,
                "origine": "INSCRIPTION_AUTO_CAF",
                # The CAF knows little: the département completes the criteria (calculOrientation).
                "criteres_orientation": {"brsa": True, **_criteres_identite(a_completer)},
                "etat": "EN_ATTENTE",
            },
        }
    )
    for usager, (profile, decision) in zip(decides, _DECISIONS, strict=True):
        record = _orientation(rng, usager, profile, etat="OUVERT")
        structure = _structure("CD33")
        record["data"]["decision"] = {
            **decision,
            "organisme_decision": "CD",
            "structure_decision": structure,
            "agent_decision": _DEMO_AGENT["identifiant"],
        }
        records.append(record)
    records += _rendez_vous_records(decides)
    records += _contrat_records(decides)
    records += [_manquement_record(rng, usager, index) for index, usager in enumerate(sanctionnes, start=1)]
    return records


def _structure(code: str) -> dict[str, Any]:
    organisation = next(o for o in DEMO_ORGANISATIONS if o.code == code)
    return {
        "code_aurore": organisation.code_aurore,
        "code_safir": organisation.code_safir,
        "libelle_structure": organisation.libelle,
    }


def _orientation(rng: random.Random, usager: dict[str, Any], profile: _Profile, *, etat: str) -> dict[str, Any]:
    parcours, organisme, contrainte = profile
    return {
        "type": "orientation",
        "data": {
            "numeroFranceTravail": usager["numeroFranceTravail"],
            "parcours": parcours,
            "organisme": organisme,
            "structure": _structure("CD33" if organisme == "CD" else "FT-NAQ"),
            "origine": rng.choice(_ORIGINES),
            "criteres_orientation": _criteres(rng, usager, contrainte),
            "etat": etat,
        },
    }


def _criteres_identite(usager: dict[str, Any]) -> dict[str, Any]:
    adresse = usager["adresses"][0]
    return {
        "date_naissance": usager["etatCivil"]["dateNaissance"],
        "adresse": {
            "code_commune": adresse["codeInseeCommune"],
            "libelle_commune": adresse["libelleCommune"],
            "code_postal": adresse["codePostal"],
            "numero_type_libelle_voie": adresse["numeroTypeLibelleVoie"],
        },
    }


def _criteres(rng: random.Random, usager: dict[str, Any], contrainte: dict[str, Any]) -> dict[str, Any]:
    """A complete set of criteria, without obstacle except the one that explains the parcours."""
    criteres: dict[str, Any] = {
        "brsa": True,
        **_criteres_identite(usager),
        "situation_professionnelle": rng.choice(("JAMAIS", "EN_ACTIVITE")),
        "type_emploi": rng.choice(("AUTRE", "SAISONNIER")),
        "niveau_etude": "AFS",
        "capacite_a_travailler": True,
        "projet_pro": rng.choice(("SALARIAT", "FORMATION")),
        "boe": False,
    }
    for name in (
        "contrainte_sante",
        "contrainte_logement",
        "contrainte_mobilite",
        "contrainte_familiale",
        "contrainte_financiere",
        "contrainte_administrative_juridique",
        "contrainte_francais_calcul",
        "contrainte_numerique",
    ):
        criteres[name] = "AUCUNE"
    criteres.update(contrainte)
    return criteres


def _rendez_vous_records(decides: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The first two decided usagers have had or booked their first appointment; the third has not."""
    organisme = {
        "code": "CD",
        "emailContact": "accompagnement-rsa@example.org",
        "idStructure": _structure("CD33")["code_safir"],
        "libelleStructure": "Département de la Gironde",
        "telephoneContact": "0536490000",
    }
    rendez_vous = (
        (decides[0], "DEMO-RDV-0001", "2026-01-20T09:30:00.000+01:00", "ACC", "EFFECTUE"),
        (decides[0], "DEMO-RDV-0002", "2026-12-08T14:00:00.000+01:00", "AUT", "PRIS"),
        (decides[1], "DEMO-RDV-0003", "2026-12-03T10:00:00.000+01:00", "ACC", "PRIS"),
    )
    return [
        {
            "type": "rendez-vous",
            "data": {
                "numeroFranceTravail": usager["numeroFranceTravail"],
                "id": identifiant,
                "organisation": "CD33",
                "date": date_rdv,
                "duree": 45,
                "motif": motif,
                "statut": statut,
                "modaliteContact": "PHYSIQUE",
                "typeReception": "IND",
                "initiateur": "PARTENAIRE",
                "organisme": organisme,
                "interlocuteur": {"email": "c.martin@example.org", "nom": "MARTIN", "prenom": "CLAIRE"},
                "adresse": "1 ESPLANADE CHARLES DE GAULLE 33000 BORDEAUX",
                "libelleAdresse": "Maison départementale des solidarités de Bordeaux",
                "information": None,
                "telephoneContactUsager": None,
                "theme": "Premier rendez-vous d'accompagnement" if motif == "ACC" else "Suivi du contrat d'engagement",
            },
        }
        for usager, identifiant, date_rdv, motif, statut in rendez_vous
    ]


def _contrat_records(decides: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """After the orientations: deciding one returns a signed contract to A_SIGNER."""
    return [
        {
            "type": "contrat-engagement",
            "data": {
                "numeroFranceTravail": decides[0]["numeroFranceTravail"],
                "etat": "SIGNE",
                "dateSignature": "2026-01-20T10:15:00+01:00",
                "organisme": "CD",
                "engagements": [
                    {"libelle": "Participer aux rendez-vous d'accompagnement"},
                    {"libelle": "Rechercher une solution de mobilité"},
                ],
                "planAction": [{"libelle": "Atelier mobilité"}, {"libelle": "Passage du permis de conduire"}],
                "intensiteHebdomadaire": 15,
                "agentSignature": dict(_DEMO_AGENT),
            },
        },
        {
            "type": "contrat-engagement",
            "data": {"numeroFranceTravail": decides[1]["numeroFranceTravail"], "etat": "A_SIGNER", "organisme": "CD"},
        },
    ]


def _manquement_record(rng: random.Random, usager: dict[str, Any], index: int) -> dict[str, Any]:
    type_, modalite, montant, duree, rang, date_manquement = _SANCTIONS[index - 1]
    return {
        "type": "manquement",
        "data": {
            "numeroFranceTravail": usager["numeroFranceTravail"],
            "natureManquement": rng.choice(_NATURES_MANQUEMENT),
            "rangManquement": rang,
            "dateManquement": date_manquement,
            "consequences": [
                {
                    "identifiantConsequenceSanction": f"DEMO-SANCTION-{index:04d}",
                    "typeConsequenceSanction": type_,
                    "modaliteProposee": modalite,
                    "montantPropose": montant,
                    "dureeProposee": duree,
                }
            ],
        },
    }


# Diagnostics (Diagnostic argumenté v4) -----------------------------------------------------
#
# Not a ``relais import`` record type (no public feed carries them): ``relais demo`` writes
# them through the domain rules after the import, once per usager.

# (codeTypologie, codeRome, codeAppellation, nomMetier): ROME codes and appellations as FT's
# collection and les-emplois' mock use them.
_DIAGNOSTICS = (
    ("MR", "K1304", "10857", "Aide ménager / Aide ménagère à domicile"),
    ("MR", "F1204", "19070", "Boulanger"),
)


def seed_demo_diagnostics(session: Session, records: list[dict[str, Any]], *, now: datetime) -> int:
    """A métier recherché for the usagers whose first interview gave a contrat; returns how many were written.

    Idempotent: an usager who already has a diagnostic is left alone.
    """
    organisation = session.exec(select(Organisation).where(Organisation.code == "CD33")).one()
    agent = Caller(
        client_id="demo-cd33",
        organisation="CD33",
        agent_nom=_DEMO_AGENT["nom"],
        agent_prenom=_DEMO_AGENT["prenom"],
        agent_identifiant=_DEMO_AGENT["identifiant"],
    )
    numeros = [r["data"]["numeroFranceTravail"] for r in records if r["type"] == "contrat-engagement"]
    written = 0
    for numero, (typologie, rome, appellation, metier) in zip(numeros, _DIAGNOSTICS, strict=False):
        usager = session.exec(select(Usager).where(Usager.numero_france_travail == numero)).one()
        if diagnostic_domain.diagnostics_de(session, usager.id):
            continue
        body = {"codeTypologie": typologie, "codeRome": rome, "codeAppellation": appellation, "nomMetier": metier}
        diagnostic_domain.creer(session, usager, organisation, agent, body, now=now)
        written += 1
    return written
