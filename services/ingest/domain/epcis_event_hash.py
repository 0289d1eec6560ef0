"""The CBV 2.0 event hash ID (``ni:///sha-256;…?ver=CBV2.0``) of EPCIS events without an eventID.

Computed by GS1's reference implementation (``epcis-event-hash-generator``), checked in the tests
against its published vectors. Pure: the JSON-LD contexts it needs ship with the package.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from typing import Any

from epcis_event_hash_generator.hash_generator import epcis_hashes_from_events
from epcis_event_hash_generator.json_to_py import event_list_from_epcis_document_json


def event_hash_ids(context: Any, events: Sequence[Mapping[str, Any]]) -> list[str]:
    """The hash ID of each event, as if it stood alone in a document with ``context``.

    The events are copied whole: the generator rewrites the documents it reads in place
    (JSON-LD term expansion of nested ``type`` values: ``Mass`` becomes
    ``https://gs1.org/voc/Mass``), and the caller's must stay as they were posted.
    """
    if not events:
        return []
    document = {
        "@context": copy.deepcopy(context),
        "type": "EPCISDocument",
        "schemaVersion": "2.0",
        "creationDate": "2000-01-01T00:00:00Z",
        "epcisBody": {"eventList": [copy.deepcopy(dict(event)) for event in events]},
    }
    hashes: list[str] = epcis_hashes_from_events(event_list_from_epcis_document_json(document))
    return hashes
