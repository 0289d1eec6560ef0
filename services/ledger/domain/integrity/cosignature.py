"""Witness cosignatures (c2sp.org/tlog-cosignature, Ed25519 ``cosignature/v1``) and the
c2sp.org/tlog-policy files that say whose cosignatures make a checkpoint trusted. Pure.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import struct
from collections.abc import Iterator
from dataclasses import dataclass, field

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from services.ledger.domain.integrity.checkpoint import (
    Checkpoint,
    CheckpointError,
    VerifierKey,
    parse_vkey,
    raw_public,
    verify_signed_note,
)

COSIGNATURE_TYPE = b"\x04"
_PREFIX = "\u2014 "


def cosigner_key_id(name: str, public_key: Ed25519PublicKey) -> bytes:
    return hashlib.sha256(
        name.encode() + b"\n" + COSIGNATURE_TYPE + raw_public(public_key)
    ).digest()[:4]


@dataclass(frozen=True, slots=True)
class WitnessKey:
    name: str
    public_key: Ed25519PublicKey

    @property
    def key_id(self) -> bytes:
        return cosigner_key_id(self.name, self.public_key)

    def __str__(self) -> str:
        encoded = base64.b64encode(COSIGNATURE_TYPE + raw_public(self.public_key)).decode()
        return f"{self.name}+{self.key_id.hex()}+{encoded}"

    @classmethod
    def parse(cls, text: str) -> WitnessKey:
        name, public_key = parse_vkey(text, COSIGNATURE_TYPE, cosigner_key_id)
        return cls(name, public_key)


def _message(body: str, timestamp: int) -> bytes:
    return f"cosignature/v1\ntime {timestamp}\n{body}".encode()


def note_body(note: str) -> str:
    body, separator, _ = note.partition("\n\n")
    if not separator:
        raise CheckpointError("signed note has no blank line before its signatures")
    return body + "\n"


def signature_lines(note: str) -> Iterator[tuple[str, str]]:
    """(key name, line) for every signature line of a note."""
    for line in note.partition("\n\n")[2].split("\n"):
        if line.startswith(_PREFIX):
            yield line[len(_PREFIX) :].rpartition(" ")[0], line


def cosign(body: str, key: WitnessKey, private_key: Ed25519PrivateKey, timestamp: int) -> str:
    """A cosignature line over a checkpoint body (what a witness answers)."""
    signature = private_key.sign(_message(body, timestamp))
    raw = key.key_id + struct.pack(">Q", timestamp) + signature
    return f"{_PREFIX}{key.name} {base64.b64encode(raw).decode()}"


def verify_cosignature(body: str, line: str, key: WitnessKey) -> int:
    """The cosignature's timestamp if ``line`` is a valid cosignature by ``key`` on ``body``."""
    if not line.startswith(f"{_PREFIX}{key.name} "):
        raise CheckpointError(f"not a signature line by {key.name}")
    try:
        raw = base64.b64decode(line.rpartition(" ")[2], validate=True)
    except binascii.Error as error:
        raise CheckpointError(f"cosignature by {key.name} is not base64") from error
    if len(raw) != 4 + 8 + 64 or raw[:4] != key.key_id:
        raise CheckpointError(f"signature line by {key.name} is not a cosignature of this key")
    (timestamp,) = struct.unpack(">Q", raw[4:12])
    if timestamp >= 2**63:
        raise CheckpointError(f"cosignature by {key.name} has an invalid timestamp")
    try:
        key.public_key.verify(raw[12:], _message(body, timestamp))
    except InvalidSignature as error:
        raise CheckpointError(f"cosignature by {key.name} does not verify") from error
    return int(timestamp)


def cosigned_by(note: str, key: WitnessKey) -> int | None:
    """The timestamp of ``key``'s valid cosignature on the note, or None."""
    body = note_body(note)
    for name, line in signature_lines(note):
        if name != key.name:
            continue
        try:
            return verify_cosignature(body, line, key)
        except CheckpointError:
            continue
    return None


