"""Professionals' login with OpenID Connect: the relying party, and a development identity provider.

Relying party (``ProfessionalLogin``): authorization code flow with ``state``, ``nonce`` and PKCE
(S256) against ``settings.oidc_issuer`` (Pro Santé Connect in production), whose endpoints come
from its discovery document. The ID token is verified against the issuer's JWKS (signature, ``iss``,
``aud`` = ``settings.oidc_client_id``, ``exp``, ``nonce``). Its HTTP calls go through the
``httpx2.Client`` the caller gives (the services give a lazy one), to the configured issuer only.

Claims (Pro Santé Connect style): ``SubjectNameID`` is the national id of the professional, ``8``
followed by the RPPS number; ``SubjectRefPro.exercices[].codeProfession`` is the profession code
(TRE_G15-ProfessionSante), mapped by ``PROFESSION_CODES``. Simple ``rpps`` and ``profession``
claims are accepted too. With the real Pro Santé Connect these claims come from the userinfo
endpoint, which is not called yet.

Development identity provider (``DevIdentityProvider``, under ``/dev-idp``): a login page where one
picks a professional from a configured list, codes kept in memory for a minute, ID tokens signed
with the signer it is given. It serves loopback clients only and is meant for the demo and tests.
"""

from __future__ import annotations

import hmac
import secrets
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from hashlib import sha256
from typing import Any

import httpx2 as httpx
from joserfc import jwt
from joserfc.errors import InvalidKeyIdError, JoseError
from joserfc.jwk import KeySet
from joserfc.jwt import JWTClaimsRegistry

from carnet.audit.events import Actor, build_event
from carnet.audit.service import AuditService
from carnet.authn.outbound import LazyHttpsClient
from carnet.authn.service import AccountError, AccountExistsError, AccountService
from carnet.authn.sessions import SessionService
from carnet.authn.smart import s256, with_query
from carnet.authn.tickets import Tickets
from carnet.caller import PROFESSIONS, Principal
from carnet.crypto.tokens import ALGORITHM, TokenError, TokenSigner
from carnet.settings import Settings

PROFESSION_CODES = {
    "10": "physician",
    "21": "pharmacist",
    "40": "dentist",
    "50": "midwife",
    "60": "nurse",
    "70": "physiotherapist",
}
ID_TOKEN_ALGORITHMS = ["Ed25519", "EdDSA", "RS256", "ES256", "PS256", "RS384", "ES384"]
LOGIN_TICKET_SECONDS = 600
DEV_CODE_SECONDS = 60


class OidcError(Exception):
    """A login that cannot be completed; says why briefly, ids only."""


@dataclass(frozen=True)
class DevProfessional:
    """A professional the development identity provider can log in as (synthetic)."""

    rpps: str
    profession: str
    label: str


DEMO_PROFESSIONALS = (
    DevProfessional("10000000011", "physician", "Dr Médecin Démo (généraliste)"),
    DevProfessional("10000000029", "nurse", "Infirmière Démo"),
    DevProfessional("10000000037", "pharmacist", "Pharmacien Démo"),
    DevProfessional("10000000045", "midwife", "Sage-femme Démo"),
)


@dataclass(frozen=True)
class ProfessionalIdentity:
    """Who the issuer says logged in: its subject, the RPPS number, the profession."""

    subject: str
    rpps: str
    profession: str


def professional_from_claims(claims: dict[str, Any]) -> ProfessionalIdentity:
    """The RPPS number and profession an ID token (or userinfo answer) carries."""
    rpps = claims.get("rpps")
    profession = claims.get("profession")
    if not rpps:
        national = claims.get("SubjectNameID")
        if isinstance(national, str) and national.startswith("8") and len(national) > 1:
            rpps = national[1:]
    if not profession:
        ref = claims.get("SubjectRefPro")
        exercices = ref.get("exercices") if isinstance(ref, dict) else None
        if isinstance(exercices, list):
            for exercice in exercices:
                code = exercice.get("codeProfession") if isinstance(exercice, dict) else None
                if isinstance(code, str) and code in PROFESSION_CODES:
                    profession = PROFESSION_CODES[code]
                    break
    subject = claims.get("sub")
    if not isinstance(rpps, str) or not rpps.isalnum() or len(rpps) > 32:
        raise OidcError("the identity token carries no RPPS number")
    if profession not in PROFESSIONS:
        raise OidcError("the identity token carries no known profession")
    if not isinstance(subject, str) or not subject:
        raise OidcError("the identity token has no subject")
    return ProfessionalIdentity(subject, rpps, str(profession))


