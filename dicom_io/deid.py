"""De-identification for anything exported: DICOM PS3.15 Annex E, Basic Application Level Confidentiality Profile.

Which library, and why: the attribute table (PS3.15 Table E.1-1, ~650 attributes with their D/Z/X/U/... actions)
comes from `dicom-anonymizer` (KitwareMedical, BSD-3, maintained; its 2026c table tracks the current standard).
We do *not* use its `anonymize_dataset` function, because (checked in 2.1.0): its UID map is one module-global
dictionary (two exports in one process would share UIDs, and the map is never reset), it applies the table to
top-level elements only (UIDs and names inside sequences such as Referenced Image Sequence stay), and it neither
sets Patient Identity Removed nor the De-identification Method Code Sequence. `deid` is recipe-based and
self-described "best effort"; `dicognito` randomises values per run but is a CLI-first tool; `idiscore` is GPLv3.
So: the standard's table as data from dicom-anonymizer, the (small) application logic here.

Choices within the profile (PS3.15 E.1.1):
- X removes; Z empties; D puts a dummy of the right VR; U replaces a UID with a new one, the same new UID for the
  same old UID within one `Deidentifier` (one export run), so series and references stay linked.
- The compound codes are resolved without knowing each IOD's attribute types: X/Z -> Z, X/D, Z/D, X/Z/D -> D,
  X/Z/U* -> U for UIDs, cleaned items for sequences. This keeps Type 1/2 attributes present, never less safe.
- Every sequence that is kept is cleaned recursively (the table applies at every nesting level).
- Private attributes are removed (no Retain Safe Private option); group 0002 AE titles are removed.
- Dates are replaced, not shifted, so (0028,0303) Longitudinal Temporal Information Modified = "REMOVED".
- (0012,0062) Patient Identity Removed = "YES", (0012,0063) De-identification Method, and (0012,0064)
  De-identification Method Code Sequence = (113100, DCM, "Basic Application Confidentiality Profile").
- Pixel data is untouched (Clean Pixel Data is a separate option): `warnings` says when burned-in text is likely.
"""

from __future__ import annotations

import copy
import io
import os
import tempfile
from pathlib import Path
from typing import Any

from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence
from pydicom.tag import Tag
from pydicom.uid import generate_uid

from dicom_io.guard import guard
from dicom_io.pixels import check_pixel_budget, is_image_object, pixel_keyword
from dicom_io.reading import read_dicom

METHOD = "PS3.15 Basic Application Level Confidentiality Profile"  # LO: at most 64 characters
PROFILE_CODE = ("113100", "DCM", "Basic Application Confidentiality Profile")

_DUMMY_TEXT = "ANONYMIZED"
_DUMMIES: dict[str, Any] = {
    "DA": "19000101", "DT": "19000101000000", "TM": "000000", "AS": "000Y", "DS": "0", "IS": "0",
    "US": 0, "SS": 0, "UL": 0, "SL": 0, "UV": 0, "SV": 0, "FL": 0.0, "FD": 0.0,
    "OB": b"\x00\x00", "OW": b"\x00\x00", "OD": b"", "OF": b"", "OL": b"", "OV": b"", "UN": b"\x00\x00",
    "UR": "http://anonymized.invalid", "AT": None,
}  # fmt: skip

# Table action codes -> our resolved action (see the module docstring).
_RESOLVED = {"D": "D", "Z": "Z", "X": "X", "U": "U", "Z_D": "D", "X_Z": "Z", "X_D": "D", "X_Z_D": "D", "X_Z_U_STAR": "U"}


def _load_table() -> tuple[dict[int, str], list[tuple[int, int, int, int, str]]]:
    """PS3.15 Table E.1-1 as {tag: action} plus masked repeating-group entries, from dicom-anonymizer's data."""
    from dicomanonymizer.dicom_anonymization_databases import dicomfields_2026c as table

    exact: dict[int, str] = {}
    masked: list[tuple[int, int, int, int, str]] = []
    for code, action in _RESOLVED.items():
        for entry in getattr(table, f"{code}_TAGS"):
            if len(entry) == 2:
                exact[int(Tag(entry[0], entry[1]))] = action
            else:
                group, elem, gmask, emask = entry
                masked.append((group, elem, gmask, emask, action))
    return exact, masked


_EXACT, _MASKED = _load_table()


def action_for(tag: int) -> str | None:
    """The resolved profile action for `tag`, or None (keep)."""
    hit = _EXACT.get(int(tag))
    if hit is not None:
        return hit
    group, elem = tag >> 16, tag & 0xFFFF
    for g, e, gm, em, action in _MASKED:
        if group & gm == g & gm and elem & em == e & em:
            return action
    return None


