"""The web console for people (RGCs, security officers, integrators): server-rendered, in French.

It sits in the web shell next to the admin APIs and goes through the very same checks and
domain functions: the session cookie holds the admin token a login issues, verified by the
admin APIs' bearer check on every request; each page applies the admin handlers'
authorisation and writes one audit event before its answer leaves.
"""