def _checked(response: httpx.Response, what: str) -> dict[str, Any]:
    if response.status_code != 200:
        raise OidcError(f"the identity provider's {what} answered {response.status_code}")
    try:
        body = response.json()
    except ValueError:
        raise OidcError(f"the identity provider's {what} did not answer JSON") from None
    if not isinstance(body, dict):
        raise OidcError(f"the identity provider's {what} did not answer an object")
    return body


class ProfessionalLogin:
    """The relying party: start a login, then finish it with the code the issuer sent back."""

    def __init__(
        self,
        settings: Settings,
        http: httpx.Client | LazyHttpsClient,
        tickets: Tickets,
        audit: AuditService | None = None,
    ) -> None:
        self.settings = settings
        self.http = http
        self.tickets = tickets
        self.audit = audit
        self.issuer = settings.oidc_issuer
        self.redirect_uri = f"{settings.issuer_url}/auth/pro/callback"
        self._discovery: dict[str, Any] | None = None
        self._keys: KeySet | None = None

    def discovery(self) -> dict[str, Any]:
        """The issuer's discovery document (fetched once; its ``issuer`` must match)."""
        if self._discovery is None:
            url = f"{self.issuer}/.well-known/openid-configuration"
            try:
                doc = _checked(self.http.get(url), "discovery document")
            except httpx.HTTPError:
                raise OidcError("the identity provider cannot be reached") from None
            if doc.get("issuer") != self.issuer:
                raise OidcError("the discovery document names another issuer")
            for field in ("authorization_endpoint", "token_endpoint", "jwks_uri"):
                if not isinstance(doc.get(field), str):
                    raise OidcError(f"the discovery document has no {field}")
            self._discovery = doc
        return self._discovery

    def _key_set(self, refresh: bool = False) -> KeySet:
        if self._keys is None or refresh:
            try:
                jwks = _checked(self.http.get(self.discovery()["jwks_uri"]), "JWKS")
                self._keys = KeySet.import_key_set(jwks)  # type: ignore[arg-type]
            except httpx.HTTPError:
                raise OidcError("the identity provider's keys cannot be fetched") from None
            except (JoseError, ValueError, TypeError):
                raise OidcError("the identity provider's JWKS does not parse") from None
        return self._keys

    def start(self, next_path: str = "/") -> tuple[str, str]:
        """The issuer's authorisation URL to send the browser to, and the login ticket to keep
        in a cookie until the callback (it holds state, nonce and the PKCE verifier)."""
        state, nonce = secrets.token_urlsafe(24), secrets.token_urlsafe(24)
        verifier = secrets.token_urlsafe(48)
        ticket = self.tickets.issue(
            "pro-login",
            "",
            {"state": state, "nonce": nonce, "cv": verifier, "next": safe_next(next_path)},
            LOGIN_TICKET_SECONDS,
        )
        params = {
            "response_type": "code",
            "client_id": self.settings.oidc_client_id,
            "redirect_uri": self.redirect_uri,
            "scope": "openid scope_all",
            "state": state,
            "nonce": nonce,
            "code_challenge": s256(verifier),
            "code_challenge_method": "S256",
            "acr_values": "eidas1",
        }
        return with_query(self.discovery()["authorization_endpoint"], params), ticket

    def finish(self, code: str, state: str, ticket: str | None) -> tuple[ProfessionalIdentity, str]:
        """Exchange the code and verify the ID token; returns who logged in and where to go."""
        if not ticket:
            raise OidcError("no login in progress in this browser")
        try:
            saved = self.tickets.check("pro-login", "", ticket)
        except TokenError:
            raise OidcError("the login took too long or was tampered with") from None
        if not hmac.compare_digest(str(saved.get("state", "")), state):
            raise OidcError("state does not match the login in progress")
        form = {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": self.redirect_uri,
            "client_id": self.settings.oidc_client_id,
            "code_verifier": str(saved["cv"]),
        }
        if self.settings.oidc_client_secret:
            form["client_secret"] = self.settings.oidc_client_secret
        try:
            answer = _checked(
                self.http.post(self.discovery()["token_endpoint"], data=form), "token endpoint"
            )
        except httpx.HTTPError:
            raise OidcError("the identity provider cannot be reached") from None
        id_token = answer.get("id_token")
        if not isinstance(id_token, str):
            raise OidcError("the token endpoint returned no ID token")
        claims = self.verify_id_token(id_token, str(saved["nonce"]))
        return professional_from_claims(claims), str(saved.get("next") or "/")

    def verify_id_token(self, id_token: str, nonce: str) -> dict[str, Any]:
        """The claims of an ID token signed by the issuer for this client, with this nonce."""
        try:
            try:
                decoded = jwt.decode(id_token, self._key_set(), algorithms=ID_TOKEN_ALGORITHMS)
            except InvalidKeyIdError:  # the issuer may have rotated its keys: fetch them once
                decoded = jwt.decode(
                    id_token, self._key_set(refresh=True), algorithms=ID_TOKEN_ALGORITHMS
                )
        except (JoseError, ValueError):
            raise OidcError("the ID token's signature is not the issuer's") from None
        claims = dict(decoded.claims)
        registry = JWTClaimsRegistry(
            leeway=30,
            iss={"essential": True, "value": self.issuer},
            aud={"essential": True, "value": self.settings.oidc_client_id},
            exp={"essential": True},
            iat={"essential": True},
            sub={"essential": True},
        )
        try:
            registry.validate(claims)
        except JoseError as exc:
            raise OidcError(f"ID token rejected: {exc.description}") from None
        audience = claims.get("aud")
        several = isinstance(audience, list) and len(audience) > 1
        if several and claims.get("azp") != self.settings.oidc_client_id:
            raise OidcError("ID token rejected: azp is not this client")
        if not hmac.compare_digest(str(claims.get("nonce", "")), nonce):
            raise OidcError("ID token rejected: nonce does not match")
        return claims

    def open_session(
        self,
        who: ProfessionalIdentity,
        accounts: AccountService,
        sessions: SessionService,
        *,
        source: str,
    ) -> tuple[str, str, str]:
        """Find (or create, at the first login) the professional's account by RPPS and open a
        portal session for it: (account id, session cookie, CSRF token). AccountError if the
        account is disabled."""
        found = accounts.find_by_rpps(who.rpps)
        if found is None:
            try:
                account_id = accounts.create_professional(
                    f"rpps:{who.rpps}", None, who.rpps, who.profession
                )
            except AccountExistsError:  # a concurrent first login created it
                again = accounts.find_by_rpps(who.rpps)
                if again is None:
                    raise
                account_id = again.account_id
        else:
            account_id = found.account_id
        try:
            principal = accounts.principal_for(account_id)
        except AccountError:
            self.audit_login(None, 403, source)
            raise
        cookie, csrf = sessions.open(account_id, second_factor=True)
        self.audit_login(principal, 200, source)
        return account_id, cookie, csrf

    def audit_login(self, who: Principal | None, outcome: int, source: str) -> None:
        """One audit event per professional login (``login``, rule ``authn:oidc``) or failed
        login (``login-failed``, actor ``unknown``), ids only, like the persons' logins."""
        if self.audit is None:
            return
        actor = Actor(
            actor=who.subject if who else "unknown",
            source=source,
            purpose="authentication",
            role=who.role if who else "professional",
            rule="authn:oidc",
        )
        action = "login" if outcome == 200 else "login-failed"
        self.audit.append([build_event(actor, action, None, outcome, [])])


