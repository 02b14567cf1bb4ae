"""The caller of the research hub's pages: a signed-in account holding a hub role.

Researchers, reviewers and output checkers sign in like professionals (OpenID Connect,
``/auth/pro/login``; a page without a session sends them to ``/connexion``, which offers it).
Their roles are the operator's grants (carnet/hub/roles.py), never a token's claims. A page
declares the role it needs; a signed-in caller without it meets the 403 page. The context's
purpose is ``research``; the hub's services still check membership and states themselves.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from typing import Annotated

from fastapi import Depends
from starlette.concurrency import run_in_threadpool

from carnet.caller import RequestContext
from carnet.dependencies import HubDep
from carnet.hub.roles import OUTPUT_CHECKER, RESEARCHER, REVIEWER, ROLES
from carnet.web.caller import PageCaller, SignedInPage, WrongKindOfCallerError


@dataclass(frozen=True)
class HubCaller:
    """A hub page's caller: who, their hub roles, and the context with purpose ``research``."""

    page: PageCaller
    roles: frozenset[str]

    @property
    def ctx(self) -> RequestContext:
        return replace(self.page.ctx, purpose="research")

    @property
    def subject(self) -> str:
        return self.page.principal.subject


async def _hub_caller(caller: SignedInPage, hub: HubDep) -> HubCaller:
    subject = caller.principal.subject

    def held() -> frozenset[str]:
        return frozenset(role for role in ROLES if hub.roles.holds(subject, role))

    roles = await run_in_threadpool(held)
    if not roles:
        raise WrongKindOfCallerError
    return HubCaller(caller, roles)


def _holding(role: str) -> Callable[[HubCaller], Awaitable[HubCaller]]:
    async def page(caller: Annotated[HubCaller, Depends(_hub_caller)]) -> HubCaller:
        if role not in caller.roles:
            raise WrongKindOfCallerError
        return caller

    return page


HubMemberPage = Annotated[HubCaller, Depends(_hub_caller)]
ResearcherPage = Annotated[HubCaller, Depends(_holding(RESEARCHER))]
ReviewerPage = Annotated[HubCaller, Depends(_holding(REVIEWER))]
CheckerPage = Annotated[HubCaller, Depends(_holding(OUTPUT_CHECKER))]
