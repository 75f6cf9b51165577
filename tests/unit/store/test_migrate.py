"""The schema check on open: Alembic only when an upgrade is due, and the head it would find."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import sqlalchemy as sa
from alembic.config import Config
from alembic.script import ScriptDirectory

from shipyard.store import migrate


def test_the_head_read_from_file_names_is_alembics_head() -> None:
    """``versions/NNNN_*.py`` holds revision NNNN after NNNN-1, as head_revision assumes."""
    config = Config()
    config.set_main_option("script_location", str(migrate._MIGRATIONS_DIR))
    scripts = ScriptDirectory.from_config(config)
    assert migrate.head_revision() == scripts.get_current_head()
    for script in scripts.walk_revisions():
        assert Path(script.path).name.startswith(f"{script.revision}_")
        if script.down_revision is not None:
            assert int(script.revision) == int(str(script.down_revision)) + 1


def test_a_store_at_head_opens_without_importing_alembic(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'store.db'}"
    engine = sa.create_engine(url)
    assert migrate.current_revision(engine) is None
    assert migrate.upgrade_to_head(engine) is True
    assert migrate.current_revision(engine) == migrate.head_revision()
    assert migrate.upgrade_to_head(engine) is False
    engine.dispose()
    code = (
        "import sys, sqlalchemy as sa; from shipyard.store import migrate; "
        f"assert not migrate.upgrade_to_head(sa.create_engine({url!r})); "
        "print('alembic' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
