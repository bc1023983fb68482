"""A realistic, deterministic demonstration dataset in the ``relais import`` format.

About 300 usagers live in Gironde (most), Corse-du-Sud and Seine-Saint-Denis, with valid
NIRs consistent with their sex and birth date, addresses in their département, contacts
on reserved example domains and ARCEP fiction numbers, and a France Travail registration
(``m_contrat``) for about four in five. Some records exist to demonstrate specific answers:
usagers without registration (204), explicit attachments to the mission locale and Cap
emploi, and one duplicate pair sharing NIR and birth date (S003 « Plusieurs usagers »).
"""

from __future__ import annotations

import random
import unicodedata
from calendar import monthrange
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from relais.nir import nir_key

DEFAULT_SEED = 2026

RECHERCHE_SCOPES = ("api_rechercher-usagerv2", "rechercheusager", "profil_accedant")
FOUNDATION_SCOPES = (
    *RECHERCHE_SCOPES,
    "api_informations-administrativesv1",
    "informationsadministrativesusager",
    "api_contrat-usagerv2",
    "statutcontratusager",
)


@dataclass(frozen=True)
class DemoOrganisation:
    code: str
    type: str
    libelle: str
    territoire: tuple[str, ...]


@dataclass(frozen=True)
class DemoClient:
    client_id: str
    # Published on purpose: these are demonstration credentials, never to be used elsewhere.
    client_secret: str
    organisation: str
    scopes: tuple[str, ...]
    description: str


DEMO_ORGANISATIONS: tuple[DemoOrganisation, ...] = (
    DemoOrganisation("CD33", "CD", "Département de la Gironde", ("33",)),
    DemoOrganisation("CD2A", "CD", "Collectivité de Corse — Corse-du-Sud", ("2A",)),
    DemoOrganisation("CD93", "CD", "Département de la Seine-Saint-Denis", ("93",)),
    DemoOrganisation("FT-NAQ", "FT", "France Travail Nouvelle-Aquitaine", ("24", "33", "40", "47", "64")),
    DemoOrganisation("ML-BDX", "ML", "Mission locale de Bordeaux", ()),
    DemoOrganisation("CE33", "CE", "Cap emploi Gironde", ()),
)

DEMO_CLIENTS: tuple[DemoClient, ...] = (
    DemoClient(
        "demo-cd33",
        "demo-cd33-secret-change-me-0001",
        "CD33",
        FOUNDATION_SCOPES,
        "Département de la Gironde : les trois API",
    ),
    DemoClient(
        "demo-cd2a",
        "demo-cd2a-secret-change-me-0002",
        "CD2A",
        FOUNDATION_SCOPES,
        "Corse-du-Sud : les trois API",
    ),
    DemoClient(
        "demo-cd93",
        "demo-cd93-secret-change-me-0003",
        "CD93",
        FOUNDATION_SCOPES,
        "Seine-Saint-Denis : les trois API",
    ),
    DemoClient(
        "demo-cd33-limite",
        "demo-cd33-limite-secret-change-me-0004",
        "CD33",
        RECHERCHE_SCOPES,
        "Gironde, Rechercher usager seulement : les autres API répondent 403",
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
    """Organisations, then clients, then usagers, as ``relais import`` records."""
    rng = random.Random(seed)
    records: list[dict[str, Any]] = [_organisation_record(organisation) for organisation in DEMO_ORGANISATIONS]
    records += [_client_record(client) for client in DEMO_CLIENTS]
    records += [{"type": "usager", "data": usager} for usager in _build_usagers(rng)]
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
