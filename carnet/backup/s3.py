"""An S3-compatible backup target (`carnet backup --to s3://bucket/prefix`): a MinIO, an HDS
provider's object storage, any service speaking the S3 API at the configured endpoint.

Objects are what the directory target stores (chunks, escrowed keys and manifests, all sealed
with the backup key before they leave), under ``prefix/``. The endpoint is always named by the
operator (backup_s3_endpoint): nothing falls back to a provider's default, so the sovereignty
report can say where backups go. Credentials come from settings and are never printed.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

from carnet.backup.errors import TargetError

S3_SCHEME = "s3://"


def is_s3_url(value: str) -> bool:
    return value.startswith(S3_SCHEME)


def parse_s3_url(url: str) -> tuple[str, str]:
    """(bucket, prefix) of ``s3://bucket/prefix``; the prefix may be empty."""
    parts = urlsplit(url)
    bucket, prefix = parts.netloc, parts.path.strip("/")
    if parts.scheme != "s3" or not bucket or parts.query or parts.fragment:
        raise TargetError(f"a backup target is s3://bucket/prefix, not {url[:80]!r}")
    if any(piece in ("", ".", "..") for piece in prefix.split("/")) and prefix:
        raise TargetError("the S3 prefix holds no empty, '.' or '..' segment")
    return bucket, prefix


def endpoint_location(endpoint: str) -> str:
    """scheme://host[:port] of the endpoint (never a credential or a path)."""
    parts = urlsplit(endpoint)
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{parts.hostname or ''}{port}"


class S3Target:
    """Backup objects in one bucket, under one prefix, of an S3-compatible service."""

    def __init__(
        self,
        url: str,
        *,
        endpoint: str,
        region: str,
        access_key: str,
        secret: str,
        jurisdiction: str,
    ) -> None:
        if not endpoint:
            raise TargetError(
                "an S3 backup target needs its endpoint (backup_s3_endpoint): none is assumed"
            )
        if not access_key or not secret:
            raise TargetError(
                "an S3 backup target needs credentials (backup_s3_access_key, backup_s3_secret)"
            )
        self.bucket, self.prefix = parse_s3_url(url)
        self.jurisdiction = jurisdiction
        self.location = f"{url.rstrip('/')} at {endpoint_location(endpoint)}"
        import boto3  # only where an S3 target is used: the import costs half a second
        from botocore.config import Config

        self._client: Any = boto3.session.Session().client(
            "s3",
            endpoint_url=endpoint,
            region_name=region
            or "us-east-1",  # signing needs one; S3-compatible services ignore it
            aws_access_key_id=access_key,
            aws_secret_access_key=secret,
            config=Config(
                retries={"max_attempts": 3, "mode": "standard"},
                connect_timeout=10,
                read_timeout=60,
                s3={"addressing_style": "path"},  # MinIO and most sovereign providers
            ),
        )

    def _key(self, name: str) -> str:
        if any(piece in ("", ".", "..") for piece in name.split("/")):
            raise ValueError("object names stay inside the target")
        return f"{self.prefix}/{name}" if self.prefix else name

    def _call(self, operation: str, **kwargs: Any) -> Any:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            return getattr(self._client, operation)(Bucket=self.bucket, **kwargs)
        except ClientError as exc:
            code = str(exc.response.get("Error", {}).get("Code", ""))
            if code in ("404", "NoSuchKey", "NotFound") and operation in (
                "head_object",
                "get_object",
            ):
                raise FileNotFoundError(kwargs.get("Key", "")) from None
            raise TargetError(
                f"the S3 backup target {self.location} refused {operation}: {code or 'error'}"
            ) from None
        except BotoCoreError as exc:  # unreachable, timed out, bad endpoint: the class says it
            raise TargetError(
                f"the S3 backup target {self.location} cannot be reached ({type(exc).__name__})"
            ) from None

    def exists(self, name: str) -> bool:
        try:
            self._call("head_object", Key=self._key(name))
        except FileNotFoundError:
            return False
        return True

    def put(self, name: str, data: bytes) -> None:
        # A PUT is atomic: readers see the whole object or none (no temporary name needed).
        self._call("put_object", Key=self._key(name), Body=data)

    def get(self, name: str) -> bytes | None:
        try:
            found = self._call("get_object", Key=self._key(name))
        except FileNotFoundError:
            return None
        body: bytes = found["Body"].read()
        return body

    def delete(self, name: str) -> None:
        self._call("delete_object", Key=self._key(name))

    def names(self, prefix: str) -> Iterator[str]:
        start = self._key(prefix) + "/"
        strip = len(self.prefix) + 1 if self.prefix else 0
        token: str | None = None
        found: list[str] = []
        while True:
            page = self._call(
                "list_objects_v2", Prefix=start, **({"ContinuationToken": token} if token else {})
            )
            found += [str(item["Key"])[strip:] for item in page.get("Contents", [])]
            if not page.get("IsTruncated"):
                break
            token = page["NextContinuationToken"]
        yield from sorted(found)
