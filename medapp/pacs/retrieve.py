"""Retrieve a study (or some of its series) into the `StudyCache`, by C-GET or by C-MOVE to our own storage SCP.

How a partial retrieve is completed rather than repeated: first an instance-level C-FIND lists what the study
holds; the cache says what it already has (verified by size and SHA-256); only the missing instances are asked for
(a whole series at SERIES level, a partly cached one by its SOP Instance UIDs at IMAGE level). The C-STORE handler
accepts only instances of the requested study with valid UIDs and writes each through the cache (temp file,
rename, index). At the end the cache is compared with the list again: anything still missing is a `PacsError`
that says how much arrived and that running the command again fetches the rest.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from medapp.pacs.association import associate, lost, make_ae, require_service, status_text
from medapp.pacs.cache import StudyCache
from medapp.pacs.contexts import DOCUMENT_CLASSES, STORAGE_CLASSES, TRANSFER_SYNTAXES
from medapp.pacs.errors import PacsError, RetrieveCancelled
from medapp.pacs.nodes import LocalAE, Node, route_address
from medapp.pacs.query import InstanceMatch, find_instances, find_series, is_uid

__all__ = ["RetrieveResult", "retrieve_study", "ProgressFn"]

GET_MODEL = "1.2.840.10008.5.1.4.1.2.2.3"  # Study Root Query/Retrieve Information Model - GET
MOVE_MODEL = "1.2.840.10008.5.1.4.1.2.2.2"  # Study Root Query/Retrieve Information Model - MOVE
_MAX_UIDS_PER_REQUEST = 200  # keeps an IMAGE-level request far below any PDU / identifier limit

ProgressFn = Callable[[int, int], None]  # (instances in the cache, instances in the study)


@dataclass
class RetrieveResult:
    """What a retrieve did: the study's folder, how many instances were expected / received now / already cached."""

    study_uid: str
    folder: Path
    method: str
    expected: int = 0
    received: int = 0
    already: int = 0
    series_uids: list[str] = field(default_factory=list)
    received_uids: list[str] = field(default_factory=list)
    files: list[Path] = field(default_factory=list)


class _Receiver:
    """The C-STORE handler of one retrieve: checks each instance and writes it through the cache."""

    def __init__(self, cache: StudyCache, total: int, progress: ProgressFn | None,
                 cancel: threading.Event | None) -> None:
        self.cache = cache
        self.total = total
        self.progress = progress
        self.cancel = cancel
        self.received: list[str] = []
        self.errors: list[str] = []
        self.refused = 0

    def __call__(self, event: Any) -> int:
        if self.cancel is not None and self.cancel.is_set():
            return 0xA700  # Refused: out of resources (the retrieve is being cancelled)
        try:
            sop_uid = str(event.request.AffectedSOPInstanceUID)
            sop_class = str(event.request.AffectedSOPClassUID)
            ds = event.dataset
            study_uid = str(ds.get("StudyInstanceUID", ""))
            series_uid = str(ds.get("SeriesInstanceUID", ""))
            if study_uid != self.cache.study_uid or str(ds.get("SOPInstanceUID", "")) != sop_uid:
                self.refused += 1
                return 0xA900  # Error: data set does not match (not the study we asked for)
            if not (is_uid(sop_uid) and is_uid(series_uid)):
                self.refused += 1
                return 0xA900
            data = event.encoded_dataset(include_meta=True)
            if self.cache.put(series_uid, sop_uid, sop_class, data):
                self.received.append(sop_uid)
        except PacsError as exc:
            self.errors.append(str(exc))
            return 0xA700
        except Exception as exc:  # noqa: BLE001 — a bad instance is counted and reported, never a crash
            self.errors.append(f"an instance could not be read ({type(exc).__name__})")
            return 0xC000
        if self.progress is not None:
            self.progress(len(self.cache.entries), self.total)
        return 0x0000


