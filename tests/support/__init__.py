"""The test kit: fixtures and helpers shared by every test folder, loaded as a pytest plugin.

``tests/conftest.py`` registers ``tests.support.plugin``, which loads the fixture modules:

- ``databases``: ``database_url`` and ``database``, a migrated database of the test's own,
  copied from a template migrated once per run (``database_templates``, ``own_database``);
- ``hashing``: the cheapest argon2 parameters for client secrets (autouse);
- ``hub``: ``hub`` and ``module_hub``, the real app (``shared_app``, built once per run; also
  under its former name ``hub_app``) on a copy of a database holding the test dataset
  (``dataset_template``, imported once per run), with its own clock, limiter and metrics.

Helpers without fixtures: ``scopes`` (scopes, URLs, secret and agent headers), ``people``
(the dataset's usagers), ``dataset`` (the records of the test dataset), ``tokens`` (partner,
admin tokens and jetons through the app).
"""
