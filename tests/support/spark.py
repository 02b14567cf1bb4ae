"""The test run's Spark JVM, tuned for small data on two shared cores.

A test's Spark work is a few thousand rows; what costs is the JVM's own start and its JIT compiling
Spark for peak speed. The client compiler alone (no C2 threads), one compiler thread and the serial
collector make the same work take about half the CPU. Applied through ``JAVA_TOOL_OPTIONS`` while
the JVM starts (the launcher JVM of ``spark-submit`` and the driver both read it), so the product's
own session builder is the one under test.

Spark's own settings stay the product's. Measured (CPU-s of the four Spark files together, 52 to
61 for five runs of the defaults on a shared machine, and of the hub's extracts alone): adaptive
execution off, a short UI plan string, code generation off, a given schema for the hub's Parquet
reads, a larger young generation or no bytecode verification changed nothing beyond that noise
(and code generation off would test an execution path the product never runs). What is left is
the JVM's start and Spark warming up (class loading, the client compiler) once per run.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

SMALL_DATA_JVM = "-XX:TieredStopAtLevel=1 -XX:CICompilerCount=1 -XX:+UseSerialGC"


def small_data_jvm_env(env: dict[str, str]) -> dict[str, str]:
    """``env`` for a process that will start a Spark JVM of its own."""
    return env | {"JAVA_TOOL_OPTIONS": SMALL_DATA_JVM}


@contextmanager
def small_data_jvm() -> Iterator[None]:
    """Within this block, a JVM started by this process (Spark's) gets ``SMALL_DATA_JVM``."""
    before = os.environ.get("JAVA_TOOL_OPTIONS")
    os.environ["JAVA_TOOL_OPTIONS"] = SMALL_DATA_JVM
    try:
        yield
    finally:
        if before is None:
            del os.environ["JAVA_TOOL_OPTIONS"]
        else:
            os.environ["JAVA_TOOL_OPTIONS"] = before
