"""A brand-new, throwaway PostgreSQL cluster for the test session.

Usage::

    with ThrowawayPostgres() as pg:
        engine = create_engine(pg.url)
        other_url = pg.create_database("other")

The cluster lives in a private temporary directory, listens only on 127.0.0.1 on a free
TCP port (its unix socket is kept inside the temporary directory), trusts every local
connection and trades durability for speed (fsync, synchronous_commit and
full_page_writes are off). Leaving the ``with`` block shuts the server down immediately
and deletes the directory. Any failure raises ``RuntimeError`` carrying the server log
tail: the tests never silently skip.

When the current user is root the server programs run as the ``postgres`` OS user
(PostgreSQL refuses to run as root); otherwise they run as the current user.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import glob
import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import TracebackType
from typing import IO, Any, Self

import psycopg
from psycopg import sql

SUPERUSER = "carnet"
DEFAULT_DATABASE = "carnet"
HOST = "127.0.0.1"
STARTUP_TIMEOUT = 30.0
SHUTDOWN_TIMEOUT = 10.0
PORT_ATTEMPTS = 3
LOG_TAIL_LINES = 40
_SERVER_OS_USER = "postgres"


def find_bindir() -> Path:
    """Directory holding ``initdb`` and ``postgres``.

    Order: ``$CARNET_PG_BINDIR``, ``pg_config --bindir``, then the highest-version
    ``/usr/lib/postgresql/*/bin``.
    """
    candidates: list[Path] = []
    override = os.environ.get("CARNET_PG_BINDIR")
    if override:
        candidates.append(Path(override))
    pg_config = shutil.which("pg_config")
    if pg_config:
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            out = subprocess.run(
                [pg_config, "--bindir"], capture_output=True, text=True, timeout=10, check=True
            ).stdout.strip()
            if out:
                candidates.append(Path(out))
    debian = [Path(p) for p in glob.glob("/usr/lib/postgresql/*/bin")]
    candidates.extend(sorted(debian, key=_version_key, reverse=True))
    for candidate in candidates:
        if _is_server_bindir(candidate):
            return candidate
    raise RuntimeError(
        "PostgreSQL server binaries (initdb, postgres) not found; "
        "run scripts/ensure-postgres.sh or set CARNET_PG_BINDIR"
    )


def _version_key(bindir: Path) -> tuple[int, ...]:
    return tuple(int(part) for part in re.findall(r"\d+", bindir.parent.name)) or (0,)


def _is_server_bindir(bindir: Path) -> bool:
    return all(os.access(bindir / name, os.X_OK) for name in ("initdb", "postgres"))


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


def _die_with_parent(parent: int) -> None:
    """``preexec_fn``: have Linux send SIGQUIT (immediate shutdown) to the postmaster
    if the spawning test process dies without cleaning up, so no server is orphaned.

    Linux ties this to the spawning *thread*: start the cluster from a thread that
    outlives it (pytest fixtures run in the main thread).
    """
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGQUIT, 0, 0, 0)
    if os.getppid() != parent:  # the parent already died before prctl took effect
        os._exit(1)


_PR_SET_PDEATHSIG = 1


def _tail(path: Path, lines: int = LOG_TAIL_LINES) -> str:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        return f"(no server log at {path}: {exc})"
    return "\n".join(text.splitlines()[-lines:]) or "(server log is empty)"