# --- c2sp.org/tlog-policy ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Witness:
    name: str
    key: WitnessKey
    url: str | None = None


@dataclass(frozen=True, slots=True)
class Group:
    name: str
    threshold: int
    members: tuple[str, ...]


@dataclass
class Policy:
    logs: list[VerifierKey] = field(default_factory=list)
    witnesses: dict[str, Witness] = field(default_factory=dict)
    groups: dict[str, Group] = field(default_factory=dict)
    quorum: str = "none"

    def verify(self, note: str) -> tuple[Checkpoint, list[str]]:
        """The checkpoint if a listed log signed it and the quorum cosigned it; the witnesses."""
        problems = []
        checkpoint = None
        for log in self.logs:
            try:
                checkpoint = verify_signed_note(note, log)
                break
            except CheckpointError as error:
                problems.append(str(error))
        if checkpoint is None:
            raise CheckpointError(
                "checkpoint is signed by no log of the policy: " + "; ".join(problems)
            )
        cosigned = sorted(
            name for name, witness in self.witnesses.items() if cosigned_by(note, witness.key)
        )
        if not self._satisfied(self.quorum, set(cosigned)):
            raise CheckpointError(
                f"checkpoint lacks the policy's quorum {self.quorum!r}: "
                f"cosigned by {', '.join(cosigned) or 'no witness of the policy'}"
            )
        return checkpoint, cosigned

    def _satisfied(self, name: str, cosigned: set[str]) -> bool:
        if name == "none":
            return True
        if name in self.witnesses:
            return name in cosigned
        group = self.groups[name]
        return sum(self._satisfied(member, cosigned) for member in group.members) >= group.threshold


def parse_policy(text: str) -> Policy:
    policy = Policy()
    names: set[str] = {"none"}
    quorum = None
    for number, raw_line in enumerate(text.split("\n"), start=1):
        words = raw_line.replace("\t", " ").split()
        if not words or words[0].startswith("#"):
            continue
        where = f"policy line {number}"
        keyword, arguments = words[0], words[1:]
        if keyword == "log" and len(arguments) in (1, 2):
            key = VerifierKey.parse(arguments[0])
            if any(raw_public(key.public_key) == raw_public(log.public_key) for log in policy.logs):
                raise CheckpointError(f"{where}: duplicate log key")
            policy.logs.append(key)
        elif keyword == "witness" and len(arguments) in (2, 3):
            name = arguments[0]
            if name in names:
                raise CheckpointError(f"{where}: name {name!r} is defined twice")
            witness_key = WitnessKey.parse(arguments[1])
            url = arguments[2] if len(arguments) == 3 else None
            policy.witnesses[name] = Witness(name, witness_key, url)
            names.add(name)
        elif keyword == "group" and len(arguments) >= 3:
            name, threshold_text, members = arguments[0], arguments[1], tuple(arguments[2:])
            if name in names:
                raise CheckpointError(f"{where}: name {name!r} is defined twice")
            unknown = [member for member in members if member not in names or member == "none"]
            if unknown or len(set(members)) != len(members):
                raise CheckpointError(f"{where}: members must be distinct names defined above")
            if threshold_text == "all":
                threshold = len(members)
            elif threshold_text == "any":
                threshold = 1
            elif threshold_text.isdigit() and 1 <= int(threshold_text) <= len(members):
                threshold = int(threshold_text)
            else:
                raise CheckpointError(f"{where}: threshold must be all, any or 1..{len(members)}")
            policy.groups[name] = Group(name, threshold, members)
            names.add(name)
        elif keyword == "quorum" and len(arguments) == 1:
            if quorum is not None:
                raise CheckpointError(f"{where}: a policy has exactly one quorum line")
            if arguments[0] not in names:
                raise CheckpointError(f"{where}: quorum {arguments[0]!r} is not defined above")
            quorum = arguments[0]
        else:
            raise CheckpointError(f"{where}: not a log, witness, group or quorum line")
    if quorum is None:
        raise CheckpointError("the policy has no quorum line")
    policy.quorum = quorum
    return policy
