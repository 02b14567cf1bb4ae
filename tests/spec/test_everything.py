"""Patient/{id}/$everything: compartment, referenced shared resources, _type, _since, paging."""

from __future__ import annotations

import time
from typing import Any

from fastapi.testclient import TestClient

from tests.spec.helpers import FHIR_JSON, observation, patient


def _create(client: TestClient, body: dict[str, Any]) -> str:
    response = client.post(f"/fhir/{body['resourceType']}", json=body, headers=FHIR_JSON)
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


def _record(client: TestClient) -> dict[str, str]:
    org = _create(client, {"resourceType": "Organization", "name": "CHU"})
    doc = _create(client, {"resourceType": "Practitioner", "name": [{"family": "House"}]})
    unused = _create(client, {"resourceType": "Practitioner", "name": [{"family": "Nobody"}]})
    pid = _create(client, patient(managingOrganization={"reference": f"Organization/{org}"}))
    other = _create(client, patient(family="Autre"))
    obs = _create(client, observation(pid, performer=[{"reference": f"Practitioner/{doc}"}]))
    cond = _create(
        client,
        {
            "resourceType": "Condition",
            "subject": {"reference": f"Patient/{pid}"},
            "code": {"text": "asthma"},
        },
    )
    _create(client, observation(other))
    return {"org": org, "doc": doc, "unused": unused, "pid": pid, "obs": obs, "cond": cond}


def _ids(bundle: dict[str, Any]) -> dict[str, str]:
    return {
        f"{e['resource']['resourceType']}/{e['resource']['id']}": e["search"]["mode"]
        for e in bundle.get("entry", [])
    }


def test_everything_returns_compartment_and_referenced_shared(client: TestClient) -> None:
    r = _record(client)
    response = client.get(f"/fhir/Patient/{r['pid']}/$everything")
    assert response.status_code == 200
    bundle = response.json()
    assert bundle["type"] == "searchset"
    assert _ids(bundle) == {
        f"Patient/{r['pid']}": "match",
        f"Observation/{r['obs']}": "match",
        f"Condition/{r['cond']}": "match",
        f"Organization/{r['org']}": "include",
        f"Practitioner/{r['doc']}": "include",
    }
    assert bundle["total"] == 3


def test_everything_total_counts_matches_only(client: TestClient) -> None:
    """Bundle.total is the number of matches (R4 Bundle.total; search: included resources are
    not counted): the patient's compartment, not the shared resources it references."""
    r = _record(client)
    bundle = client.get(f"/fhir/Patient/{r['pid']}/$everything").json()
    modes = [e["search"]["mode"] for e in bundle["entry"]]
    assert bundle["total"] == modes.count("match") == 3
    assert modes.count("include") == 2
    typed = client.get(f"/fhir/Patient/{r['pid']}/$everything?_type=Observation,Practitioner")
    assert typed.json()["total"] == 1
    # paging still runs over every entry: matches first, then what they reference
    last = client.get(f"/fhir/Patient/{r['pid']}/$everything?_count=2&_offset=4").json()
    assert last["total"] == 3
    assert [e["search"]["mode"] for e in last["entry"]] == ["include"]


def test_everything_type_filter_and_unknown_type(client: TestClient) -> None:
    r = _record(client)
    response = client.get(f"/fhir/Patient/{r['pid']}/$everything?_type=Observation,Practitioner")
    assert set(_ids(response.json())) == {f"Observation/{r['obs']}", f"Practitioner/{r['doc']}"}
    bad = client.get(f"/fhir/Patient/{r['pid']}/$everything?_type=Nonsense")
    assert bad.status_code == 400
    assert bad.json()["resourceType"] == "OperationOutcome"


def test_everything_since(client: TestClient) -> None:
    r = _record(client)
    time.sleep(0.01)
    later = _create(client, observation(r["pid"], code="29463-7"))
    cut = client.get(f"/fhir/Observation/{later}").json()["meta"]["lastUpdated"]
    response = client.get(f"/fhir/Patient/{r['pid']}/$everything", params={"_since": cut})
    ids = _ids(response.json())
    assert f"Observation/{later}" in ids
    assert f"Observation/{r['obs']}" not in ids
    assert client.get(f"/fhir/Patient/{r['pid']}/$everything?_since=yesterday").status_code == 400


def test_everything_pages_without_skipping_or_repeating(client: TestClient) -> None:
    r = _record(client)
    seen: list[str] = []
    url: str | None = f"/fhir/Patient/{r['pid']}/$everything?_count=2"
    pages = 0
    while url:
        bundle = client.get(url).json()
        assert bundle["total"] == 3  # the matches; the two included resources are not counted
        seen.extend(_ids(bundle))
        nxt = [link["url"] for link in bundle["link"] if link["relation"] == "next"]
        url = nxt[0].replace("http://127.0.0.1", "") if nxt else None
        pages += 1
    assert pages == 3
    assert len(seen) == 5 == len(set(seen))


def test_everything_unknown_and_deleted_patient(client: TestClient) -> None:
    missing = client.get("/fhir/Patient/nobody/$everything")
    assert missing.status_code == 404
    assert missing.json()["resourceType"] == "OperationOutcome"
    pid = _create(client, patient())
    assert client.delete(f"/fhir/Patient/{pid}").status_code == 204
    assert client.get(f"/fhir/Patient/{pid}/$everything").status_code == 410
