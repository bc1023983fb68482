"""Files holding personal data are readable by Relais' own user only.

The embedded SQLite database holds names, addresses and birth dates: it must not be
readable by every local user, as the process umask (often 022) would make it.
"""

from __future__ import annotations

import os
from pathlib import Path

PRIVATE_DIRECTORY_MODE = 0o700
PRIVATE_FILE_MODE = 0o600


def private_sqlite_file(path: Path) -> None:
    """Create ``path``'s directory 0700 and ``path`` 0600 before SQLite opens it.

    SQLite gives its ``-wal`` and ``-shm`` files the database file's permissions, so they
    are 0600 too. An existing database (and its WAL and SHM) is tightened to 0600; an
    existing directory is left as it is (it may be shared with other software).
    """
    path.parent.mkdir(mode=PRIVATE_DIRECTORY_MODE, parents=True, exist_ok=True)
    # No O_EXCL: an existing database is kept, only its mode changes.
    os.close(os.open(path, os.O_CREAT | os.O_RDWR, PRIVATE_FILE_MODE))
    for companion in (path, path.with_name(f"{path.name}-wal"), path.with_name(f"{path.name}-shm")):
        if companion.exists():
            companion.chmod(PRIVATE_FILE_MODE)
