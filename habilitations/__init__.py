"""Habilitations: who may call the partner APIs, for which scopes, and who administers that.

The domain owns its tables (``models``: agents, grants, designations, subscriptions;
``campaign_models``; ``login_models``) and rules: the client registry (``clients``), the
request-time decision (``policy``), the state changes by aggregate (``agents``,
``agent_states``, ``grants``, ``designations``, ``subscriptions``, ``transitional``,
``overrides``), inactivity (``inactivity``), the yearly review campaigns (``campaigns``,
``campaign_evidence``, ``campaign_reports``), the ProConnect login (``login``, ``sirets``)
and the JSON shapes the admin API and the CLI share (``views``). It imports
only the kernel: audit events are written through the ``AuditRecorder`` and the journal read
through the ``AuditLookup`` its callers pass (``relais.core.auditing``); refusals are
``refusals.HabilitationRefused``, never HTTP.
"""
