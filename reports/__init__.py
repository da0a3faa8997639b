"""Report documents, PDF and DICOM Encapsulated PDF output, caption tables. No torch, no Qt."""
