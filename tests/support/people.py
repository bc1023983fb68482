"""The usagers of the test dataset, each chosen for a case the partner APIs must handle."""

from __future__ import annotations

from dataclasses import dataclass

from relais.core.nir import nir_key


def nir15(nir13: str) -> str:
    return nir13 + nir_key(nir13)


@dataclass(frozen=True)
class Person:
    numero: str
    nir13: str
    naissance: str
    departement: str
    certifie: str = "O"
    contrat: bool = True
    organisations: tuple[str, ...] = ()

    @property
    def nir(self) -> str:
        return nir15(self.nir13)


GIRONDE = Person("10000000001", "1850733063001", "1985-07-14", "33")
GIRONDE_SANS_CONTRAT = Person("10000000002", "2920133063002", "1992-01-02", "33", certifie="N", contrat=False)
SEINE_SAINT_DENIS = Person("10000000003", "1780593066003", "1978-05-30", "93")
RATTACHE_EXPLICITE = Person("10000000004", "2010193066004", "2001-01-20", "93", organisations=("CD33",))
CORSE = Person("10000000005", "190022A004005", "1990-02-11", "2A")
DOUBLON_A = Person("10000000006", "1880633063006", "1988-06-06", "33")
DOUBLON_B = Person("10000000007", "1880633063006", "1988-06-06", "33")
PEOPLE = (GIRONDE, GIRONDE_SANS_CONTRAT, SEINE_SAINT_DENIS, RATTACHE_EXPLICITE, CORSE, DOUBLON_A, DOUBLON_B)
