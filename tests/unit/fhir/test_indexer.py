"""The compiled index extraction gives exactly the rows of the interpreted reference, on the whole
shared corpus (Synthea with its references resolved as stored, FHIR examples, FR Core, IPS)."""

from __future__ import annotations

import gc
import gzip
import itertools
import re
from collections import Counter
from collections.abc import Iterator
from functools import partial
from operator import itemgetter
from pathlib import Path
from typing import Any

import orjson
import pytest

from carnet.crypto.blind_index import BlindIndexer
from carnet.fhir.definitions import Definitions, load_definitions
from carnet.fhir.indexer import KIND_COLUMNS, Indexer
from carnet.fhir.models import INDEX_TABLES
from tests.conftest import CORPUS, make_settings
from tests.unit.fhir.reference_indexer import ReferenceIndexer

# The corpus files are pretty-printed ("reference": "urn:uuid:..."), hence the spaces allowed.
_REFERENCE = re.compile(rb'"reference"\s*:\s*"(urn:uuid:[^"]+)"')
_ENTRY_HEAD = re.compile(
    rb'"fullUrl"\s*:\s*"(urn:uuid:[^"]+)"\s*,\s*"resource"\s*:\s*\{\s*"resourceType"\s*:\s*"(\w+)"'
)


@pytest.fixture(scope="module")
def definitions(tmp_path_factory: pytest.TempPathFactory) -> Definitions:
    settings = make_settings(tmp_path_factory.mktemp("defs"))
    return load_definitions(settings.definitions_dir)


def _resources(node: Any) -> Iterator[dict[str, Any]]:
    """Every resource in a file: the resource itself and, recursively, Bundle entries."""
    if not isinstance(node, dict) or "resourceType" not in node:
        return
    yield node
    for entry in node.get("entry") or []:
        if isinstance(entry, dict):
            yield from _resources(entry.get("resource"))


def _synthea() -> Iterator[dict[str, Any]]:
    for path in sorted((CORPUS / "synthea").glob("*.json.gz")):
        with gzip.open(path) as handle:
            raw = handle.read()
        # References as stored: the transaction rewrites urn:uuid: fullUrls to Type/id. The
        # targets are read from the bytes, so that the file is parsed once, after the rewrite
        # (and checked below against the parsed entries).
        targets = {url: kind + b"/" + url[9:] for url, kind in _ENTRY_HEAD.findall(raw)}
        entries = orjson.loads(_REFERENCE.sub(partial(_resolved, targets=targets), raw))["entry"]
        assert len(targets) == len(entries), path.name
        for e in entries:
            resource = e["resource"]
            assert (
                targets[e["fullUrl"].encode()]
                == f"{resource['resourceType']}/{e['fullUrl'][9:]}".encode()
            )
            yield resource


def _resolved(match: re.Match[bytes], targets: dict[bytes, bytes]) -> bytes:
    return b'"reference":"' + targets.get(match[1], match[1]) + b'"'


def _examples() -> Iterator[dict[str, Any]]:
    for folder in ("fhir-examples", "fr-core", "ips"):
        for path in sorted((CORPUS / folder).glob("*.json")):
            yield from _resources(orjson.loads(Path(path).read_bytes()))


def test_kind_columns_are_the_index_tables_columns() -> None:
    for kind, columns in KIND_COLUMNS.items():
        assert columns == tuple(c.name for c in INDEX_TABLES[kind].columns)
    assert KIND_COLUMNS.keys() == INDEX_TABLES.keys()


@pytest.mark.skipif(not (CORPUS / "synthea").is_dir(), reason="shared corpus not present")
@pytest.mark.slow  # the whole corpus through both indexers
def test_compiled_extraction_matches_the_reference_on_the_corpus(definitions: Definitions) -> None:
    blind = BlindIndexer(b"k" * 32)
    fast, reference = Indexer(definitions, blind), ReferenceIndexer(definitions, blind)
    checked = rows = in_compartment = 0
    # The reference's rows (dicts) as the production's (tuples in the table's column order).
    as_tuple = {kind: itemgetter(*columns) for kind, columns in KIND_COLUMNS.items()}
    # One resource at a time: the whole corpus held at once (234 MB of JSON as objects) made
    # every garbage collection walk it. And no cyclic garbage collection during the loop: it
    # makes none (the process's peak memory is the same without), while the objects it parses
    # and drops set off collections that cost a fifth of the test's time.
    gc.disable()
    try:
        for i, resource in enumerate(itertools.chain(_examples(), _synthea())):
            res_type = resource["resourceType"]
            if res_type not in definitions.resource_types:
                continue
            res_id = str(resource.get("id") or f"r{i}")
            got = fast.index(res_type, res_id, resource)
            want = reference.index(res_type, res_id, resource)
            where = f"{res_type}/{res_id}"
            assert got.patient_id == want.patient_id, where
            in_compartment += want.patient_id is not None
            assert got.value_count == want.value_count, where
            assert got.code_texts == want.code_texts, where
            assert got.rows.keys() == want.rows.keys(), where
            for kind, want_rows in want.rows.items():
                expected = list(map(as_tuple[kind], want_rows))
                # The same rows in the same order are the same multiset; any other order is
                # compared as one (a set's iteration order is no part of the contract).
                if got.rows[kind] != expected:
                    assert Counter(got.rows[kind]) == Counter(expected), f"{where} {kind}"
                rows += len(want_rows)
            checked += 1
    finally:
        gc.enable()
    assert checked > 63_000 and rows > 900_000  # the whole corpus went through both
    # References were resolved as stored (Patient/<id>): Synthea's resources are in a patient's
    # compartment (61,929 of 62,791; with urn:uuid references left as they are, none would be).
    assert in_compartment > 62_000
