"""The app ``relais serve`` runs: its startup objects are frozen out of the garbage collector's
full collections, which otherwise walked them again under load (a ~40 ms pause of every call
in flight, bench/run.py's search p99 45 ms instead of 8.6 ms)."""

from __future__ import annotations

import gc

from api.app import create_served_app
from tests.support.hub import Hub


def test_the_served_app_leaves_its_startup_objects_out_of_full_collections(hub: Hub) -> None:
    gc.unfreeze()
    try:
        app = create_served_app(hub.services.settings)
        frozen = gc.get_freeze_count()
        # The specs, validators and routes of the app just built are among them.
        assert frozen > 100_000
        assert app is not None
    finally:
        gc.unfreeze()  # the test process goes on building apps that must be collectable
