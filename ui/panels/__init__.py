"""Docked panels that talk to the model: chat (`ChatPanel`) and report (`ReportPanel`)."""
