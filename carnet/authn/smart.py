"""SMART on FHIR shapes shared by the authorisation server and its router: the discovery
document, a checked authorisation request, an authorisation error, a person's grant, PKCE S256."""

from __future__ import annotations

import base64
from dataclasses import dataclass
from hashlib import sha256
from typing import Any
from urllib.parse import urlencode

from carnet.crypto.tokens import ID_TOKEN_ALGORITHMS
from carnet.settings import Settings


@dataclass(frozen=True)
class AuthorizationRequest:
    """A checked authorisation request, as the grant screen shows it."""

    client_id: str
    client_name: str
    redirect_uri: str
    scopes: tuple[str, ...]
    state: str
    code_challenge: str
    nonce: str | None

    def params(self) -> dict[str, str]:
        out = {
            "response_type": "code",
            "client_id": self.client_id,
            "redirect_uri": self.redirect_uri,
            "scope": " ".join(self.scopes),
            "state": self.state,
            "code_challenge": self.code_challenge,
            "code_challenge_method": "S256",
        }
        if self.nonce:
            out["nonce"] = self.nonce
        return out


@dataclass(frozen=True)
class AuthorizeError(Exception):
    """An authorisation request refused. ``redirect`` is where to send the error (None when the
    client or its redirect URI cannot be trusted: the error is shown, never redirected)."""

    error: str
    description: str
    redirect: str | None = None


@dataclass(frozen=True)
class Grant:
    """An app a person granted access to their record."""

    client_id: str
    client_name: str
    scopes: tuple[str, ...]
    granted_at: str


def s256(verifier: str) -> str:
    """The PKCE S256 challenge of a verifier."""
    return base64.urlsafe_b64encode(sha256(verifier.encode()).digest()).rstrip(b"=").decode()


def with_query(uri: str, params: dict[str, str]) -> str:
    return uri + ("&" if "?" in uri else "?") + urlencode(params)


def smart_configuration(settings: Settings) -> dict[str, Any]:
    """The ``/.well-known/smart-configuration`` document (SMART App Launch 2.x)."""
    base = settings.issuer_url
    return {
        "issuer": base,
        "jwks_uri": f"{base}/oauth/jwks",
        "authorization_endpoint": f"{base}/oauth/authorize",
        "token_endpoint": f"{base}/oauth/token",
        "revocation_endpoint": f"{base}/oauth/revoke",
        "management_endpoint": f"{base}/oauth/grants",  # where a person sees and revokes apps
        "grant_types_supported": ["authorization_code", "refresh_token", "client_credentials"],
        "token_endpoint_auth_methods_supported": [
            "none",
            "client_secret_basic",
            "client_secret_post",
            "private_key_jwt",
        ],
        "token_endpoint_auth_signing_alg_values_supported": ["RS384", "ES384", "RS256", "ES256"],
        "response_types_supported": ["code"],
        "scopes_supported": [
            "openid",
            "fhirUser",
            "launch/patient",
            "offline_access",
            "patient/*.rs",
            "patient/*.cruds",
            "user/*.rs",
            "user/*.cruds",
            "system/*.rs",
            "system/*.cruds",
        ],
        "code_challenge_methods_supported": ["S256"],
        "capabilities": [
            "launch-standalone",
            "client-public",
            "client-confidential-symmetric",
            "client-confidential-asymmetric",
            "context-standalone-patient",
            "permission-offline",
            "permission-patient",
            "permission-user",
            "permission-v1",
            "permission-v2",
            "sso-openid-connect",
        ],
    }


def openid_configuration(settings: Settings) -> dict[str, Any]:
    """The ``/.well-known/openid-configuration`` document (OpenID Connect Discovery 1.0) of the
    same authorisation server, for relying parties that read ID tokens."""
    smart = smart_configuration(settings)
    shared = (
        "issuer",
        "authorization_endpoint",
        "token_endpoint",
        "revocation_endpoint",
        "jwks_uri",
        "grant_types_supported",
        "response_types_supported",
        "token_endpoint_auth_methods_supported",
        "token_endpoint_auth_signing_alg_values_supported",
        "code_challenge_methods_supported",
        "scopes_supported",
    )
    return {
        **{name: smart[name] for name in shared},
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": list(ID_TOKEN_ALGORITHMS),
        "response_modes_supported": ["query"],
        "claims_supported": ["iss", "sub", "aud", "exp", "iat", "nonce", "fhirUser"],
        "request_parameter_supported": False,
    }


OAUTH_URIS = "http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris"
SECURITY_SERVICES = "http://terminology.hl7.org/CodeSystem/restful-security-service"


def capability_security(settings: Settings) -> dict[str, Any]:
    """The CapabilityStatement's ``rest.security``: SMART on FHIR with the OAuth endpoints (the
    oauth-uris extension, which SMART 1.0 clients such as fhirclient read instead of discovery)."""
    smart = smart_configuration(settings)
    uris = {
        "authorize": smart["authorization_endpoint"],
        "token": smart["token_endpoint"],
        "revoke": smart["revocation_endpoint"],
        "manage": smart["management_endpoint"],
    }
    return {
        "extension": [
            {
                "url": OAUTH_URIS,
                "extension": [{"url": name, "valueUri": uri} for name, uri in uris.items()],
            }
        ],
        "cors": False,
        "service": [
            {
                "coding": [
                    {
                        "system": SECURITY_SERVICES,
                        "code": "SMART-on-FHIR",
                        "display": "SMART-on-FHIR",
                    }
                ],
                "text": "OAuth 2.0 with SMART App Launch (see /.well-known/smart-configuration)",
            }
        ],
    }
