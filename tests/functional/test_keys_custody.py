"""`carnet keys custody`: every key, where it lives, who can use it, when it last changed, and
never a byte of key material."""

from __future__ import annotations

from pathlib import Path

from typer.testing import Result

from tests.support.cli import invoke


def _run(data_dir: Path, *args: str) -> Result:
    env = {"CARNET_DATA_DIR": str(data_dir), "CARNET_DATABASE_URL": "", "COLUMNS": "250"}
    return invoke(args, env=env, catch_exceptions=False)


def test_the_custody_report_names_every_key_and_shows_none(tmp_path: Path) -> None:
    data = tmp_path / "data"
    result = _run(data, "keys", "custody")
    assert result.exit_code == 0, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    keys = [line.split(" | ")[0] for line in lines]
    assert keys[0].startswith("master key ")
    assert keys[1:5] == [
        "blind-index key",
        "audit-signing key",
        "token-signing key",
        "backup key",
    ]
    assert any(k.startswith("data keys (") for k in keys)
    assert any(k.startswith("destroyed data keys (0)") for k in keys)
    assert keys[-1] == "ID-token signing key (RSA)"
    assert all(len(line.split(" | ")) == 4 for line in lines)
    assert f"file {data / 'master.key'}" in lines[0] and "(mode 600)" in lines[0]
    key = (data / "master.key").read_bytes()
    assert key.hex() not in result.output and key.hex()[:16] not in result.output