class ThrowawayPostgres:
    """Context manager running a fresh PostgreSQL cluster in a temporary directory."""

    def __init__(self, *, bindir: Path | None = None) -> None:
        self._bindir_override = bindir
        self.bindir: Path | None = None
        self.port: int | None = None
        self.tmpdir: Path | None = None
        self.startup_seconds: float | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None
        self._run_as: pwd.struct_passwd | None = None

    # -- public API -------------------------------------------------------------------

    @property
    def datadir(self) -> Path:
        return self._require_tmpdir() / "data"

    @property
    def socket_dir(self) -> Path:
        return self._require_tmpdir() / "sock"

    @property
    def log_path(self) -> Path:
        return self._require_tmpdir() / "server.log"

    @property
    def url(self) -> str:
        """SQLAlchemy URL of the ``carnet`` database."""
        return self.url_for(DEFAULT_DATABASE)

    def url_for(self, database: str) -> str:
        if self.port is None:
            raise RuntimeError("ThrowawayPostgres is not running")
        return f"postgresql+psycopg://{SUPERUSER}@{HOST}:{self.port}/{database}"

    def create_database(self, name: str, *, template: str | None = None) -> str:
        """Create an extra database (empty, or a copy of database ``template``) and return its
        SQLAlchemy URL."""
        statement = sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name))
        if template is not None:
            statement += sql.SQL(" TEMPLATE {}").format(sql.Identifier(template))
        try:
            with self._connect("postgres") as conn:
                conn.execute(statement)
        except psycopg.Error as exc:
            raise RuntimeError(f"could not create database {name!r}: {exc}") from exc
        return self.url_for(name)

    def start(self) -> None:
        began = time.monotonic()
        try:
            self._start()
        except BaseException as exc:
            tail = _tail(self.log_path) if self.tmpdir is not None else ""
            self.stop()
            if isinstance(exc, RuntimeError) or not isinstance(exc, Exception):
                raise
            raise RuntimeError(
                f"throwaway PostgreSQL failed to start: {exc!r}\n--- server log ---\n{tail}"
            ) from exc
        self.startup_seconds = time.monotonic() - began

    def stop(self) -> None:
        """Shut the server down (immediate mode) and delete the temporary directory."""
        try:
            self._stop_server()
        finally:
            if self._log is not None:
                self._log.close()
                self._log = None
            if self.tmpdir is not None:
                shutil.rmtree(self.tmpdir, ignore_errors=True)
                if self.tmpdir.exists():
                    shutil.rmtree(self.tmpdir)  # second try, letting the error surface
                self.tmpdir = None
            self.port = None

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- internals --------------------------------------------------------------------

    def _require_tmpdir(self) -> Path:
        if self.tmpdir is None:
            raise RuntimeError("ThrowawayPostgres has no temporary directory yet")
        return self.tmpdir

    def _start(self) -> None:
        self.bindir = self._bindir_override or find_bindir()
        if not _is_server_bindir(self.bindir):
            raise RuntimeError(f"no executable initdb and postgres in {self.bindir}")
        if os.geteuid() == 0:
            try:
                self._run_as = pwd.getpwnam(_SERVER_OS_USER)
            except KeyError:
                raise RuntimeError(
                    f"running as root but there is no {_SERVER_OS_USER!r} OS user to run "
                    "PostgreSQL as (install Debian's postgresql package)"
                ) from None
        self.tmpdir = Path(tempfile.mkdtemp(prefix="carnet-pg-"))
        self._own(self.tmpdir)
        self.tmpdir.chmod(0o700)
        self.socket_dir.mkdir(mode=0o700)
        self._own(self.socket_dir)
        self._initdb()
        self._log = self.log_path.open("ab")
        self._own(self.log_path)

        for attempt in range(1, PORT_ATTEMPTS + 1):
            self.port = _free_port()
            self._write_config()
            self._spawn_server()
            if self._wait_ready():
                break
            # The server died: retry on another port only if the port was snatched.
            if attempt == PORT_ATTEMPTS or "could not bind" not in _tail(self.log_path, 10):
                raise RuntimeError(
                    f"throwaway PostgreSQL did not start (exit code "
                    f"{self._proc.returncode if self._proc else None})\n"
                    f"--- server log ({self.log_path}) ---\n{_tail(self.log_path)}"
                )
            self._proc = None
        self.create_database(DEFAULT_DATABASE)

    def _own(self, path: Path) -> None:
        if self._run_as is not None:
            os.chown(path, self._run_as.pw_uid, self._run_as.pw_gid)

    def _run_kwargs(self) -> dict[str, Any]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
        env["LC_ALL"] = "C"
        kwargs: dict[str, Any] = {"cwd": self._require_tmpdir(), "env": env}
        if self._run_as is not None:
            env["HOME"] = self._run_as.pw_dir
            env["USER"] = env["LOGNAME"] = self._run_as.pw_name
            kwargs.update(user=self._run_as.pw_uid, group=self._run_as.pw_gid, extra_groups=[])
        return kwargs

    def _initdb(self) -> None:
        assert self.bindir is not None
        base = [
            str(self.bindir / "initdb"),
            "-D",
            str(self.datadir),
            "-A",
            "trust",
            "-U",
            SUPERUSER,
            "--encoding=UTF8",
            "--no-sync",
        ]
        outputs: list[str] = []
        for locale in ("C.UTF-8", "C"):
            result = subprocess.run(
                [*base, f"--locale={locale}"],
                capture_output=True,
                text=True,
                timeout=120,
                check=False,
                **self._run_kwargs(),
            )
            if result.returncode == 0:
                return
            outputs.append(
                f"[--locale={locale}] exit {result.returncode}\n{result.stdout}{result.stderr}"
            )
            shutil.rmtree(self.datadir, ignore_errors=True)
        raise RuntimeError("initdb failed:\n" + "\n".join(outputs))

    def _write_config(self) -> None:
        settings = {
            "listen_addresses": HOST,
            "port": str(self.port),
            "unix_socket_directories": str(self.socket_dir),
            "fsync": "off",
            "synchronous_commit": "off",
            "full_page_writes": "off",
            "max_connections": "100",
            "shared_buffers": "32MB",
            "max_wal_size": "1GB",
            "log_min_messages": "warning",
            "log_line_prefix": "%m [%p] ",
        }
        lines = "".join(f"{key} = '{value}'\n" for key, value in settings.items())
        conf = self.datadir / "carnet-throwaway.conf"
        conf.write_text(lines, encoding="utf-8")
        self._own(conf)
        main_conf = self.datadir / "postgresql.conf"
        include = "include = 'carnet-throwaway.conf'\n"
        text = main_conf.read_text(encoding="utf-8")
        if include not in text:
            main_conf.write_text(text + "\n" + include, encoding="utf-8")

    def _spawn_server(self) -> None:
        assert self.bindir is not None
        assert self._log is not None
        self._proc = subprocess.Popen(
            [str(self.bindir / "postgres"), "-D", str(self.datadir)],
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # a Ctrl-C in the terminal must not reach the server
            preexec_fn=functools.partial(_die_with_parent, os.getpid())
            if sys.platform == "linux"
            else None,
            **self._run_kwargs(),
        )

    def _connect(self, dbname: str) -> psycopg.Connection[Any]:
        return psycopg.connect(
            host=HOST,
            port=self.port,
            user=SUPERUSER,
            dbname=dbname,
            connect_timeout=2,
            autocommit=True,
        )

    def _wait_ready(self) -> bool:
        """True once the server accepts connections; False if it exited early."""
        assert self._proc is not None
        deadline = time.monotonic() + STARTUP_TIMEOUT
        last_error: Exception | None = None
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                return False
            try:
                with self._connect("postgres") as conn:
                    conn.execute("SELECT 1")
                return True
            except psycopg.OperationalError as exc:
                last_error = exc
            time.sleep(0.05)
        raise RuntimeError(
            f"throwaway PostgreSQL did not accept connections within {STARTUP_TIMEOUT:.0f} s "
            f"(last error: {last_error})\n--- server log ({self.log_path}) ---\n"
            f"{_tail(self.log_path)}"
        )

    def _stop_server(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGQUIT)  # "immediate" shutdown
            try:
                proc.wait(timeout=SHUTDOWN_TIMEOUT)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)  # postmaster and its children
                proc.wait(timeout=SHUTDOWN_TIMEOUT)
