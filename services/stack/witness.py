"""One litewitness (filippo.io/torchwood), a real C2SP tlog-witness, for the local stack.

Built once with ``go install`` into a cache outside the checkout, as the Kafka jars are. It
keeps its Ed25519 key in an ssh-agent (Debian's openssh-client) on a socket under its home.
"""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import load_ssh_public_key

from services.ledger.domain.integrity.cosignature import WitnessKey
from services.stack.processes import (
    StackError,
    port_open,
    read_pid,
    require_tool,
    spawn,
    terminate,
    wait_until,
)

TORCHWOOD_VERSION = "v0.6.1"
CONFIG_FILE = "witness.conf"


def witness_binaries(cache_root: Path) -> tuple[Path, Path]:
    """litewitness and witnessctl, built once into ``<cache>/torchwood-<version>/``."""
    bin_dir = cache_root / f"torchwood-{TORCHWOOD_VERSION}"
    binaries = (bin_dir / "litewitness", bin_dir / "witnessctl")
    if all(path.exists() for path in binaries):
        return binaries
    go = require_tool("go", "Install Go 1.22 or newer to build the litewitness witness.")
    bin_dir.mkdir(parents=True, exist_ok=True)
    for command in ("litewitness", "witnessctl"):
        result = subprocess.run(
            [go, "install", f"filippo.io/torchwood/cmd/{command}@{TORCHWOOD_VERSION}"],
            env={**os.environ, "GOBIN": str(bin_dir)},
            capture_output=True,
            text=True,
            check=False,
        )
        if result.returncode != 0:
            raise StackError(f"go install {command} failed: {result.stderr.strip()[-500:]}")
    return binaries


@dataclass(frozen=True)
class LocalWitness:
    home: Path
    port: int
    name: str
    cache_root: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def _agent_socket(self) -> Path:
        return self.home / "agent.sock"

    def _pid_file(self, what: str) -> Path:
        return self.home / f"{what}.pid"

    def key(self) -> WitnessKey:
        public = load_ssh_public_key((self.home / "key.pub").read_bytes())
        assert isinstance(public, Ed25519PublicKey)
        return WitnessKey(self.name, public)

    def config(self) -> str:
        """The ``witnesses`` setting that points the checkpointer at this witness."""
        return f"{self.key()} {self.url}"

    def running(self) -> bool:
        return read_pid(self._pid_file("litewitness")) is not None

    def start(self, log_origin: str, log_verifier_key: str) -> None:
        litewitness, witnessctl = witness_binaries(self.cache_root)
        self.home.mkdir(parents=True, exist_ok=True)
        key_file = self.home / "key"
        if not key_file.exists():
            keygen = require_tool("ssh-keygen", "Install openssh-client for the witness's key.")
            self._run(
                [keygen, "-q", "-t", "ed25519", "-N", "", "-C", self.name, "-f", str(key_file)]
            )
        self._start_agent(key_file)
        database = self.home / "witness.db"
        if not database.exists():
            self._run([str(witnessctl), "add-log", "-db", str(database), "-origin", log_origin])
            self._run(
                [
                    str(witnessctl),
                    "add-key",
                    "-db",
                    str(database),
                    "-origin",
                    log_origin,
                    "-key",
                    log_verifier_key,
                ]
            )
        if not self.running():
            fingerprint = self._run(
                [require_tool("ssh-keygen", ""), "-lf", str(key_file) + ".pub", "-E", "sha256"]
            ).split()[1]
            spawn(
                [
                    str(litewitness),
                    "-db",
                    str(database),
                    "-name",
                    self.name,
                    "-key",
                    fingerprint,
                    "-ssh-agent",
                    str(self._agent_socket),
                    "-listen",
                    f"127.0.0.1:{self.port}",
                ],
                log_file=self.home / "litewitness.log",
                pid_file=self._pid_file("litewitness"),
            )
        wait_until(lambda: port_open(self.port), timeout=30, what="the litewitness witness")
        (self.home / CONFIG_FILE).write_text(self.config() + "\n")

    def _start_agent(self, key_file: Path) -> None:
        if read_pid(self._pid_file("ssh-agent")) is not None and self._agent_socket.exists():
            return
        self._agent_socket.unlink(missing_ok=True)
        agent = require_tool("ssh-agent", "Install openssh-client for the witness's key.")
        spawn(
            [agent, "-D", "-a", str(self._agent_socket)],
            log_file=self.home / "ssh-agent.log",
            pid_file=self._pid_file("ssh-agent"),
        )
        wait_until(self._agent_socket.exists, timeout=10, what="the witness's ssh-agent")
        self._run(
            [require_tool("ssh-add", ""), "-q", str(key_file)],
            env={**os.environ, "SSH_AUTH_SOCK": str(self._agent_socket)},
        )

    def stop(self) -> None:
        for what in ("litewitness", "ssh-agent"):
            pid = read_pid(self._pid_file(what))
            if pid is not None:
                terminate(pid)

    @staticmethod
    def _run(command: list[str], env: dict[str, str] | None = None) -> str:
        result = subprocess.run(command, capture_output=True, text=True, check=False, env=env)
        if result.returncode != 0:
            raise StackError(f"{Path(command[0]).name} failed: {result.stderr.strip()[-500:]}")
        return result.stdout


def local_witness_config(var_dir: Path) -> str:
    """The local stack's witness as a ``witnesses`` setting, or "" when it has none."""
    path = var_dir / "witness" / CONFIG_FILE
    return path.read_text().strip() if path.exists() else ""
