""" "Today" is the date in Paris: at half past midnight in Paris (23:30 UTC the day before, in
winter) an agent's today is accepted and tomorrow is refused, as at noon."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from parcours.orientation_checks import decision_date, past_date
from parcours.ports import Refused
from parcours.sanctions_valeurs import valider_date
from relais.core.french_dates import local_date

# 00:30 on 3 December in Paris, still 2 December in UTC; and 00:30 on 1 July (UTC+2 in summer).
WINTER_NIGHT = datetime(2026, 12, 2, 23, 30, tzinfo=UTC)
SUMMER_NIGHT = datetime(2026, 6, 30, 22, 30, tzinfo=UTC)


@pytest.mark.parametrize(("moment", "today"), [(WINTER_NIGHT, date(2026, 12, 3)), (SUMMER_NIGHT, date(2026, 7, 1))])
def test_today_is_the_date_in_paris(moment: datetime, today: date) -> None:
    assert local_date(moment) == today
    # A naive datetime (SQLite's) was written in UTC.
    assert local_date(moment.replace(tzinfo=None)) == today


def test_a_sanction_event_dated_today_in_paris_is_accepted_and_tomorrow_refused() -> None:
    assert valider_date({"dateEvenement": "2026-12-03"}, "dateEvenement", now=WINTER_NIGHT, required=True) == date(
        2026, 12, 3
    )
    with pytest.raises(Refused):
        valider_date({"dateEvenement": "2026-12-04"}, "dateEvenement", now=WINTER_NIGHT, required=True)


def test_an_orientation_decided_today_in_paris_is_not_in_the_future() -> None:
    assert past_date("2026-12-03", "date_decision", now=WINTER_NIGHT) == date(2026, 12, 3)
    # No date given: the decision is dated today, in Paris.
    assert decision_date(None, now=WINTER_NIGHT) == date(2026, 12, 3)
    with pytest.raises(Refused) as refused:
        past_date("2026-12-04", "date_decision", now=WINTER_NIGHT)
    assert refused.value.code == "DATE_DECISION_FUTURE"