class Deidentifier:
    """One export run. UIDs are remapped consistently for every dataset this instance processes."""

    def __init__(self) -> None:
        self._uids: dict[str, str] = {}
        self.warnings: list[str] = []

    def remap_uid(self, uid: str) -> str:
        """The new UID for `uid` (random 2.25 UID, generated once per old UID in this run)."""
        old = str(uid).strip()
        if not old:
            return old
        if old not in self._uids:
            self._uids[old] = generate_uid(prefix=None)
        return self._uids[old]

    def _dummy(self, elem: DataElement) -> Any:
        if elem.VR == "UI":
            return self._uid_value(elem.value)
        if elem.VR in _DUMMIES:
            return _DUMMIES[elem.VR]
        return _DUMMY_TEXT

    def _uid_value(self, value: Any) -> Any:
        if value is None or value == "":
            return value
        if isinstance(value, str):
            return self.remap_uid(value)
        return [self.remap_uid(v) for v in value]

    def _clean(self, ds: Dataset) -> None:
        for elem in list(ds):
            tag = int(elem.tag)
            if elem.tag.is_private:
                del ds[elem.tag]
                continue
            action = action_for(tag)
            if action == "X":
                del ds[elem.tag]
            elif action == "Z":
                if elem.VR == "SQ":
                    elem.value = Sequence([])
                else:
                    elem.value = None if elem.VR not in ("OB", "OW", "UN") else b""
            elif action == "D":
                if elem.VR == "SQ":
                    for item in elem.value:
                        self._clean(item)
                else:
                    value = self._dummy(elem)
                    if value is None:
                        del ds[elem.tag]
                    else:
                        elem.value = value
            elif action == "U":
                if elem.VR == "SQ":
                    for item in elem.value:
                        self._clean(item)
                elif elem.VR == "UI":
                    elem.value = self._uid_value(elem.value)
                else:
                    elem.value = None
            elif elem.VR == "SQ":
                for item in elem.value:
                    self._clean(item)

    def apply(self, ds: Dataset, source: str | Path | None = None) -> Dataset:
        """A de-identified copy of `ds` (the original is not modified).

        `source` names the file in `warnings` (default: the file pydicom read `ds` from, if any): a run over a
        folder must say *which* images may carry burned-in text, or the user cannot check them.
        """
        out = copy.deepcopy(ds)
        self._clean(out)
        meta = getattr(out, "file_meta", None)
        if meta is not None:
            for keyword in ("SourceApplicationEntityTitle", "SendingApplicationEntityTitle",
                            "ReceivingApplicationEntityTitle", "PrivateInformationCreatorUID", "PrivateInformation"):  # fmt: skip
                if keyword in meta:
                    del meta[keyword]
            if "SOPInstanceUID" in out:
                meta.MediaStorageSOPInstanceUID = out.SOPInstanceUID
            elif "MediaStorageSOPInstanceUID" in meta:
                meta.MediaStorageSOPInstanceUID = self.remap_uid(meta.MediaStorageSOPInstanceUID)
        out.PatientIdentityRemoved = "YES"
        out.DeidentificationMethod = METHOD
        code = Dataset()
        code.CodeValue, code.CodingSchemeDesignator, code.CodeMeaning = PROFILE_CODE
        out.DeidentificationMethodCodeSequence = Sequence([code])
        out.LongitudinalTemporalInformationModified = "REMOVED"
        if str(ds.get("BurnedInAnnotation", "")).upper() == "YES" or str(ds.get("Modality", "")) in ("US", "SC", "XC", "ES"):
            name = source if source is not None else getattr(ds, "filename", None)
            where = f"{name}: " if isinstance(name, str | Path) and str(name) else ""
            self.warnings.append(f"{where}pixel data may contain burned-in identifying text; it is not cleaned")
        return out


def deidentify_bytes(src: str | Path, deidentifier: Deidentifier | None = None) -> bytes:
    """The de-identified copy of DICOM file `src` as Part 10 bytes, nothing written.

    A broken source is refused with `CorruptFileError` rather than exported: a truncated file (header or pixel
    data cut short, an image object whose pixel data is missing) would otherwise leave as a "good" copy. Pixel data
    is checked against its header (`check_pixel_budget`) without decoding it. The app writes these bytes itself
    (`reports.atomic`, after its output guard and audit entry), which dicom_io cannot import.
    """
    src = Path(src)
    ds = read_dicom(src)
    if pixel_keyword(ds) is not None or is_image_object(ds):
        with guard(src, "checking pixel data"):
            check_pixel_budget(ds, src)
    out = (deidentifier or Deidentifier()).apply(ds, source=src)
    buf = io.BytesIO()
    with guard(src, "encoding the de-identified copy"):
        out.save_as(buf, enforce_file_format=True)
    return buf.getvalue()


def deidentify_file(src: str | Path, dst: str | Path, deidentifier: Deidentifier | None = None) -> Path:
    """Write a de-identified copy of DICOM file `src` to `dst` (atomically: a temp file, then rename).

    A library convenience; it neither refuses `dst` aliasing `src` nor audits — `medapp deid` does both and writes
    `deidentify_bytes` itself. See `deidentify_bytes` for what is refused.
    """
    src, dst = Path(src), Path(dst)
    data = deidentify_bytes(src, deidentifier)
    dst.parent.mkdir(parents=True, exist_ok=True)
    with guard(dst, "writing de-identified copy"):
        fd, tmp = tempfile.mkstemp(dir=dst.parent, suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
            os.replace(tmp, dst)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
    return dst


__all__: list[str] = ["Deidentifier", "action_for", "deidentify_bytes", "deidentify_file"]
