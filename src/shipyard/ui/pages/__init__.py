"""The UI's pages, one module per area; each exports ``ROUTES`` (every one in UI_ROUTES)."""
