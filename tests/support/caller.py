"""The caller of in-process test steps that stand for the CLI (setting data up, importing)."""

from __future__ import annotations

from carnet.caller import RequestContext

AS_LOCAL_OPERATOR = RequestContext.local_operator()
"""The local operator, as the CLI acts: system scopes, actor ``local`` from 127.0.0.1."""
