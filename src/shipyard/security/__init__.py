"""Security: identities, API tokens, roles, the one permission table, audit, encryption."""
