"""Complete orientation criteria with no barrier: the default rule table's preconisation for
them is PED / FT, one that can be decided (with fewer criteria, calculOrientation answers IND
and decisionOrientation is refused 409 ORIENTATION_INDETERMINEE).

A demo fact: the bench's write target sends them, and the rule-table, state-machine and
end-to-end tests of calculOrientation start from them.
"""

from __future__ import annotations

from typing import Any

CRITERES_COMPLETS: dict[str, Any] = {
    "brsa": True,
    "date_naissance": "1985-07-14",
    "adresse": {"code_commune": "33063"},
    "situation_professionnelle": "JAMAIS",
    "niveau_etude": "AFS",
    "capacite_a_travailler": True,
    "projet_pro": "SALARIAT",
    "contrainte_sante": "AUCUNE",
    "contrainte_logement": "AUCUNE",
    "contrainte_mobilite": "AUCUNE",
    "contrainte_familiale": "AUCUNE",
    "contrainte_financiere": "AUCUNE",
    "contrainte_administrative_juridique": "AUCUNE",
    "contrainte_francais_calcul": "AUCUNE",
    "contrainte_numerique": "AUCUNE",
    "boe": False,
}
