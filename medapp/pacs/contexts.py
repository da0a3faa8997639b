"""The SOP classes and transfer syntaxes medapp proposes, so a PACS can send what it has without transcoding.

An association carries at most 128 presentation contexts; C-GET needs one per storage SOP class we accept (with
the SCP role), so the list is the imaging classes a radiology or pathology report is written about plus the
documents we store ourselves, each with the uncompressed and the common compressed transfer syntaxes.
"""

from __future__ import annotations

__all__ = ["STORAGE_CLASSES", "TRANSFER_SYNTAXES", "DOCUMENT_CLASSES"]

# Uncompressed first (every PACS has them), then the compressed syntaxes dicom_io can decode.
TRANSFER_SYNTAXES = [
    "1.2.840.10008.1.2.1",  # Explicit VR Little Endian
    "1.2.840.10008.1.2",  # Implicit VR Little Endian
    "1.2.840.10008.1.2.4.70",  # JPEG Lossless SV1
    "1.2.840.10008.1.2.4.50",  # JPEG Baseline
    "1.2.840.10008.1.2.4.51",  # JPEG Extended
    "1.2.840.10008.1.2.4.57",  # JPEG Lossless
    "1.2.840.10008.1.2.4.90",  # JPEG 2000 Lossless
    "1.2.840.10008.1.2.4.91",  # JPEG 2000
    "1.2.840.10008.1.2.4.80",  # JPEG-LS Lossless
    "1.2.840.10008.1.2.4.81",  # JPEG-LS Near-lossless
    "1.2.840.10008.1.2.5",  # RLE Lossless
    "1.2.840.10008.1.2.1.99",  # Deflated Explicit VR Little Endian
]

STORAGE_CLASSES = [
    "1.2.840.10008.5.1.4.1.1.1",  # CR
    "1.2.840.10008.5.1.4.1.1.1.1",  # DX presentation
    "1.2.840.10008.5.1.4.1.1.1.1.1",  # DX processing
    "1.2.840.10008.5.1.4.1.1.1.2",  # MG presentation
    "1.2.840.10008.5.1.4.1.1.1.2.1",  # MG processing
    "1.2.840.10008.5.1.4.1.1.2",  # CT
    "1.2.840.10008.5.1.4.1.1.2.1",  # Enhanced CT
    "1.2.840.10008.5.1.4.1.1.3.1",  # US multi-frame
    "1.2.840.10008.5.1.4.1.1.4",  # MR
    "1.2.840.10008.5.1.4.1.1.4.1",  # Enhanced MR
    "1.2.840.10008.5.1.4.1.1.6.1",  # US
    "1.2.840.10008.5.1.4.1.1.7",  # Secondary Capture
    "1.2.840.10008.5.1.4.1.1.7.2",  # Multi-frame grayscale byte SC
    "1.2.840.10008.5.1.4.1.1.7.3",  # Multi-frame grayscale word SC
    "1.2.840.10008.5.1.4.1.1.7.4",  # Multi-frame true colour SC
    "1.2.840.10008.5.1.4.1.1.12.1",  # XA
    "1.2.840.10008.5.1.4.1.1.12.2",  # RF
    "1.2.840.10008.5.1.4.1.1.13.1.3",  # Breast tomosynthesis
    "1.2.840.10008.5.1.4.1.1.20",  # NM
    "1.2.840.10008.5.1.4.1.1.128",  # PET
    "1.2.840.10008.5.1.4.1.1.130",  # Enhanced PET
    "1.2.840.10008.5.1.4.1.1.77.1.6",  # VL Whole Slide Microscopy
    "1.2.840.10008.5.1.4.1.1.77.1.2",  # VL Microscopic
    "1.2.840.10008.5.1.4.1.1.77.1.3",  # VL Slide-Coordinates Microscopic
    "1.2.840.10008.5.1.4.1.1.77.1.4",  # VL Photographic
    "1.2.840.10008.5.1.4.1.1.66.4",  # Segmentation
    "1.2.840.10008.5.1.4.1.1.11.1",  # Grayscale softcopy presentation state
    "1.2.840.10008.5.1.4.1.1.88.59",  # Key Object Selection
]
DOCUMENT_CLASSES = [
    "1.2.840.10008.5.1.4.1.1.104.1",  # Encapsulated PDF
    "1.2.840.10008.5.1.4.1.1.88.11",  # Basic Text SR
    "1.2.840.10008.5.1.4.1.1.88.22",  # Enhanced SR
    "1.2.840.10008.5.1.4.1.1.88.33",  # Comprehensive SR
]