def safe_next(path: str | None) -> str:
    """A local path to go to after login (never another site)."""
    if not path or not path.startswith("/") or path.startswith("//") or "\\" in path:
        return "/"
    return path


# -- the development identity provider --------------------------------------------------------


@dataclass(frozen=True)
class _DevCode:
    rpps: str
    redirect_uri: str
    challenge: str
    nonce: str | None
    expires: float


class DevIdentityProvider:
    """A minimal OpenID Connect provider for the demo's professionals (loopback only)."""

    def __init__(
        self,
        settings: Settings,
        signer: TokenSigner,
        professionals: Iterable[DevProfessional] = DEMO_PROFESSIONALS,
    ) -> None:
        self.settings = settings
        self.signer = signer
        self.issuer = f"{settings.issuer_url}/dev-idp"
        self.redirect_uri = f"{settings.issuer_url}/auth/pro/callback"
        self.professionals = {p.rpps: p for p in professionals}
        self._codes: dict[str, _DevCode] = {}
        self._lock = threading.Lock()

    def discovery(self) -> dict[str, Any]:
        return {
            "issuer": self.issuer,
            "authorization_endpoint": f"{self.issuer}/authorize",
            "token_endpoint": f"{self.issuer}/token",
            "jwks_uri": f"{self.issuer}/jwks",
            "response_types_supported": ["code"],
            "grant_types_supported": ["authorization_code"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": [ALGORITHM],
            "code_challenge_methods_supported": ["S256"],
            "token_endpoint_auth_methods_supported": ["client_secret_post", "none"],
            "scopes_supported": ["openid", "scope_all"],
            "claims_supported": ["sub", "SubjectNameID", "SubjectRefPro", "preferred_username"],
        }

    def jwks(self) -> dict[str, Any]:
        return self.signer.public_jwks()

    def check_authorize(self, params: dict[str, str]) -> dict[str, str]:
        """The authorisation request's fields the login form carries; OidcError if wrong."""
        if params.get("client_id") != self.settings.oidc_client_id:
            raise OidcError("unknown client")
        if params.get("redirect_uri") != self.redirect_uri:
            raise OidcError("redirect_uri is not registered")
        if params.get("response_type") != "code" or "openid" not in params.get("scope", "").split():
            raise OidcError("only the code flow with the openid scope")
        if params.get("code_challenge_method") != "S256" or not params.get("code_challenge"):
            raise OidcError("PKCE S256 is required")
        fields = ("client_id", "redirect_uri", "state", "nonce", "code_challenge")
        return {k: params[k] for k in fields if params.get(k)}

    def login(self, params: dict[str, str], rpps: str) -> str:
        """The chosen professional logs in: the redirect back to the client with a code."""
        fields = self.check_authorize(
            {**params, "response_type": "code", "scope": "openid", "code_challenge_method": "S256"}
        )
        if rpps not in self.professionals:
            raise OidcError("unknown professional")
        code = secrets.token_urlsafe(32)
        with self._lock:
            now = time.time()
            self._codes = {k: v for k, v in self._codes.items() if v.expires > now}
            self._codes[_digest(code)] = _DevCode(
                rpps,
                fields["redirect_uri"],
                fields["code_challenge"],
                fields.get("nonce"),
                now + DEV_CODE_SECONDS,
            )
        back = {"code": code}
        if fields.get("state"):
            back["state"] = fields["state"]
        return with_query(fields["redirect_uri"], back)

    def token(self, form: dict[str, str]) -> dict[str, Any]:
        """Exchange a code for an ID token; OidcError (answered as invalid_grant) otherwise."""
        if form.get("grant_type") != "authorization_code":
            raise OidcError("unsupported grant type")
        if form.get("client_id") != self.settings.oidc_client_id:
            raise OidcError("unknown client")
        secret = self.settings.oidc_client_secret
        if secret and not hmac.compare_digest(form.get("client_secret", ""), secret):
            raise OidcError("wrong client secret")
        with self._lock:
            found = self._codes.pop(_digest(form.get("code", "")), None)
        if found is None or found.expires <= time.time():
            raise OidcError("unknown or expired code")
        if form.get("redirect_uri") != found.redirect_uri:
            raise OidcError("redirect_uri differs")
        if not hmac.compare_digest(s256(form.get("code_verifier", "")), found.challenge):
            raise OidcError("code_verifier does not match")
        return {
            "access_token": secrets.token_urlsafe(32),  # opaque; Carnet does not call userinfo
            "token_type": "Bearer",
            "expires_in": 300,
            "id_token": self.id_token(self.professionals[found.rpps], found.nonce),
        }

    def id_token(self, who: DevProfessional, nonce: str | None) -> str:
        """An ID token in the style of Pro Santé Connect for ``who``."""
        issued = int(time.time())
        code = next(c for c, p in PROFESSION_CODES.items() if p == who.profession)
        claims: dict[str, Any] = {
            "iss": self.issuer,
            "aud": self.settings.oidc_client_id,
            "sub": f"8{who.rpps}",
            "iat": issued,
            "auth_time": issued,
            "exp": issued + 300,
            "acr": "eidas1",
            "SubjectNameID": f"8{who.rpps}",
            "preferred_username": f"8{who.rpps}",
            "SubjectRefPro": {"exercices": [{"codeProfession": code}]},
        }
        if nonce:
            claims["nonce"] = nonce
        return self.signer.sign(claims)


def _digest(code: str) -> str:
    return sha256(code.encode()).hexdigest()
