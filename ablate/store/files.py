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
OLD = ".old"  # where two renames put the folder they replace: `.<name>.new-*.old`, under its staging folder's lock
TEMPORARY = ".tmp"  # a file being written is `.<name>.*.tmp`, flock-held by its writer until it is renamed


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


def _locked_temporary(path: Path) -> tuple[int, str]:
    """A new temporary file beside `path`, open and flock-held, so that `remove_dead_leftovers` removes it only once
    its writer is dead; made again if that removed it between its making and its lock."""
    while True:
        handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=TEMPORARY)
        with contextlib.suppress(OSError):  # a filesystem without flock: the file is written alike, and never cleaned up
            fcntl.flock(handle, fcntl.LOCK_EX)
        with contextlib.suppress(FileNotFoundError):
            if os.path.samestat(os.fstat(handle), os.stat(temporary)):
                return handle, temporary
        os.close(handle)


def write_atomically(path: Path, data: str | bytes) -> Path:
    """Write `path` through a temporary file in its folder (flock-held while written), synced, then renamed over it;
    returns the path. Raises MachineFailure where the machine refuses (no space, no permission, a name too long)."""
    with machine_failures(path):
        path.parent.mkdir(parents=True, exist_ok=True)
        handle, temporary = _locked_temporary(path)
        try:
            os.fchmod(handle, 0o666 & ~_umask())  # as open() would make it (mkstemp's 0600 would hide runs from a group)
            with os.fdopen(handle, "wb") as stream:  # closed, and its lock let go, only once renamed
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
    (`<folder>.lock`) is held with flock, which the OS drops when the process dies: so what a killed process left beside
    it, and only that, is removed first (`remove_dead_leftovers`)."""
    remove_dead_leftovers(target.parent)
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


def remove_dead_leftovers(parent: Path) -> None:
    """Remove what killed processes left in `parent`, and only that: every staging folder and the folder two renames
    set aside (`.old`) whose lock file no live process holds, and every temporary file its writer no longer holds.
    A set-aside folder whose target is missing (killed between the two renames) is put back, the old folder kept.
    What has no lock file, or whose lock is held, is left as it is."""
    for lock in parent.glob(f".*{STAGED}*{LOCK}"):
        staged, old = Path(str(lock).removesuffix(LOCK)), Path(f"{str(lock).removesuffix(LOCK)}{OLD}")
        target = parent / lock.name[1:].rsplit(STAGED, 1)[0]
        with _holding(lock) as dead, contextlib.suppress(OSError):
            if dead:
                if old.is_dir() and not target.exists():
                    os.rename(old, target)
                shutil.rmtree(staged, ignore_errors=True)
                shutil.rmtree(old, ignore_errors=True)
                lock.unlink()
    for temporary in parent.glob(f".*{TEMPORARY}"):
        with _holding(temporary) as dead, contextlib.suppress(OSError):
            if dead:
                temporary.unlink()


@contextlib.contextmanager
def _holding(path: Path) -> Iterator[bool]:
    """Inside, whether this process holds `path`'s flock: taken only where no other process holds it (a live writer's
    file, or one that is gone, gives False); let go on leaving."""
    handle, held = None, False
    try:
        handle = os.open(path, os.O_RDONLY)
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        held = True
    except OSError:
        pass
    try:
        yield held
    finally:
        if handle is not None:
            os.close(handle)


def replace_folder(staged: Path, target: Path) -> None:
    """Put the folder `staged` (a `staging_folder`, whose lock is held) in `target`'s place in one step (the old
    `target` is then removed): a kill leaves the old folder or the new one. Where the kernel cannot swap two paths, two
    renames, the old folder set aside as `<staged>.old` (a kill between them leaves it, which the next report puts
    back: `remove_dead_leftovers`)."""
    if not target.exists():
        os.rename(staged, target)
        return
    if not _exchange(staged, target):
        old = Path(f"{staged}{OLD}")
        os.rename(target, old)
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
