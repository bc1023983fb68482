import pytest

from api.resolver import snake_case


@pytest.mark.parametrize(
    ("operation_id", "function"),
    [
        ("RechercherUsagerParDateNaissanceEtNir", "rechercher_usager_par_date_naissance_et_nir"),
        ("RechercherUsagerParNumeroFranceTravail", "rechercher_usager_par_numero_france_travail"),
        ("recupererDonneesParIdRci", "recuperer_donnees_par_id_rci"),
        ("recupererContratV2", "recuperer_contrat_v2"),
        ("genererAccessToken", "generer_access_token"),
    ],
)
def test_france_travail_operation_ids_map_to_snake_case(operation_id: str, function: str) -> None:
    assert snake_case(operation_id) == function
