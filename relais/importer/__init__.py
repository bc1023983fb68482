"""``relais import``: load organisations, clients, usagers and their parcours from a JSON Lines file.

Each line is ``{"type": ..., "data": {...}}`` as described by ``specs/import-v1.schema.json``:
``organisation``, ``client`` and ``usager`` records are upserted by natural key (organisation
code, client_id, numéro France Travail); ``orientation``, ``rendez-vous``,
``contrat-engagement`` and ``manquement`` records designate their usager by numéro France
Travail and are recorded through the parcours domain's rules (``parcours.records``), exactly
as the API and the producer feed record them, so the activities they imply (ACT382, ACT380,
GLI100) are opened and closed alike. Identifiers given in the file (a rendez-vous ``id``, an
``identifiantConsequenceSanction``) are kept. Importing the same file twice changes nothing.

``subscription``, ``agent``, ``designation`` and ``habilitation`` records load an
organisation's existing accounts at once. Agents are keyed by their ``pa-identifiant-agent``
value within their organisation (and client, for a technical identity). They go through
``habilitations.lifecycle`` acting as the hub operator, so the same rules hold (RGC
eligibility, subscriptions bound grants) and every change is audited on the ``cli`` channel.

The whole file is one transaction: the first bad line rejects everything. Error messages
name the line and the problem, never the value (a NIR, a name, a secret).

The package: ``run`` (the run and its transaction, organisations and clients), ``report``
(what the run did), ``habilitations`` (the habilitations records); reading the file and
checking each record is the import format's (``adapters.inbound.import_format``).
"""

from __future__ import annotations

from adapters.inbound.import_format import RECORD_TYPES, DatasetError
from relais.importer.report import Counts, ImportReport
from relais.importer.run import ProgressCallback, count_lines, import_file, import_records

__all__ = [
    "RECORD_TYPES",
    "Counts",
    "DatasetError",
    "ImportReport",
    "ProgressCallback",
    "count_lines",
    "import_file",
    "import_records",
]
