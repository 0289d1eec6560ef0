"""A private PostgreSQL cluster (initdb + pg_ctl) on its own port and socket directory."""

from __future__ import annotations

import os
import pwd
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from services.stack.processes import StackError, port_open, wait_until

_PG_ROOTS = (Path("/usr/lib/postgresql"),)


def postgres_bin_dir() -> Path:
    """The newest installed PostgreSQL server binaries (initdb, pg_ctl)."""
    override = os.environ.get("CUSTODY_PG_BIN")
    if override:
        return Path(override)
    candidates = sorted(
        (path / "bin" for root in _PG_ROOTS if root.is_dir() for path in root.iterdir()),
        key=lambda bin_dir: int(bin_dir.parent.name) if bin_dir.parent.name.isdigit() else 0,
    )
    for bin_dir in reversed(candidates):
        if (bin_dir / "initdb").exists():
            return bin_dir
    raise StackError(
        "PostgreSQL server binaries (initdb, pg_ctl) were not found under /usr/lib/postgresql. "
        "Install them with: apt-get install postgresql-15 (or set CUSTODY_PG_BIN)."
    )


def _service_user() -> str | None:
    """initdb and postgres refuse to run as root: run them as the ``postgres`` user then."""
    if os.geteuid() != 0:
        return None
    try:
        pwd.getpwnam("postgres")
    except KeyError as missing:
        raise StackError(
            "running as root needs the unprivileged 'postgres' user (apt-get install postgresql)"
        ) from missing
    return "postgres"


def reachable_by_postgres(path: Path) -> bool:
    """Whether the unprivileged server user can reach ``path`` (every parent traversable)."""
    user = _service_user()
    if user is None:
        return True
    probe = path if path.exists() else path.parent
    result = subprocess.run(["runuser", "-u", user, "--", "test", "-x", str(probe)], check=False)
    return result.returncode == 0


@dataclass(frozen=True)
class PostgresCluster:
    data_dir: Path
    port: int
    superuser: str = "postgres"

    @property
    def socket_dir(self) -> Path:
        return self.data_dir / "sockets"

    @property
    def log_file(self) -> Path:
        return self.data_dir / "postgres.log"

    def url(self, user: str | None = None, database: str = "custody") -> str:
        return f"postgresql+psycopg://{user or self.superuser}@127.0.0.1:{self.port}/{database}"

    def _run(self, args: Sequence[str], *, check: bool = True) -> subprocess.CompletedProcess[str]:
        user = _service_user()
        command = ["runuser", "-u", user, "--", *args] if user else list(args)
        result = subprocess.run(command, capture_output=True, text=True, check=False)
        if check and result.returncode != 0:
            raise StackError(f"{Path(args[0]).name} failed: {result.stdout}{result.stderr}")
        return result

    def _prepare_dirs(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        user = _service_user()
        if user:
            entry = pwd.getpwnam(user)
            os.chown(self.data_dir, entry.pw_uid, entry.pw_gid)
        self.data_dir.chmod(0o700)
        if not reachable_by_postgres(self.data_dir):
            raise StackError(
                f"the 'postgres' user cannot reach {self.data_dir}: a folder above it is not "
                "traversable. Set CUSTODY_VAR_DIR to a folder outside root's home."
            )

    def initialised(self) -> bool:
        return (self.data_dir / "pgdata" / "PG_VERSION").exists()

    def running(self) -> bool:
        if not self.initialised():
            return False
        bin_dir = postgres_bin_dir()
        result = self._run(
            [str(bin_dir / "pg_ctl"), "status", "-D", str(self.data_dir / "pgdata")], check=False
        )
        return result.returncode == 0

    def start(self, timeout: float = 60.0) -> None:
        """initdb on first use, then start the server (a no-op when it already runs)."""
        bin_dir = postgres_bin_dir()
        pgdata = self.data_dir / "pgdata"
        if not self.initialised():
            self._prepare_dirs()
            self._run(
                [
                    str(bin_dir / "initdb"),
                    "-D",
                    str(pgdata),
                    "-U",
                    self.superuser,
                    "--auth=trust",
                    "--encoding=UTF8",
                    "--locale=C",
                ]
            )
        if self.running():
            return
        self._run(["mkdir", "-p", str(self.socket_dir)])
        options = (
            f"-p {self.port} -k {self.socket_dir} -c listen_addresses=127.0.0.1 "
            "-c fsync=on -c max_connections=200 -c shared_buffers=256MB "
            "-c synchronous_commit=on -c max_wal_size=2GB"
        )
        self._run(
            [
                str(bin_dir / "pg_ctl"),
                "start",
                "-D",
                str(pgdata),
                "-l",
                str(self.log_file),
                "-o",
                options,
                "-w",
                "-t",
                str(int(timeout)),
            ]
        )
        wait_until(lambda: port_open(self.port), timeout=timeout, what="PostgreSQL port")
        self._ensure_database()

    def _ensure_database(self) -> None:
        exists = self._psql("-tAc", "SELECT 1 FROM pg_database WHERE datname = 'custody'")
        if exists != "1":
            self._psql("-c", "CREATE DATABASE custody")

    def _psql(self, *arguments: str) -> str:
        psql = postgres_bin_dir() / "psql"
        connection = [
            "-h",
            "127.0.0.1",
            "-p",
            str(self.port),
            "-U",
            self.superuser,
            "-d",
            "postgres",
        ]
        return self._run([str(psql), *connection, *arguments]).stdout.strip()

    def stop(self, mode: str = "fast") -> None:
        if not self.running():
            return
        bin_dir = postgres_bin_dir()
        self._run(
            [str(bin_dir / "pg_ctl"), "stop", "-D", str(self.data_dir / "pgdata"), "-m", mode, "-w"]
        )
