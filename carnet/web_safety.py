"""HTTP hygiene applied to every request: bounded request bodies and safe response headers.

Both are ASGI middlewares so that they hold for every route, including ones added later, and so
that a body is counted while it streams, before any route reads it whole.
"""

from __future__ import annotations

from dataclasses import dataclass

import orjson
from starlette.datastructures import Headers, MutableHeaders
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from carnet.fhir.errors import FhirError
from carnet.settings import Settings

FHIR_PREFIXES = ("/fhir",)
RESOURCE_PREFIXES = ("/fhir", "/identity")  # bodies that carry FHIR resources
UPLOAD_PATHS = ("/dossier/depot",)  # the portal's document upload form (carnet/web/record)
# Health data must not linger in a browser's or a proxy's cache, nor be sniffed into HTML.
SAFE_HEADERS: tuple[tuple[bytes, bytes], ...] = (
    (b"cache-control", b"no-store"),
    (b"x-content-type-options", b"nosniff"),
)


class BodyTooLarge(HTTPException):
    """Raised by the counting ``receive`` once a body passes its cap (the route stops there)."""

    def __init__(self, limit: int) -> None:
        super().__init__(status_code=413, detail=f"request body exceeds {limit} bytes")
        self.limit = limit


@dataclass(frozen=True)
class BodyLimits:
    """Caps per kind of request body, bytes."""

    form: int
    resource: int
    bundle: int
    upload: int = 0  # the portal's document upload; 0: the form cap

    @classmethod
    def from_settings(cls, settings: Settings) -> BodyLimits:
        return cls(
            settings.max_form_bytes,
            settings.max_resource_bytes,
            settings.max_bundle_bytes,
            settings.max_upload_bytes + settings.max_form_bytes,  # the file and its form
        )

    def for_path(self, method: str, path: str) -> int:
        """The cap of a request: a Bundle posted to the FHIR base, a resource, or a form."""
        if method == "POST" and path.rstrip("/") == "/fhir":
            return self.bundle
        if _under(path, RESOURCE_PREFIXES):
            return self.resource
        if method == "POST" and path in UPLOAD_PATHS and self.upload:
            return self.upload
        return self.form


def _under(path: str, prefixes: tuple[str, ...]) -> bool:
    return any(path == p or path.startswith(p + "/") for p in prefixes)


def too_large_response_parts(path: str, limit: int) -> tuple[int, bytes, bytes]:
    """(status, content type, body) of a 413: an OperationOutcome under /fhir, plain elsewhere."""
    message = f"request body exceeds {limit} bytes"
    if _under(path, FHIR_PREFIXES):
        outcome = FhirError.of(413, "too-long", message).outcome()
        return 413, b"application/fhir+json; charset=utf-8", orjson.dumps(outcome)
    return 413, b"text/plain; charset=utf-8", message.encode()


class LimitRequestBodies:
    """ASGI middleware: counts the bytes of ``http.request`` messages and answers 413 as soon as a
    body passes its cap, without reading the rest (a declared Content-Length over the cap is
    refused before the route runs; a chunked body is stopped at the message that crosses it)."""

    def __init__(self, app: ASGIApp, limits: BodyLimits) -> None:
        self.app = app
        self.limits = limits

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope.get("path", "")
        limit = self.limits.for_path(scope.get("method", "GET"), path)
        declared = Headers(scope=scope).get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            await _send_too_large(send, path, limit)
            return
        received = 0
        started = False

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise BodyTooLarge(limit)
            return message

        async def watching_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, counting_receive, watching_send)
        except BodyTooLarge:
            # Routes normally turn it into a 413 through the exception handlers; this catches
            # a body read outside them (a middleware, a dependency of the app itself).
            if started:
                raise
            await _send_too_large(send, path, limit)


async def _send_too_large(send: Send, path: str, limit: int) -> None:
    status, content_type, body = too_large_response_parts(path, limit)
    headers = [
        (b"content-type", content_type),
        (b"content-length", str(len(body)).encode()),
        (b"connection", b"close"),  # the rest of the body is never read
        *SAFE_HEADERS,
    ]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


class SafeResponseHeaders:
    """ASGI middleware: every response is ``Cache-Control: no-store`` and ``nosniff``, and carries
    no ``server`` banner (uvicorn's own is also turned off where it is started)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in SAFE_HEADERS:
                    headers[name.decode()] = value.decode()
                if "server" in headers:
                    del headers["server"]
            await send(message)

        await self.app(scope, receive, send_with_headers)
