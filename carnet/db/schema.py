"""Import every domain's models so the shared metadata knows all tables (for Alembic and tests)."""

from carnet.audit import models as _audit_models  # noqa: F401
from carnet.authn import models as _authn_models  # noqa: F401
from carnet.crypto import models as _crypto_models  # noqa: F401
from carnet.db.metadata import metadata
from carnet.fhir import models as _fhir_models  # noqa: F401
from carnet.fhir.operations import models as _bulk_models  # noqa: F401
from carnet.hub.omop import models as _hub_omop_models  # noqa: F401
from carnet.identity import models as _identity_models  # noqa: F401
from carnet.policy import models as _policy_models  # noqa: F401
from carnet.record import models as _record_models  # noqa: F401
from carnet.watch import models as _watch_models  # noqa: F401

__all__ = ["metadata"]
from carnet.hub import models as _hub_models  # noqa: F401
