"""Who is calling: persons' login, portal sessions, OAuth 2.0 / SMART, OpenID Connect, tokens.

The main service is ``AccountService`` (service.py); the request guard (guard.py) turns a bearer
token or a portal session into a ``Principal``. What a caller may then do is carnet/policy's.
"""
