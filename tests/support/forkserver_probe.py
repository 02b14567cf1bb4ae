"""Run by tests/support/test_forkserver.py in a forked child: prints what the child sees."""

from __future__ import annotations

import os
import sys
import time

if __name__ == "__main__":
    if sys.argv[1:] == ["sleep"]:
        time.sleep(600)
    print("argv", *sys.argv[1:])
    print("env", *sorted(os.environ))
    print("cwd", os.getcwd())
    print("pid", os.getpid())
    print("to stderr", file=sys.stderr)
    sys.exit(3)
