"""The e2e hub (the real app on a fresh database with the test dataset) for these tests too."""

from tests.e2e.conftest import hub, hub_app, module_hub  # noqa: F401