def _plan(local: LocalAE, node: Node, study_uid: str, series_uids: list[str] | None,
          cancel: threading.Event | None) -> dict[str, InstanceMatch]:
    """Every instance the retrieve must end with (instance-level C-FIND per series)."""
    if series_uids:
        for uid in series_uids:
            if not is_uid(uid):
                raise PacsError(f"--series: {uid!r} is not a DICOM UID")
        wanted_series = list(dict.fromkeys(series_uids))
    else:
        wanted_series = [s.series_uid for s in find_series(local, node, study_uid, cancel=cancel)]
        if not wanted_series:
            raise PacsError(f"{node}: the PACS has no study {study_uid} (or it holds no series)")
    plan: dict[str, InstanceMatch] = {}
    for series_uid in wanted_series:
        instances = find_instances(local, node, study_uid, series_uid, cancel=cancel)
        if not instances and series_uids:
            raise PacsError(f"{node}: the study {study_uid} has no series {series_uid}")
        for inst in instances:
            plan[inst.sop_uid] = inst
    return plan


def _requests(plan: dict[str, InstanceMatch], cache: StudyCache) -> list[Any]:
    """Identifiers for the missing instances: whole series where nothing is cached, else UID lists."""
    from pydicom.dataset import Dataset

    by_series: dict[str, list[InstanceMatch]] = {}
    for inst in plan.values():
        by_series.setdefault(inst.series_uid, []).append(inst)
    out = []
    for series_uid, instances in by_series.items():
        missing = [i.sop_uid for i in instances if not cache.has(i.sop_uid)]
        if not missing:
            continue
        if len(missing) == len(instances):
            ds = Dataset()
            ds.QueryRetrieveLevel = "SERIES"
            ds.StudyInstanceUID = cache.study_uid
            ds.SeriesInstanceUID = series_uid
            out.append(ds)
            continue
        for start in range(0, len(missing), _MAX_UIDS_PER_REQUEST):
            ds = Dataset()
            ds.QueryRetrieveLevel = "IMAGE"
            ds.StudyInstanceUID = cache.study_uid
            ds.SeriesInstanceUID = series_uid
            ds.SOPInstanceUID = missing[start:start + _MAX_UIDS_PER_REQUEST]
            out.append(ds)
    return out


def _check_responses(responses: Any, assoc: Any, node: Node, receiver: _Receiver,
                     cancel: threading.Event | None) -> None:
    """Walk the C-GET / C-MOVE responses; a lost association, a failure status or a cancel raises."""
    last = time.monotonic()
    for status, _identifier in responses:
        if cancel is not None and cancel.is_set():
            assoc.abort()
            raise RetrieveCancelled(f"retrieve cancelled; {len(receiver.cache.entries)} instances are in the cache "
                                    "and a new retrieve fetches only the rest")
        if not status:
            raise PacsError(f"{lost(assoc, node, 'the retrieve', last)}; {len(receiver.cache.entries)} of "
                            f"{receiver.total} instances are in the cache, complete — run the same retrieve again to "
                            "fetch the rest")
        last = time.monotonic()
        code = int(status.Status)
        if code in (0xFF00, 0xFF01, 0x0000):
            continue
        if code in (0xB000,):  # warning: some sub-operations failed; the final check names what is missing
            continue
        if code == 0xFE00:
            raise RetrieveCancelled(f"{node}: the PACS cancelled the retrieve")
        hint = " — the PACS does not know medapp's AE title as a move destination" if code == 0xA801 else ""
        raise PacsError(f"{node}: the retrieve failed with {status_text(status)}{hint}")


def _storage_contexts(ae: Any, *, scp_role: bool) -> list[Any]:
    """Request (C-GET, with the SCP role) or support (C-MOVE storage SCP) our storage classes."""
    from pynetdicom import build_role

    roles = []
    for uid in STORAGE_CLASSES + DOCUMENT_CLASSES:
        if scp_role:
            ae.add_requested_context(uid, TRANSFER_SYNTAXES)
            roles.append(build_role(uid, scp_role=True))
        else:
            ae.add_supported_context(uid, TRANSFER_SYNTAXES)
    return roles


