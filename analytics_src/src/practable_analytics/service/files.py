"""Files the service rewrites while it runs (the status file, the metrics textfile)."""

import os
import tempfile
from pathlib import Path


def replace_file(path: Path, data: bytes) -> None:
    """Replace path with data in one rename (never a partial file): a temporary file in the same
    directory, flushed, mode 0644 (other users' readers: node_exporter, `status`), then renamed."""
    directory = str(path.parent) if str(path.parent) else "."
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
        os.chmod(tmp, 0o644)
        os.replace(tmp, str(path))
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
