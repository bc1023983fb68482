"""The audit domain: a verifiable journal of every call and action, and what reads it.

- ``journal``: events appended in the caller's transaction (``append_event``; other domains
  get a ``JournalRecorder``, the kernel's ``AuditRecorder``), then sequenced as leaves of an
  RFC 6962 Merkle tree (``merkle``, tables in ``models``);
- ``checkpoints``: Ed25519-signed tree heads, inclusion and consistency proofs;
- ``verify``: offline verification of the database or of an export, against the public key;
  ``export``: the proof-carrying JSON Lines export; ``retention``: signed purges of old payloads;
- ``search`` and ``report``: the security officers' search, CSV export and the « qui a consulté
  mon dossier » report; ``lookup``: the kernel's ``AuditLookup``, what other domains may read;
- ``detection`` and ``incidents``: rules run over new events, opening security incidents
  (tables in ``incident_models``) with their 48-hour notification clock;
- ``refusals``: ``AuditRefused``, the domain's one refusal root.

The domain imports only the kernel: callers hand it what it needs (a session, the time, the
usager keys a search is about); the web and CLI shells map its refusals.
"""
