"""The patient's record pages over HTTP: documents grouped by class and filtered, a document served
for the portal's sandboxed frame or as a download, the synthesis tables with flags in words, a
measurement's chart with its table; a foreign or hidden document answers like a missing one."""

from __future__ import annotations

import base64
import io
import re
from collections.abc import Iterator
from dataclasses import dataclass

import pypdfium2
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from carnet.app import Services, build_services, create_app
from carnet.authn.api import CSRF_COOKIE, SESSION_COOKIE
from carnet.fhir.errors import FhirError
from tests.conftest import make_settings
from tests.support.authn import Clock, account_service
from tests.support.migrated_store import SqliteTemplate
from tests.support.record_pages import PDF, PNG, RecordWorld, _create, _document, build_record


@dataclass
class Setup:
    services: Services
    client: TestClient
    world: RecordWorld


@pytest.fixture(scope="module")
def setup(
    tmp_path_factory: pytest.TempPathFactory, migrated_sqlite: SqliteTemplate
) -> Iterator[Setup]:
    """One store and one signed-in patient for the module: the pages only read."""
    data_dir = tmp_path_factory.mktemp("record-pages") / "data"
    migrated_sqlite.copy_into(data_dir)
    services = build_services(make_settings(data_dir), migrate=False)
    world = build_record(services)
    account = account_service(services, Clock()).create_person(
        "lea@example.org", "correct horse battery", world.patient_id
    )
    cookie, csrf = services.sessions.open(account, second_factor=True)
    with TestClient(create_app(services.settings, services), base_url="http://127.0.0.1") as c:
        c.cookies.set(SESSION_COOKIE, cookie)
        c.cookies.set(CSRF_COOKIE, csrf)
        yield Setup(services, c, world)
    services.close()


def test_documents_are_grouped_by_class_newest_first_with_others_last(setup: Setup) -> None:
    page = setup.client.get("/dossier")
    assert page.status_code == 200
    text = page.text
    order = [
        text.index(h) for h in ("Comptes rendus</h2>", "Imagerie médicale</h2>", "Autres</h2>")
    ]
    assert order == sorted(order)
    assert "12 mars 2025" in text and "Dr Claire Martin" in text
    assert page.headers["cache-control"] == "no-store"


def test_documents_filter_by_class_author_and_dates(setup: Setup) -> None:
    w = setup.world
    only_imaging = setup.client.get("/dossier", params={"classe": "31"}).text
    assert w.imaging in only_imaging and w.consult not in only_imaging
    author = (
        setup.client.get("/dossier").text.split('<option value="Practitioner/')[1].split('"')[0]
    )
    by_author = setup.client.get("/dossier", params={"auteur": f"Practitioner/{author}"}).text
    assert w.consult in by_author and w.imaging not in by_author
    in_2024 = setup.client.get("/dossier", params={"du": "2024-01-01", "au": "2024-12-31"}).text
    assert w.imaging in in_2024 and w.consult not in in_2024 and w.letter not in in_2024
    nonsense = setup.client.get("/dossier", params={"classe": "<x>", "du": "not-a-date"})
    assert nonsense.status_code == 200  # ignored, never an error page


def test_foreign_or_hidden_document_answers_like_a_missing_one(setup: Setup) -> None:
    w = setup.world
    listing = setup.client.get("/dossier").text
    assert w.hidden not in listing and w.foreign not in listing
    unknown = "00000000-0000-0000-0000-000000000000"
    for doc in (w.foreign, w.hidden):
        for suffix in ("", "/contenu", "/contenu?telecharger=1", "/apercu"):
            answer = setup.client.get(f"/dossier/documents/{doc}{suffix}")
            missing = setup.client.get(f"/dossier/documents/{unknown}{suffix}")
            assert answer.status_code == missing.status_code == 404
            assert answer.text.replace(doc, unknown) == missing.text


def test_a_document_is_served_for_the_sandboxed_frame_or_as_a_download(setup: Setup) -> None:
    w = setup.world
    page = setup.client.get(f"/dossier/documents/{w.imaging}").text
    assert f'src="/dossier/documents/{w.imaging}/contenu" sandbox' in page  # an image, as stored
    inline = setup.client.get(f"/dossier/documents/{w.consult}/contenu")
    assert inline.content == PDF
    assert inline.headers["content-type"] == "application/pdf"
    assert inline.headers["content-disposition"].startswith("inline")
    csp = inline.headers["content-security-policy"]
    assert "sandbox" in csp and "frame-ancestors 'self'" in csp
    download = setup.client.get(f"/dossier/documents/{w.imaging}/contenu?telecharger=1")
    # screening re-encodes every image from its pixels (no metadata kept): same picture
    assert _pixels(download.content) == _pixels(PNG)
    assert download.headers["content-disposition"].startswith("attachment")


