"""Form helpers of the area: error messages in the page's language, and the step-up (password
and a new code again) of the controls that ask for it, its refusal audited."""

from __future__ import annotations

from dataclasses import replace

from fastapi import Request

from carnet.authn.step_up import STEP_UP_FIELD, StepUp, StepUpRefusedError
from carnet.web.caller import PageCaller
from carnet.web.i18n import N_
from carnet.web.templating import page_locale, translator


def translated_errors(request: Request, errors: dict[str, str] | None) -> dict[str, str]:
    """Error messages (French message ids) in the page's language."""
    gettext = translator(page_locale(request))
    return {name: gettext(message) for name, message in (errors or {}).items()}


def step_up_refusal(
    step_up: StepUp, caller: PageCaller, password: str, code: str, action: str
) -> str | None:
    """None when the password and a new code hold; else the message, the refusal audited."""
    try:
        step_up.check(caller.ctx, {STEP_UP_FIELD: {"password": password, "code": code.strip()}})
    except StepUpRefusedError as exc:
        patient = caller.principal.patient_id
        step_up.audit.record_failure(
            replace(caller.ctx, rule="step-up"), action, "Patient", patient, exc.status
        )
        if exc.status == 429:
            return N_("Trop d'essais : réessayez dans quelques minutes.")
        return N_(
            "Mot de passe ou code incorrect : saisissez votre mot de passe et un nouveau code."
        )
    return None
