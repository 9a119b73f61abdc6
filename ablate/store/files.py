"""Writing files and folders so that a kill leaves the old one or the new one, never a part or a mix: the one way
ablate writes anything, runs (ablate/store/results.py) and reports (ablate/report/summary.py) alike."""

from __future__ import annotations

import contextlib
import ctypes
import errno
import fcntl
import os
import shutil
import tempfile
from pathlib import Path
from typing import Iterator

# What a write fails with when the machine, not the configuration, is at fault: no space or quota, no permission,
# a read-only filesystem, a name too long. Such a run is no result: it stays unfinished, to train again once fixed.
MACHINE_ERRORS = {errno.ENOSPC, errno.EDQUOT, errno.EACCES, errno.EPERM, errno.EROFS, errno.ENAMETOOLONG}
RENAME_EXCHANGE = 2  # renameat2(2)'s flag: swap two paths in one step (Linux 3.15)
AT_FDCWD = -100
STAGED, LOCK = ".new-", ".lock"  # a staging folder is `.<name>.new-*`, its lock file `.<name>.new-*.lock`


class MachineFailure(BaseException):
    """A write the machine refused (see MACHINE_ERRORS). A BaseException, like a stop signal, so that training's
    fallback for a failed seed never stores it as that seed's result; the command ends with its one line."""

    def __init__(self, path: Path, error: OSError) -> None:
        super().__init__(f"{path.parent}: cannot write {path.name} ({error.strerror or error})")
        self.path, self.error = path, error


def _umask() -> int:
    """The process's umask (reading it means setting it, so it is set straight back)."""
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def machine_failures(path: Path) -> Iterator[None]:
    """Inside, an OSError the machine causes (MACHINE_ERRORS) while writing `path` becomes a MachineFailure."""
    try:
        yield
    except OSError as error:
        if error.errno in MACHINE_ERRORS:
            raise MachineFailure(path, error) from error
        raise


def write_atomically(path: Path, data: str | bytes) -> Path:
    """Write `path` through a temporary file in its folder, synced, then renamed over it; returns the path. Raises
    MachineFailure where the machine refuses (no space, no permission, a name too long)."""
    with machine_failures(path):
        path.parent.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        try:
            os.fchmod(handle, 0o666 & ~_umask())  # as open() would make it (mkstemp's 0600 would hide runs from a group)
            with os.fdopen(handle, "wb") as stream:
                stream.write(data.encode() if isinstance(data, str) else data)
                stream.flush()
                os.fsync(stream.fileno())
            os.replace(temporary, path)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise
    return path


@contextlib.contextmanager
def staging_folder(target: Path) -> Iterator[Path]:
    """A new empty hidden folder `.<name>.new-*` beside `target` (same filesystem, so it renames), to build its next
    version in; removed on leaving unless `replace_folder` put it in place. While it is in use its lock file
    (`<folder>.lock`) is held with flock, which the OS drops when the process dies: so the staging folders a killed
    process left, and only those, are removed first (`remove_dead_staging`)."""
    remove_dead_staging(target.parent)
    with machine_failures(target):
        target.parent.mkdir(parents=True, exist_ok=True)
        handle, lock = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}{STAGED}", suffix=LOCK)
    staged = Path(lock.removesuffix(LOCK))
    try:
        fcntl.flock(handle, fcntl.LOCK_EX)
        with machine_failures(target):
            staged.mkdir(mode=0o777)  # as mkdir makes any folder (umask applied), so a group can read the report
        yield staged
    finally:
        shutil.rmtree(staged, ignore_errors=True)
        os.unlink(lock)
        os.close(handle)


def remove_dead_staging(parent: Path) -> None:
    """Remove every staging folder in `parent` whose lock file no live process holds (its maker was killed); a folder
    without a lock file, or one whose lock is held, is left as it is."""
    for lock in parent.glob(f".*{STAGED}*{LOCK}"):
        with contextlib.suppress(OSError):
            handle = os.open(lock, os.O_RDWR)
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                shutil.rmtree(Path(str(lock).removesuffix(LOCK)), ignore_errors=True)
                lock.unlink()
            finally:
                os.close(handle)


def replace_folder(staged: Path, target: Path) -> None:
    """Put the folder `staged` in `target`'s place in one step (the old `target` is then removed): a kill leaves the
    old folder or the new one. Where the kernel cannot swap two paths, two renames (a kill between them leaves the
    old folder beside, as `.<name>.new-*`)."""
    if not target.exists():
        os.rename(staged, target)
        return
    if not _exchange(staged, target):
        old = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}.old-"))
        os.rename(target, old / target.name)
        os.rename(staged, target)
        staged = old
    shutil.rmtree(staged)


def _exchange(first: Path, second: Path) -> bool:
    """Swap two paths with renameat2(RENAME_EXCHANGE); False where the C library or the filesystem cannot."""
    renameat2 = getattr(ctypes.CDLL(None, use_errno=True), "renameat2", None)
    if renameat2 is None:
        return False
    if renameat2(AT_FDCWD, os.fsencode(first), AT_FDCWD, os.fsencode(second), RENAME_EXCHANGE) == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP):
        return False
    raise OSError(code, os.strerror(code), str(second))
