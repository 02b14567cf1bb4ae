"""Bulk Data $export: async kick-off, status polling, manifest, NDJSON files, encryption at rest."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any

import orjson
import pytest
from fastapi.testclient import TestClient

from carnet.app import Services, create_app
from carnet.caller import Kind, Principal, RequestContext
from carnet.fhir.errors import FhirError
from carnet.settings import Settings
from tests.spec.helpers import FHIR_JSON, observation, patient
from tests.support.audit_log import logged_events
from tests.support.caller import AS_LOCAL_OPERATOR

ASYNC = {"Prefer": "respond-async", "Accept": "application/fhir+json"}


def _create(client: TestClient, body: dict[str, Any]) -> str:
    response = client.post(f"/fhir/{body['resourceType']}", json=body, headers=FHIR_JSON)
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


def _local(url: str) -> str:
    return url.replace("http://127.0.0.1", "")


def _wait(client: TestClient, status_url: str) -> dict[str, Any]:
    for _ in range(400):
        response = client.get(_local(status_url))
        if response.status_code != 202:
            assert response.status_code == 200, response.text
            return dict(response.json())
        assert "X-Progress" in response.headers
        time.sleep(0.025)
    raise AssertionError("export did not finish")


def _kickoff(client: TestClient, url: str) -> str:
    response = client.get(url, headers=ASYNC)
    assert response.status_code == 202, response.text
    location = response.headers["Content-Location"]
    assert "/fhir/$export-status/" in location
    return location


def _files(client: TestClient, manifest: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    out = {}
    for item in manifest["output"]:
        response = client.get(_local(item["url"]))
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("application/fhir+ndjson")
        lines = [orjson.loads(line) for line in response.content.splitlines() if line]
        assert len(lines) == item["count"]
        assert {r["resourceType"] for r in lines} == {item["type"]}
        out[item["type"]] = lines
    return out


@pytest.fixture
def record(client: TestClient) -> dict[str, str]:
    org = _create(client, {"resourceType": "Organization", "name": "CHU"})
    p1 = _create(client, patient())
    p2 = _create(client, patient(family="Martin"))
    o1 = _create(client, observation(p1))
    o2 = _create(client, observation(p2))
    group = _create(
        client,
        {
            "resourceType": "Group",
            "type": "person",
            "actual": True,
            "member": [{"entity": {"reference": f"Patient/{p1}"}}],
        },
    )
    return {"org": org, "p1": p1, "p2": p2, "o1": o1, "o2": o2, "group": group}


def test_system_export_round_trip(
    client: TestClient, services: Services, record: dict[str, str]
) -> None:
    status_url = _kickoff(client, "/fhir/$export")
    manifest = _wait(client, status_url)
    assert manifest["requiresAccessToken"] is True
    assert manifest["error"] == []
    assert manifest["transactionTime"].endswith("Z")
    assert manifest["request"].endswith("/fhir/$export")
    files = _files(client, manifest)
    assert {p["id"] for p in files["Patient"]} == {record["p1"], record["p2"]}
    assert {o["id"] for o in files["Observation"]} == {record["o1"], record["o2"]}
    assert [o["id"] for o in files["Organization"]] == [record["org"]]
    # At rest the files are ciphertext: no id, no name appears in clear.
    job = status_url.rsplit("/", 1)[1]
    folder = services.settings.export_dir / job
    stored = b"".join(p.read_bytes() for p in folder.iterdir())
    assert record["p1"].encode() not in stored
    assert b"Dupont" not in stored
    # DELETE removes the job, its files and its key.
    assert client.delete(_local(status_url)).status_code == 202
    assert client.get(_local(status_url)).status_code == 404
    assert not folder.exists()
    assert client.get(_local(manifest["output"][0]["url"])).status_code == 404


def test_type_and_since_filters(client: TestClient, record: dict[str, str]) -> None:
    manifest = _wait(client, _kickoff(client, "/fhir/$export?_type=Patient,Organization"))
    assert sorted(o["type"] for o in manifest["output"]) == ["Organization", "Patient"]
    time.sleep(0.01)
    late = _create(client, observation(record["p1"], code="29463-7"))
    since = client.get(f"/fhir/Observation/{late}").json()["meta"]["lastUpdated"]
    manifest = _wait(client, _kickoff(client, f"/fhir/$export?_since={since.replace('+', '%2B')}"))
    files = _files(client, manifest)
    assert list(files) == ["Observation"]
    assert [o["id"] for o in files["Observation"]] == [late]


def test_patient_and_group_level(client: TestClient, record: dict[str, str]) -> None:
    files = _files(client, _wait(client, _kickoff(client, "/fhir/Patient/$export")))
    assert "Organization" not in files  # outside every compartment
    assert {p["id"] for p in files["Patient"]} == {record["p1"], record["p2"]}
    group_url = f"/fhir/Group/{record['group']}/$export"
    files = _files(client, _wait(client, _kickoff(client, group_url)))
    assert [p["id"] for p in files["Patient"]] == [record["p1"]]
    assert [o["id"] for o in files["Observation"]] == [record["o1"]]


@pytest.mark.parametrize(
    ("url", "headers", "status"),
    [
        ("/fhir/$export?_type=Nonsense", ASYNC, 400),
        ("/fhir/$export?_outputFormat=text/csv", ASYNC, 400),
        ("/fhir/$export?_since=not-a-date", ASYNC, 400),
        ("/fhir/$export?_typeFilter=Patient%3Fgender%3Dfemale", ASYNC, 400),
        ("/fhir/$export", {"Accept": "application/fhir+json"}, 400),
        ("/fhir/Group/missing/$export", ASYNC, 404),
        ("/fhir/$export-status/no-such-job", {}, 404),
        ("/fhir/$export-file/no-such-job/Patient.ndjson", {}, 404),
    ],
)
def test_refusals(client: TestClient, url: str, headers: dict[str, str], status: int) -> None:
    response = client.get(url, headers=headers)
    assert response.status_code == status
    assert response.json()["resourceType"] == "OperationOutcome"


def test_output_format_ndjson_accepted_and_bad_file_names(
    client: TestClient, record: dict[str, str]
) -> None:
    url = "/fhir/$export?_outputFormat=application%2Ffhir%2Bndjson&_type=Patient"
    status_url = _kickoff(client, url)
    _wait(client, status_url)
    job = status_url.rsplit("/", 1)[1]
    assert client.get(f"/fhir/$export-file/{job}/..%2Fmaster.key").status_code == 404
    assert client.get(f"/fhir/$export-file/{job}/Observation.ndjson").status_code == 404


def test_status_survives_a_restart(
    client: TestClient, services: Services, record: dict[str, str]
) -> None:
    """A job row left 'accepted' by a stopped process is run by the next one at the first poll."""
    from carnet.fhir.operations.jobs import JobStore, principal_params
    from tests.support.auth import TEST_OPERATOR

    job = JobStore(services.engine).create(
        "export",
        "http://127.0.0.1/fhir/$export",
        "operator:test",  # the caller who polls (a job is its starter's own)
        {
            "level": "system",
            "types": ["Patient"],
            "since": None,
            "patients": None,
            "base": "http://127.0.0.1/fhir",
            "principal": principal_params(TEST_OPERATOR),  # a job runs as its starter
        },
    )
    manifest = _wait(client, f"/fhir/$export-status/{job}")
    assert [o["count"] for o in manifest["output"]] == [2]


def test_expired_exports_are_erased(services: Services, record: dict[str, str]) -> None:
    from datetime import timedelta

    export = services.bulk_export
    job = export.kickoff(AS_LOCAL_OPERATOR, "urn:b", "urn:b/$export", "system", [])
    services.bulk_export.runner.wait(job, timeout=30)
    assert export.status(job, AS_LOCAL_OPERATOR).status == 200
    folder: Path = export.export_dir / job
    assert folder.is_dir()
    export.retention = timedelta(seconds=-1)
    assert export.purge_expired() == 1
    assert not folder.exists()


def test_another_caller_cannot_read_or_cancel_a_jobs_status(
    services: Services, record: dict[str, str]
) -> None:
    """In process as over HTTP, a job answers its owner only: to anyone else (here a backend with
    system read scopes) it is as unknown as a missing one, the refusal audited, the job intact."""
    export = services.bulk_export
    job = export.kickoff(AS_LOCAL_OPERATOR, "urn:b", "urn:b/$export", "system", [])
    export.runner.wait(job, timeout=30)
    lab = Principal(Kind.BACKEND, "lab", client_id="lab", scopes=frozenset({"system/*.rs"}))
    stranger = RequestContext(actor=lab.subject, principal=lab)
    for attempt in (export.status, export.cancel):
        with pytest.raises(FhirError) as refused:
            attempt(job, stranger)
        assert refused.value.status == 404
    refusals = [e for e in logged_events(services) if e["actor"] == lab.subject]
    assert [(e["action"], e["outcome"], e["rule"]) for e in refusals] == [
        ("export-status", 404, f"bulk-job-not-owner job:{job}"),
        ("export-cancel", 404, f"bulk-job-not-owner job:{job}"),
    ]
    assert export.status(job, AS_LOCAL_OPERATOR).status == 200


def test_bulk_manifest_requires_access_token(
    client: TestClient, settings: Settings, services: Services, record: dict[str, str]
) -> None:
    """The files are served to the job's owner only, with a bearer token: the manifest says so
    (Bulk Data: requiresAccessToken true when the token is needed to download)."""
    manifest = _wait(client, _kickoff(client, "/fhir/$export?_type=Patient"))
    assert manifest["requiresAccessToken"] is True
    url = _local(manifest["output"][0]["url"])
    with TestClient(create_app(settings, services), base_url="http://127.0.0.1") as anonymous:
        assert anonymous.get(url).status_code == 401
    assert client.get(url).status_code == 200


def test_completed_export_status_says_when_files_expire(
    client: TestClient, services: Services, record: dict[str, str]
) -> None:
    status_url = _kickoff(client, "/fhir/$export?_type=Patient")
    _wait(client, status_url)
    response = client.get(_local(status_url))
    assert response.status_code == 200
    expires = parsedate_to_datetime(response.headers["Expires"])
    retention = timedelta(hours=services.settings.export_retention_hours)
    now = datetime.now(UTC)
    assert now + retention - timedelta(minutes=5) < expires <= now + retention
    # the files are erased once that moment has passed
    services.bulk_export.retention = timedelta(seconds=-1)
    assert services.bulk_export.purge_expired() == 1


def _parameters(*pairs: tuple[str, str, str]) -> dict[str, Any]:
    return {
        "resourceType": "Parameters",
        "parameter": [{"name": name, kind: value} for name, kind, value in pairs],
    }


def _post_kickoff(client: TestClient, url: str, body: dict[str, Any]) -> str:
    response = client.post(url, json=body, headers={**ASYNC, **FHIR_JSON})
    assert response.status_code == 202, response.text
    return str(response.headers["Content-Location"])


def test_bulk_export_accepts_post(client: TestClient, record: dict[str, str]) -> None:
    """Bulk Data v2: the kick-off may be a POST whose parameters are a Parameters resource."""
    body = _parameters(
        ("_type", "valueString", "Patient"),
        ("_type", "valueString", "Organization"),
        ("_outputFormat", "valueString", "application/fhir+ndjson"),
    )
    manifest = _wait(client, _post_kickoff(client, "/fhir/$export", body))
    assert sorted(o["type"] for o in manifest["output"]) == ["Organization", "Patient"]
    assert manifest["request"].endswith("/fhir/$export")
    only = _parameters(("_type", "valueString", "Observation"))
    files = _files(client, _wait(client, _post_kickoff(client, "/fhir/Patient/$export", only)))
    assert {o["id"] for o in files["Observation"]} == {record["o1"], record["o2"]}
    group_url = f"/fhir/Group/{record['group']}/$export"
    since = _parameters(("_since", "valueInstant", "2000-01-01T00:00:00Z"))
    files = _files(client, _wait(client, _post_kickoff(client, group_url, since)))
    assert [p["id"] for p in files["Patient"]] == [record["p1"]]


@pytest.mark.parametrize(
    ("body", "headers", "status"),
    [
        (_parameters(("_type", "valueString", "Nonsense")), ASYNC, 400),
        (_parameters(("_typeFilter", "valueString", "Patient?gender=female")), ASYNC, 400),
        (_parameters(("_since", "valueInstant", "yesterday")), ASYNC, 400),
        ({"resourceType": "Parameters", "parameter": [{"name": "_type"}]}, ASYNC, 400),
        ({"resourceType": "Patient"}, ASYNC, 400),
        (_parameters(("_type", "valueString", "Patient")), {}, 400),  # no Prefer: respond-async
    ],
)
def test_bulk_export_post_refusals(
    client: TestClient, body: dict[str, Any], headers: dict[str, str], status: int
) -> None:
    response = client.post("/fhir/$export", json=body, headers={**headers, **FHIR_JSON})
    assert response.status_code == status, response.text
    assert response.json()["resourceType"] == "OperationOutcome"
