"""The metadata database and the artifact blob store; nothing here knows about ML."""
