"""Report documents, PDF and DICOM Encapsulated PDF output, caption tables. No torch, no Qt.

Importing this package is light (dataclasses only); reportlab and pydicom load inside the modules that render.
Public entry points:

* :class:`Report` (+ :class:`Section`, :class:`KeyImage`, :class:`Provenance`, :class:`Signature`,
  :class:`Identifiers`) — the document, ``sign()``, ``to_dict()``/``from_dict()``.
* :func:`reports.templates.template_for`, :func:`reports.parse.parse_sections`.
* :func:`reports.pdf.render_report_pdf`, :func:`reports.dicom_pdf.encapsulated_pdf` /
  :func:`reports.dicom_pdf.write_report_dicom`.
* :class:`reports.captions.CaptionWriter`, :func:`reports.contact_sheet.render_contact_sheet`.
* :func:`reports.atomic.atomic_write_bytes`, :func:`reports.atomic.atomic_writer`.
"""

from reports.errors import ReportError, SignedReportError
from reports.model import Amendment, Identifiers, KeyImage, Provenance, Report, Section, Signature

__all__ = [
    "ReportError",
    "SignedReportError",
    "Report",
    "Section",
    "KeyImage",
    "Provenance",
    "Signature",
    "Identifiers",
    "Amendment",
]
