"""How a command is told whom to trust: the log's verifier key, or a c2sp.org/tlog-policy."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from services.cli.output import console, fail
from services.ledger.domain.integrity.checkpoint import CheckpointError, VerifierKey
from services.ledger.domain.integrity.cosignature import Policy, parse_policy
from services.ledger.domain.integrity.verification import Trust


def read_key_argument(value: str) -> VerifierKey:
    path = Path(value)
    text = path.read_text() if path.is_file() else value
    return VerifierKey.parse(text)


def read_trust(key: str | None, policy: Path | None) -> Trust:
    """``--key`` (the log's verifier key) or ``--policy`` (a c2sp.org/tlog-policy file)."""
    if (key is None) == (policy is None):
        raise fail("give the log's verifier key with --key, or a tlog-policy file with --policy")
    try:
        return parse_policy(policy.read_text()) if policy else read_key_argument(str(key))
    except OSError as error:
        raise fail(f"cannot read input: {error}") from error
    except CheckpointError as error:
        raise fail(str(error)) from error


def print_checkpoint_trust(trust: Trust, cosigned_by: Sequence[str]) -> None:
    if isinstance(trust, Policy):
        names = ", ".join(cosigned_by) or "no witness"
        console.print("[green]✓[/] checkpoint signed by a log of the policy")
        console.print(f"[green]✓[/] quorum {trust.quorum!r} met (cosigned by {names})")
    else:
        console.print(f"[green]✓[/] checkpoint signed by {trust.name}")