def retrieve_study(
    local: LocalAE,
    node: Node,
    study_uid: str,
    root: str | Path,
    *,
    series_uids: list[str] | None = None,
    progress: ProgressFn | None = None,
    cancel: threading.Event | None = None,
) -> RetrieveResult:
    """Bring `study_uid` (or only `series_uids`) into ``root/<study_uid>`` by the node's retrieve method.

    Idempotent: instances already in the cache are neither asked for nor written again.
    """
    if not is_uid(study_uid):
        raise PacsError(f"study UID: {study_uid!r} is not a DICOM UID")
    plan = _plan(local, node, study_uid, series_uids, cancel)
    with StudyCache(root, study_uid).open() as cache:
        already = sum(1 for uid in plan if cache.has(uid))
        receiver = _Receiver(cache, len(plan), progress, cancel)
        if progress is not None:
            progress(already, len(plan))
        requests = _requests(plan, cache)
        if requests:
            if node.retrieve == "move":
                _move(local, node, requests, receiver, cancel)
            else:
                _get(local, node, requests, receiver, cancel)
        missing = [uid for uid in plan if not cache.has(uid)]
        if missing:
            why = f" ({receiver.errors[0]})" if receiver.errors else ""
            refused = f"; {receiver.refused} instances of other studies were refused" if receiver.refused else ""
            raise PacsError(f"{node}: {len(missing)} of {len(plan)} instances did not arrive{why}{refused}; the "
                            "cache holds the rest, complete — run the same retrieve again to fetch what is missing")
        series = list(dict.fromkeys(i.series_uid for i in plan.values()))
        files = [cache.path_for(plan[uid].series_uid, uid) for uid in plan]
        return RetrieveResult(study_uid, cache.folder, node.retrieve, len(plan), len(receiver.received), already,
                              series, list(receiver.received), files)


def _get(local: LocalAE, node: Node, requests: list[Any], receiver: _Receiver,
         cancel: threading.Event | None) -> None:
    from pynetdicom import evt

    ae = make_ae(local)
    ae.add_requested_context(GET_MODEL)
    roles = _storage_contexts(ae, scp_role=True)
    handlers = [(evt.EVT_C_STORE, receiver)]
    with associate(ae, node, ext_neg=roles, evt_handlers=handlers, what="a retrieve (C-GET)") as assoc:
        require_service(assoc, node, GET_MODEL, "C-GET",
                        "; set \"retrieve\": \"move\" for this node in the settings, or use --retrieve move")
        for ident in requests:
            _check_responses(assoc.send_c_get(ident, GET_MODEL), assoc, node, receiver, cancel)
            if not assoc.is_established:
                raise PacsError(f"{node}: the PACS closed the association during the retrieve; "
                                f"{len(receiver.cache.entries)} of {receiver.total} instances are in the cache, "
                                "complete — run the same retrieve again to fetch the rest")


def _move(local: LocalAE, node: Node, requests: list[Any], receiver: _Receiver,
          cancel: threading.Event | None) -> None:
    """C-MOVE: the PACS opens its own association to our storage SCP, which runs only for this retrieve and
    accepts only the node's AE title."""
    from pynetdicom import evt

    scp_ae = make_ae(local)
    _storage_contexts(scp_ae, scp_role=False)
    scp_ae.require_calling_aet = [node.ae_title]
    address = local.listen_address or route_address(node.host, node.port)
    try:
        server = scp_ae.start_server((address, local.port), block=False, evt_handlers=[(evt.EVT_C_STORE, receiver)])
    except OSError as exc:
        raise PacsError(f"cannot listen on {address}:{local.port} for the C-MOVE ({exc.strerror or exc}); "
                        "set pacs_port to a free port the PACS knows for medapp") from exc
    try:
        ae = make_ae(local)
        ae.add_requested_context(MOVE_MODEL)
        with associate(ae, node, what="a retrieve (C-MOVE)") as assoc:
            require_service(assoc, node, MOVE_MODEL, "C-MOVE", "; use C-GET (--retrieve get)")
            for ident in requests:
                _check_responses(assoc.send_c_move(ident, local.ae_title, MOVE_MODEL), assoc, node, receiver, cancel)
                if not assoc.is_established:
                    raise PacsError(f"{node}: the PACS closed the association during the retrieve; "
                                    f"{len(receiver.cache.entries)} of {receiver.total} instances are in the cache")
    finally:
        server.shutdown()
