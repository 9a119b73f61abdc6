"""Content fingerprints of the files a run reads (images, weights): what identity holds instead of their paths.

A file's SHA-256 is remembered per process by its path, size and modification time, so a big folder is read once
however many variants a plan holds; a folder's fingerprint hashes its files' names, sizes and hashes.
"""

from __future__ import annotations

import functools
import hashlib
import json
from pathlib import Path


def sha256_of(path: Path) -> str:
    """Hex SHA-256 of a file's bytes."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


@functools.lru_cache(maxsize=None)
def _remembered(path: str, size: int, modified_ns: int) -> str:
    return sha256_of(Path(path))


def file_digest(path: Path) -> str:
    """A file's SHA-256, read again only when its size or modification time changed."""
    stat = path.stat()
    return _remembered(str(path.resolve()), stat.st_size, stat.st_mtime_ns)


def folder_digest(folder: Path) -> str:
    """SHA-256 of every file under `folder` (hidden ones aside): relative names, sizes and content hashes; the same
    files elsewhere give the same digest, one changed image another."""
    files = sorted(p for p in folder.rglob("*") if p.is_file() and not any(part.startswith(".") for part in p.relative_to(folder).parts))
    listing = [(p.relative_to(folder).as_posix(), p.stat().st_size, file_digest(p)) for p in files]
    return hashlib.sha256(json.dumps(listing).encode()).hexdigest()
