"""Run one $import job to its end, as the server does: ``python -m tests.support.import_job``.

Kicks off an import of every file in the import directory (or, when an earlier process was
killed, polls the job it started: polling resubmits a job whose thread is gone, as after a server
restart) and exits 0 once the job has completed. The crash-safety test kills it with SIGKILL.
"""

from __future__ import annotations

import sys
import time

from carnet.app import build_services
from carnet.caller import RequestContext
from carnet.settings import Settings
from tests.support.auth import TEST_OPERATOR


def main() -> int:
    services = build_services(Settings.from_env())
    try:
        ctx = RequestContext(actor=TEST_OPERATOR.subject, principal=TEST_OPERATOR)
        importer = services.bulk_import
        job_file = services.settings.data_dir / "import-job-id"
        if job_file.exists():
            job_id = job_file.read_text()
        else:
            files = sorted(p.name for p in services.settings.import_dir.iterdir())
            manifest = {"input": [{"type": "", "url": f"file:{name}"} for name in files]}
            job_id = importer.kickoff(ctx, "http://127.0.0.1/fhir/$import", manifest)
            written = job_file.with_suffix(".tmp")
            written.write_text(job_id)
            written.rename(job_file)  # whole or absent, whenever the process is killed
        while (reply := importer.status(job_id, ctx)).status == 202:
            time.sleep(0.5)  # each poll is an audited read: not too often
        return 0 if reply.status == 200 else 1
    finally:
        services.close()


if __name__ == "__main__":
    sys.exit(main())
