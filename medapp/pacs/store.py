"""C-STORE of datasets we made (the report as Encapsulated PDF and as SR) to a node, with one outcome per object.

Why per-object outcomes instead of one exception: the PDF may be accepted while the SR is refused (many PACS do not
take every SR class); the user must see which one landed. A failure to connect or to associate is still one
`PacsError` for the whole call.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from medapp.pacs.association import associate, make_ae, status_text
from medapp.pacs.errors import PacsError
from medapp.pacs.nodes import LocalAE, Node

__all__ = ["StoreOutcome", "store_datasets"]

_CLASS_NAMES = {
    "1.2.840.10008.5.1.4.1.1.104.1": "Encapsulated PDF",
    "1.2.840.10008.5.1.4.1.1.88.11": "Basic Text SR",
    "1.2.840.10008.5.1.4.1.1.88.22": "Enhanced SR",
    "1.2.840.10008.5.1.4.1.1.88.33": "Comprehensive SR",
}


@dataclass(frozen=True)
class StoreOutcome:
    """One object's fate: `ok` also for warning statuses (the PACS kept it, perhaps coerced)."""

    sop_class: str
    sop_uid: str
    ok: bool
    message: str

    @property
    def kind(self) -> str:
        return _CLASS_NAMES.get(self.sop_class, self.sop_class)

    def __str__(self) -> str:
        return f"{self.kind} {self.sop_uid}: {self.message}"


def store_datasets(local: LocalAE, node: Node, datasets: list[Any]) -> list[StoreOutcome]:
    """Send each dataset (with its file meta) on one association; returns one outcome per dataset, in order."""
    from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian

    if not datasets:
        return []
    ae = make_ae(local)
    for sop_class in dict.fromkeys(str(ds.SOPClassUID) for ds in datasets):
        syntaxes = [ExplicitVRLittleEndian, ImplicitVRLittleEndian]
        ae.add_requested_context(sop_class, syntaxes)
    outcomes: list[StoreOutcome] = []
    with associate(ae, node, what="storing") as assoc:
        for ds in datasets:
            sop_class, sop_uid = str(ds.SOPClassUID), str(ds.SOPInstanceUID)
            if not assoc.is_established:
                outcomes.append(StoreOutcome(sop_class, sop_uid, False, "not sent: the association was lost"))
                continue
            try:
                status = assoc.send_c_store(ds)
            except (ValueError, AttributeError, RuntimeError) as exc:  # no accepted context, unencodable dataset
                outcomes.append(StoreOutcome(sop_class, sop_uid, False, f"not sent: {exc}"))
                continue
            if not status:
                outcomes.append(StoreOutcome(sop_class, sop_uid, False,
                                             "no answer: the connection was lost or timed out"))
                continue
            code = int(status.Status)
            if code == 0x0000:
                outcomes.append(StoreOutcome(sop_class, sop_uid, True, "stored"))
            elif code in (0x0001, 0x0107, 0x0116) or 0xB000 <= code <= 0xBFFF:
                outcomes.append(StoreOutcome(sop_class, sop_uid, True, f"stored with a warning, {status_text(status)}"))
            else:
                outcomes.append(StoreOutcome(sop_class, sop_uid, False, f"refused, {status_text(status)}"))
    if not outcomes:
        raise PacsError(f"{node}: nothing was stored")
    return outcomes