def test_a_pdf_is_shown_in_the_script_less_sandboxed_frame_as_images_of_its_pages(
    setup: Setup,
) -> None:
    w = setup.world
    page = setup.client.get(f"/dossier/documents/{w.consult}").text
    assert f'src="/dossier/documents/{w.consult}/apercu" sandbox' in page
    assert "allow-scripts" not in page
    assert f'href="/dossier/documents/{w.consult}/contenu?telecharger=1"' in page  # still offered
    view = setup.client.get(f"/dossier/documents/{w.consult}/apercu")
    assert view.status_code == 200 and view.headers["content-type"].startswith("text/html")
    csp = [d.strip() for d in view.headers["content-security-policy"].split(";")]
    assert csp[:3] == ["sandbox", "default-src 'none'", "img-src data:"]
    assert "frame-ancestors 'self'" in csp and not any("script" in d for d in csp)
    assert view.headers["content-disposition"].startswith("inline")
    assert view.headers["x-content-type-options"] == "nosniff"
    assert view.headers["cache-control"] == "no-store"
    images = re.findall(r'<img src="data:image/png;base64,([^"]+)" alt="([^"]+)"', view.text)
    assert [alt for _, alt in images] == ["Page 1 sur 1"]
    rendered = Image.open(io.BytesIO(base64.b64decode(images[0][0])))
    assert rendered.format == "PNG" and rendered.width > 400


def test_synthesis_shows_latest_results_with_range_and_flag_in_words(setup: Setup) -> None:
    text = setup.client.get("/dossier/synthese").text
    glucose = text[text.index("Glycémie à jeun") :]
    assert "1,31" in glucose[:300] and "0,7 – 1,1" in glucose[:300]
    assert '<span class="flag-high">élevé</span>' in glucose[:400]
    potassium = text[text.index("Potassium") :]
    assert '<span class="flag-low">bas</span>' in potassium[:400]
    assert "1,02" not in text  # the older glucose value is not the latest
    for expected in (
        "Grippe saisonnière",
        "Allergie à la pénicilline",
        "Ramipril 5 mg",
        "Hypertension artérielle",
    ):
        assert expected in text


def test_blood_pressure_chart_has_title_description_band_and_table(setup: Setup) -> None:
    page = setup.client.get("/dossier/mesures/tension").text
    assert 'role="img"' in page and '<title id="chart-title">Pression artérielle</title>' in page
    assert '<desc id="chart-desc">3 mesures, du 15 janvier 2024 au 12 mars 2025.</desc>' in page
    assert 'class="band"' in page
    assert page.count('<polyline class="line series-') == 2  # systolic and diastolic
    table = page[page.index("<table") :]
    assert "Systolique" in table and "Diastolique" in table and "142" in table
    assert setup.client.get("/dossier/mesures/inconnue").status_code == 404


def test_record_pages_refuse_a_professional_and_send_strangers_to_sign_in(setup: Setup) -> None:
    anonymous = TestClient(setup.client.app, base_url="http://127.0.0.1")
    answer = anonymous.get("/dossier/synthese", follow_redirects=False)
    assert answer.status_code == 303 and answer.headers["location"].startswith("/connexion")
    accounts = account_service(setup.services, Clock())
    pro = accounts.create_professional("pro-record", None, "10000000088", "physician")
    cookie, _ = setup.services.sessions.open(pro, second_factor=True)
    anonymous.cookies.set(SESSION_COOKIE, cookie)
    assert anonymous.get("/dossier").status_code == 403


def _pixels(png: bytes) -> bytes:
    with Image.open(io.BytesIO(png)) as image:
        return image.convert("RGBA").tobytes()


def _scripted_pdf() -> bytes:
    """A one-page PDF whose opening runs JavaScript."""
    document = pypdfium2.PdfDocument.new()
    document.new_page(612, 792)
    out = io.BytesIO()
    document.save(out)
    script = b"/OpenAction << /S /JavaScript /JS (app.alert\\('run'\\)) >>"
    return out.getvalue().replace(b"/Type/Catalog", b"/Type/Catalog " + script, 1)


def test_the_viewer_draws_only_stored_pdfs_and_a_pdf_with_script_is_never_stored(
    setup: Setup,
) -> None:
    w = setup.world
    with pytest.raises(FhirError) as refused:  # every write is screened, the API's too
        _create(
            setup.services,
            _document(w.patient_id, "11488-4", "CR", "2025-02-01", _scripted_pdf(),
                      "application/pdf", None),
        )  # fmt: skip
    assert refused.value.status == 422
    assert setup.client.get(f"/dossier/documents/{w.imaging}/apercu").status_code == 404
