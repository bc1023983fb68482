from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from relais.core.nir import (
    NirError,
    is_valid_iso_date,
    is_valid_numero_france_travail,
    nir_key,
    normalize_nir,
)

# Published INSEE example (Wikipedia "Numéro de sécurité sociale en France").
WIKIPEDIA_NIR = "2690549588157"
WIKIPEDIA_KEY = "80"


def test_known_key() -> None:
    assert nir_key(WIKIPEDIA_NIR) == WIKIPEDIA_KEY
    assert nir_key("1850578006084") == "91"


def test_key_is_zero_padded() -> None:
    assert nir_key("1560799123456") == "05"


@pytest.mark.parametrize(("department", "offset"), [("2A", 1_000_000), ("2B", 2_000_000)])
def test_corsica_key_follows_insee_subtraction_rule(department: str, offset: int) -> None:
    nir = f"18012{department}123456"
    as_number = int("1801220123456") - offset
    assert nir_key(nir) == f"{97 - as_number % 97:02d}"
    assert nir_key(nir.lower()) == nir_key(nir)


def test_nir_key_rejects_non_digits() -> None:
    with pytest.raises(NirError):
        nir_key("18012X0123456")


@pytest.mark.parametrize(
    "raw",
    [
        WIKIPEDIA_NIR,
        WIKIPEDIA_NIR + WIKIPEDIA_KEY,
        "2 69 05 49 588 157 80",
        " 2690549588157 80 ",
    ],
)
def test_normalize_accepts_spacing_and_optional_key(raw: str) -> None:
    assert normalize_nir(raw) == WIKIPEDIA_NIR


def test_normalize_uppercases_corsica() -> None:
    nir = "180122a123456"
    assert normalize_nir(nir) == "180122A123456"
    assert normalize_nir(nir + nir_key(nir)) == "180122A123456"


@pytest.mark.parametrize("month", ["01", "12", "20", "42", "50", "99"])
def test_normalize_accepts_special_months(month: str) -> None:
    assert normalize_nir(f"185{month}78006084")[3:5] == month


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ("", "13 ou 15 caractères"),
        ("26905495881", "13 ou 15 caractères"),
        ("26905495881578", "13 ou 15 caractères"),
        ("269054958815780A", "13 ou 15 caractères"),
        ("２690549588157", "13 ou 15 caractères"),
        ("5690549588157", "premier caractère"),
        ("26X0549588157", "année"),
        ("2690049588157", "mois"),
        ("2691349588157", "mois"),
        ("2694349588157", "mois"),
        ("2694949588157", "mois"),
        ("26905A2588157", "département"),
        ("269052C588157", "département"),
        ("26905495X8157", "commune"),
        ("2690549588X57", "ordre"),
        ("26905495881578X", "2 chiffres"),
        ("269054958815781", "clé de contrôle incorrecte"),
    ],
)
def test_normalize_rejects(raw: str, message: str) -> None:
    with pytest.raises(NirError, match=message):
        normalize_nir(raw)


def test_error_message_never_contains_the_value() -> None:
    with pytest.raises(NirError) as caught:
        normalize_nir(WIKIPEDIA_NIR + "00")
    assert WIKIPEDIA_NIR not in str(caught.value)
    assert caught.value.args == ("NIR invalide : clé de contrôle incorrecte",)


def test_nir_error_is_a_value_error() -> None:
    assert issubclass(NirError, ValueError)


def _digits(count: int) -> st.SearchStrategy[str]:
    return st.text(alphabet="0123456789", min_size=count, max_size=count)


valid_months = st.sampled_from([f"{m:02d}" for m in [*range(1, 13), *range(20, 43), *range(50, 100)]])
valid_departments = st.one_of(_digits(2), st.sampled_from(["2A", "2B"]))
valid_nirs = st.builds(
    lambda sex, year, month, department, commune, order: sex + year + month + department + commune + order,
    st.sampled_from("123478"),
    _digits(2),
    valid_months,
    valid_departments,
    _digits(3),
    _digits(3),
)


@given(valid_nirs)
def test_key_of_any_valid_nir_verifies(nir: str) -> None:
    key = nir_key(nir)
    assert len(key) == 2
    assert 1 <= int(key) <= 97
    assert normalize_nir(nir + key) == nir


@given(valid_nirs, st.integers(min_value=0, max_value=12), st.integers(min_value=1, max_value=9))
def test_any_single_digit_change_breaks_the_key(nir: str, position: int, shift: int) -> None:
    # The letters of a Corsican département cannot be changed into a digit "by one".
    if nir[position] not in "0123456789" or (nir[5:7] in ("2A", "2B") and position in (5, 6)):
        position = 0
    changed_digit = str((int(nir[position]) + shift) % 10)
    mutated = nir[:position] + changed_digit + nir[position + 1 :]
    assert nir_key(mutated) != nir_key(nir)
    with pytest.raises(NirError):
        normalize_nir(mutated + nir_key(nir))


@pytest.mark.parametrize(
    ("value", "valid"),
    [
        ("12345678901", True),
        ("00000000000", True),
        ("1234567890", False),
        ("123456789012", False),
        ("1234567890A", False),
        (" 2345678901", False),
        ("12345678901\n", False),
        ("１２３４５６７８９０１", False),
        ("", False),
    ],
)
def test_numero_france_travail(value: str, valid: bool) -> None:
    assert is_valid_numero_france_travail(value) is valid


@pytest.mark.parametrize(
    ("value", "valid"),
    [
        ("2024-02-29", True),
        ("1999-12-31", True),
        ("2023-02-29", False),
        ("2024-13-01", False),
        ("2024-00-10", False),
        ("2024-04-31", False),
        ("0000-01-01", False),
        ("20240131", False),
        ("2024-W01-1", False),
        ("2024-1-01", False),
        ("2024-01-01T00:00:00", False),
        (" 2024-01-01", False),
        ("2024-01-01\n", False),
        ("２０２４-01-01", False),
        ("", False),
    ],
)
def test_iso_date(value: str, valid: bool) -> None:
    assert is_valid_iso_date(value) is valid
