"""A SoftHSM2 token of the test's own, for the PKCS#11 keyring (Debian's softhsm2: `make system`).

SoftHSM2 reads its configuration (where tokens live) when a process first loads the module, and
sees the tokens that exist then: the token is initialised before any keyring opens it, and one
configuration serves the whole test process.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

SOFTHSM_MODULE = Path("/usr/lib/softhsm/libsofthsm2.so")
TOKEN_LABEL = "carnet-test"
USER_PIN = "246810"


@dataclass(frozen=True)
class SoftHsmToken:
    module: Path
    label: str
    pin: str


def init_token(folder: Path) -> SoftHsmToken:
    """A fresh token in ``folder``, made the process's SoftHSM2 configuration."""
    util = shutil.which("softhsm2-util")
    if util is None or not SOFTHSM_MODULE.exists():
        raise RuntimeError("SoftHSM2 is not installed: run `make system`")
    tokens = folder / "tokens"
    tokens.mkdir(parents=True)
    conf = folder / "softhsm2.conf"
    conf.write_text(
        f"directories.tokendir = {tokens}\nobjectstore.backend = file\nlog.level = ERROR\n"
    )
    os.environ["SOFTHSM2_CONF"] = str(conf)
    subprocess.run(
        [
            util,
            "--init-token",
            "--free",
            "--label",
            TOKEN_LABEL,
            "--so-pin",
            "13579",
            "--pin",
            USER_PIN,
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )
    return SoftHsmToken(SOFTHSM_MODULE, TOKEN_LABEL, USER_PIN)
