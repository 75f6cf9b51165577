"""The ``shipyard`` command."""
