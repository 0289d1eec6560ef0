"""The c2sp.org/tlog-proof@v1 text form of an inclusion proof (docs/verifiable-log.md).

``extra`` carries the entry ``E`` itself (the canonical JSON whose leaf hash is
SHA-256(0x00 ‖ E)), so that one file proves one entry offline.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass

TLOG_PROOF_HEADER = "c2sp.org/tlog-proof@v1"


class TlogProofError(ValueError):
    """Not a well-formed tlog-proof."""


@dataclass(frozen=True, slots=True)
class TlogProof:
    index: int
    proof: tuple[bytes, ...]
    checkpoint: str
    extra: bytes | None = None

    def text(self) -> str:
        lines = [TLOG_PROOF_HEADER]
        if self.extra is not None:
            lines.append("extra " + base64.b64encode(self.extra).decode())
        lines.append(f"index {self.index}")
        lines += [base64.b64encode(item).decode() for item in self.proof]
        return "\n".join(lines) + "\n\n" + self.checkpoint


def parse_tlog_proof(text: str) -> TlogProof:
    head, separator, checkpoint = text.partition("\n\n")
    if not separator:
        raise TlogProofError("tlog-proof has no blank line before its checkpoint")
    lines = head.split("\n")
    if lines[0] != TLOG_PROOF_HEADER:
        raise TlogProofError(f"tlog-proof must start with {TLOG_PROOF_HEADER!r}")
    rest = lines[1:]
    extra = None
    if rest and rest[0].startswith("extra "):
        extra = _base64(rest.pop(0)[len("extra ") :], "extra data")
    if not rest or not rest[0].startswith("index "):
        raise TlogProofError("tlog-proof has no 'index' line")
    index_text = rest.pop(0)[len("index ") :]
    if not index_text.isdigit() or (index_text != "0" and index_text.startswith("0")):
        raise TlogProofError(f"tlog-proof index is not a decimal number: {index_text!r}")
    proof = []
    for number, line in enumerate(rest, start=1):
        digest = _base64(line, f"inclusion proof line {number}")
        if len(digest) != 32:
            raise TlogProofError(f"inclusion proof line {number} is not a 32-byte hash")
        proof.append(digest)
    return TlogProof(int(index_text), tuple(proof), checkpoint, extra)


def _base64(text: str, what: str) -> bytes:
    try:
        return base64.b64decode(text, validate=True)
    except binascii.Error as error:
        raise TlogProofError(f"{what} is not base64") from error
