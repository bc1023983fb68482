"""The France Travail gateway: the partner APIs served from the real platform.

With ``RELAIS_BACKEND=france-travail`` each partner call, once Relais has authenticated the
client, checked its scopes and started its audit event, is forwarded to France Travail
(recette or production) with Relais' own application credentials, instead of being answered
from the reference store. See ``backends.build_gateway_backends``.
"""
