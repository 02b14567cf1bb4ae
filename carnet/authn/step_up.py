"""Step-up: the sensitive controls ask for the password and a fresh second-factor code again.

Closing one's personal space, objecting to it, lifting a block on a professional and lifting the
opposition to emergency access cannot be undone by a stolen session or token alone: the request's
JSON body carries ``"stepUp": {"password": ..., "code": ...}`` (a TOTP code not used before, so not
the login's). Without it: 401 ``step_up_required``; a wrong password or code: 403
``step_up_failed``; too many failures: 429 with ``Retry-After`` (the login limits apply: a step-up
is a login attempt). In every case nothing is changed and the refusal is audited under the
control's action, rule ``step-up``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from fastapi.responses import JSONResponse

from carnet.audit.service import AuditService
from carnet.authn.login import LoginVerifier
from carnet.authn.service import AccountError, LoginThrottledError
from carnet.caller import Kind, RequestContext

STEP_UP_FIELD = "stepUp"


class StepUpRefusedError(Exception):
    """The step-up is missing, wrong or throttled; ``status`` and ``error`` say which."""

    def __init__(self, status: int, error: str, message: str, retry_after: int = 0) -> None:
        super().__init__(message)
        self.status = status
        self.error = error
        self.retry_after = retry_after


class StepUp:
    """Checks the step-up proof of a person's request and audits its refusal."""

    def __init__(self, login: LoginVerifier, audit: AuditService) -> None:
        self.login = login
        self.audit = audit

    def check(self, ctx: RequestContext, body: Mapping[str, Any] | None) -> None:
        """Return when ``body`` proves both factors of the caller's account again; otherwise
        raise StepUpRefusedError (nothing audited: ``refusal`` does that)."""
        proof = body.get(STEP_UP_FIELD) if body else None
        password = proof.get("password") if isinstance(proof, dict) else None
        code = proof.get("code") if isinstance(proof, dict) else None
        if not isinstance(password, str) or not password or not isinstance(code, str) or not code:
            raise StepUpRefusedError(
                401,
                "step_up_required",
                "this action needs your password and a new second-factor code again: "
                f'send "{STEP_UP_FIELD}": {{"password": ..., "code": ...}}',
            )
        principal = ctx.principal
        if principal.kind is not Kind.PERSON:
            raise StepUpRefusedError(403, "step_up_failed", "only a person's account can step up")
        try:
            self.login.verify_step_up(principal.subject, password, code, ctx.source)
        except LoginThrottledError as exc:
            raise StepUpRefusedError(
                429,
                "too_many_attempts",
                "too many failed attempts; try again later",
                exc.retry_after,
            ) from None
        except AccountError:
            raise StepUpRefusedError(
                403, "step_up_failed", "wrong password or second-factor code"
            ) from None

    def refusal(
        self, ctx: RequestContext, body: Mapping[str, Any] | None, action: str
    ) -> JSONResponse | None:
        """None when the step-up holds; otherwise the answer to send, the refusal audited."""
        try:
            self.check(ctx, body)
        except StepUpRefusedError as exc:
            patient = ctx.principal.patient_id
            self.audit.record_failure(
                replace(ctx, rule="step-up"),
                action,
                "Patient" if patient else None,
                patient,
                exc.status,
            )
            headers = {"Cache-Control": "no-store"}
            if exc.retry_after:
                headers["Retry-After"] = str(exc.retry_after)
            return JSONResponse(
                {"error": exc.error, "error_description": str(exc)},
                status_code=exc.status,
                headers=headers,
            )
        return None
