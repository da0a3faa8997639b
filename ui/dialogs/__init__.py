"""Dialogs: batch captioning (`BatchCaptionDialog`) and settings (`SettingsDialog`)."""
