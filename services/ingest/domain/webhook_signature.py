"""The Standard Webhooks check of a plant's request (docs/architecture.md §5).

1. ``webhook-id``, ``webhook-timestamp`` and ``webhook-signature`` present and well formed, else
   ``Malformed`` naming the header (no credential could be checked).
2. ``webhook-timestamp`` within ±5 minutes of now, else ``Unauthenticated`` "too old" / "too new".
3. The body signed by a current secret of the plant, verified by the ``standardwebhooks``
   reference library with each secret that is valid now (two during a rotation's grace period),
   else ``Unauthenticated``. A party with no secrets (unknown, or not a plant) gets exactly the
   answer a wrong secret gets: an unauthenticated caller does not learn which plants exist.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

from services.ingest.domain.errors import Malformed, Unauthenticated

#: Standard Webhooks' tolerance, also the one the reference library applies.
TOLERANCE = timedelta(minutes=5)
ID_HEADER = "webhook-id"
TIMESTAMP_HEADER = "webhook-timestamp"
SIGNATURE_HEADER = "webhook-signature"
MAX_SIGNATURES = 16

WEBHOOK_ID = re.compile(r"^[\x21-\x7e]{1,256}$")
UNIX_SECONDS = re.compile(r"^(?:0|[1-9][0-9]{0,11})$")
#: What a refused sender is told to authenticate with.
CHALLENGE = 'Webhook realm="custody-plants"'
NO_MATCHING_SIGNATURE = "the webhook-signature matches no current webhook secret of this plant"


@dataclass(frozen=True, slots=True)
class WebhookHeaders:
    webhook_id: str
    timestamp: int
    signature: str

    def as_dict(self) -> dict[str, str]:
        return {
            ID_HEADER: self.webhook_id,
            TIMESTAMP_HEADER: str(self.timestamp),
            SIGNATURE_HEADER: self.signature,
        }


def _malformed(header: str, detail: str) -> Malformed:
    return Malformed("Malformed webhook header", f"{header}: {detail}")


def _unauthenticated(detail: str) -> Unauthenticated:
    return Unauthenticated(detail, challenge=CHALLENGE)


def read_headers(headers: Mapping[str, str], now: datetime) -> WebhookHeaders:
    """Presence and form of the three headers (Malformed), then the ±5 min tolerance."""
    found = {name.lower(): value.strip() for name, value in headers.items()}
    missing = [
        name for name in (ID_HEADER, TIMESTAMP_HEADER, SIGNATURE_HEADER) if not found.get(name)
    ]
    if missing:
        raise Malformed(
            "Missing webhook header",
            f"missing header{'s' if len(missing) > 1 else ''} {', '.join(missing)} "
            "(Standard Webhooks needs webhook-id, webhook-timestamp and webhook-signature)",
        )
    webhook_id = found[ID_HEADER]
    if not WEBHOOK_ID.match(webhook_id):
        raise _malformed(ID_HEADER, "must be 1–256 visible ASCII characters")
    stamp = found[TIMESTAMP_HEADER]
    if not UNIX_SECONDS.match(stamp):
        raise _malformed(TIMESTAMP_HEADER, f"{stamp[:40]!r} is not integer Unix seconds")
    signatures = found[SIGNATURE_HEADER].split()
    if len(signatures) > MAX_SIGNATURES:
        raise _malformed(SIGNATURE_HEADER, f"more than {MAX_SIGNATURES} signatures")
    for item in signatures:
        version, comma, value = item.partition(",")
        if not comma or not version or not value or "," in value:
            raise _malformed(SIGNATURE_HEADER, "each signature must be '<version>,<base64>'")
        if version == "v1":
            try:
                base64.b64decode(value, validate=True)
            except binascii.Error as error:
                raise _malformed(
                    SIGNATURE_HEADER, f"v1 signature is not base64: {error}"
                ) from error

    timestamp = int(stamp)
    offset = timestamp - now.timestamp()
    limit = TOLERANCE.total_seconds()
    if offset < -limit:
        raise _unauthenticated(
            f"webhook-timestamp is too old: signed {-offset:.0f} s ago, "
            f"the tolerance is ±{limit:.0f} s"
        )
    if offset > limit:
        raise _unauthenticated(
            f"webhook-timestamp is too new: {offset:.0f} s in the future, "
            f"the tolerance is ±{limit:.0f} s"
        )
    return WebhookHeaders(webhook_id, timestamp, " ".join(signatures))


def verify_signature(body: bytes, headers: WebhookHeaders, secrets: Sequence[str]) -> None:
    """Return if the reference library verifies the body with any of ``secrets``.

    ``read_headers`` has checked the tolerance against the same clock the library reads, so a
    library refusal means no signature matched (at the very edge of the window it may also be
    the library's own timestamp check; the answer is the same generic refusal either way, which
    also keeps an unknown plant indistinguishable from a wrong secret).
    """
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as error:
        raise Malformed("Malformed body", f"the body is not UTF-8: {error}") from error
    signed = headers.as_dict()
    for secret in secrets:
        try:
            Webhook(secret).verify(text, signed, json_parse=False)
        except WebhookVerificationError:
            continue
        return
    raise _unauthenticated(NO_MATCHING_SIGNATURE)
