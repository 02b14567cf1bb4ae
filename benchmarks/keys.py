"""Key rotation benchmark: `carnet keys rotate` over a store holding N data keys, against the bare
cost of unwrapping and rewrapping the same N keys in memory, measured in the same run.

    .venv/bin/python benchmarks/keys.py [--keys N] [--batch B]

The store's data keys are made directly (one wrapped random key per owner, as a patient's first
resource makes it), so the figure is the rotation's alone: reading each batch, unwrapping and
rewrapping, the compare-and-set update, one transaction per batch. Printed: keys per second of
both, and the ratio (the rotation's overhead over the cryptography it cannot avoid).
"""

from __future__ import annotations

import argparse
import secrets
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from carnet.app import build_services  # noqa: E402
from carnet.crypto.models import data_key  # noqa: E402
from carnet.db.instants import utc_now  # noqa: E402
from carnet.settings import Settings  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--keys", type=int, default=20_000)
    parser.add_argument("--batch", type=int, default=500)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="carnet-bench-keys-") as scratch:
        settings = Settings.from_env({}, data_dir=str(Path(scratch) / "data"))
        services = build_services(settings)
        try:
            keyring = services.crypto.keyring
            plain = [secrets.token_bytes(32) for _ in range(args.keys)]
            owners = [f"patient:bench-{n}" for n in range(args.keys)]
            rows = []
            for owner, key in zip(owners, plain, strict=True):
                wrapped = keyring.wrap(key, owner)
                rows.append(
                    {
                        "owner": owner,
                        "master_key_id": wrapped.key_id,
                        "wrapped": wrapped.wrapped,
                        "created_at": utc_now(),
                    }
                )
            with services.engine.begin() as conn:
                for start in range(0, len(rows), 5000):
                    conn.execute(data_key.insert(), rows[start : start + 5000])

            # Baseline: the same unwrap and rewrap, in memory, nothing stored.
            started = time.perf_counter()
            for row in rows:
                again = keyring.unwrap(row["wrapped"], row["owner"], row["master_key_id"])
                keyring.wrap(again, row["owner"])
            baseline = time.perf_counter() - started

            rotation = services.crypto.rotation(services.engine, settings)
            started = time.perf_counter()
            report = rotation.rotate(batch=args.batch)
            rotated = time.perf_counter() - started
        finally:
            services.close()
    print(f"data keys: {args.keys}, batch {args.batch}, {report.batches} batches")
    print("step                          seconds   keys/s     ratio to the in-memory rewrap")
    print(f"unwrap + wrap in memory      {baseline:8.2f}  {args.keys / baseline:9.0f}   1.00")
    print(
        f"carnet keys rotate           {rotated:8.2f}  {report.data_keys / rotated:9.0f}   "
        f"{rotated / baseline:.2f}"
    )
    print(f"reproduce: .venv/bin/python benchmarks/keys.py --keys {args.keys} --batch {args.batch}")


if __name__ == "__main__":
    main()
