"""The FHIR domain's wiring: the engine pieces (definitions, repository, query compiler), then the
service over them with the access hook that checks and records every interaction."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Engine

from carnet.crypto.service import CryptoService
from carnet.fhir.access import AccessPolicy
from carnet.fhir.attachments import BlobStore
from carnet.fhir.definitions import Definitions, load_definitions
from carnet.fhir.indexer import Indexer
from carnet.fhir.query import Compiler
from carnet.fhir.repository import Repository
from carnet.fhir.service import FhirService
from carnet.fhir.validation import Validator
from carnet.settings import Settings


@dataclass(frozen=True)
class FhirStore:
    """What the FHIR service and the policy decision point share: the definitions, the one
    repository of resource rows and the search compiler."""

    definitions: Definitions
    repository: Repository
    compiler: Compiler


def build_store(settings: Settings, engine: Engine, crypto: CryptoService) -> FhirStore:
    """The definitions, the repository (with its blob store and indexer) and the compiler."""
    definitions = load_definitions(settings.definitions_dir)
    blobs = BlobStore(
        settings.blob_dir, crypto.data_keys, crypto.blind, settings.max_attachment_bytes
    )
    indexer = Indexer(definitions, crypto.blind, settings.max_indexed_chars, settings.fhir_base_url)
    return FhirStore(
        definitions=definitions,
        repository=Repository(engine, crypto.data_keys, indexer, blobs),
        compiler=Compiler(definitions, crypto.blind),
    )


def build(settings: Settings, store: FhirStore, *, access: AccessPolicy) -> FhirService:
    """Every FHIR interaction, each checked and recorded by ``access``."""
    return FhirService(
        store.repository,
        store.definitions,
        Validator(store.definitions, max_resource_bytes=settings.max_resource_bytes),
        store.compiler,
        default_page_size=settings.default_page_size,
        max_page_size=settings.max_page_size,
        max_search_terms=settings.max_search_terms,
        access=access,
    )
