"""Small Qt helpers shared by the panels and dialogs (image conversion, error dialogs, AI-output badges)."""
