"""The results store: the only code that writes or reads runs/.

Layout: runs/<study>/<variant>/seed=<s>/{config.yaml, history.csv, model.pt, metrics.json}. A run is finished
when, and only when, its metrics.json is a whole record; it is written last, atomically (ablate/store/files.py).
One that exists but cannot be read makes the run damaged, not missing: `set_aside` moves its files into
seed=<s>/damaged-<UTC time>/ before it trains again. model.pt holds the final state_dict of a run that ended ok.
"""

from __future__ import annotations

import copy
import csv
import errno
import fcntl
import functools
import io
import itertools
import json
import os
import subprocess
import sys
import tempfile
import urllib.parse
import zipfile
from datetime import datetime, timezone
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Callable, Iterable, Optional

import yaml
from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException

from ablate.config import AblateConfig, ConfigError, flatten_config, plain, typed
from ablate.store import files

if TYPE_CHECKING:  # torch and pandas are imported where they compute: planning needs neither, a report no torch
    import pandas as pd
    import torch

METRICS_FILE, HISTORY_FILE, CONFIG_FILE, MODEL_FILE = "metrics.json", "history.csv", "config.yaml", "model.pt"
LOCK_FILE = ".lock"


def run_dir(runs_dir: str | Path, study: str, variant: str, seed: int) -> Path:
    """Folder of one run; the names come from the study, the variant's override and the seed, never a timestamp."""
    return seed_folder(Path(runs_dir) / study / variant_folder(variant), seed)


def variant_folder(variant: str) -> str:
    """A variant's folder name: its name with `/` (a path in a value, model.weights=runs/x) written %2F and `%` as %25,
    so every variant is one folder beside the others; the real value stays in its metrics.json."""
    return variant.replace("%", "%25").replace("/", "%2F")


def variant_of(folder: Path) -> str:
    """The variant name a variant folder holds (the inverse of `variant_folder`)."""
    return urllib.parse.unquote(folder.name)


def seed_folder(variant_dir: str | Path, seed: int) -> Path:
    """The run of `seed` inside a variant's folder."""
    return Path(variant_dir) / f"seed={seed}"


STATUSES = ("ok", "failed", "diverged")  # what a whole metrics.json says of its run
DAMAGED_PREFIX = "damaged-"  # damaged-<UTC time>/ in a run folder: files of a damaged run, moved aside by `set_aside`


class DamagedRun(ValueError):
    """A run file that cannot be read back: `reason` names the file and what is wrong ('config.yaml is missing')."""

    def __init__(self, folder: Path, reason: str) -> None:
        super().__init__(f"{folder}/{reason}")
        self.folder, self.reason = folder, reason


def _record(path: Path) -> tuple[Optional[dict[str, Any]], str]:
    """(metrics.json's record, '') for a whole one; (None, '') when there is none; (None, what is wrong) else."""
    try:
        text = (path / METRICS_FILE).read_bytes()
    except FileNotFoundError:
        return None, ""
    except OSError as error:
        return None, f"cannot be read ({error.strerror or error})"
    if not text.strip():
        return None, "is empty"
    try:
        record = json.loads(text.decode())
    except ValueError as error:  # cut off or garbled (UnicodeDecodeError included)
        return None, f"is not whole JSON ({error})"
    if not isinstance(record, dict) or record.get("status") not in STATUSES:
        return None, f"holds no run record (no status {', '.join(STATUSES)})"
    return record, ""


def read_metrics(path: Path) -> Optional[dict[str, Any]]:
    """A run's metrics.json, or None when it is absent or damaged (see `damage`)."""
    return _record(path)[0]


def damage(path: Path) -> str:
    """What is wrong with a run's metrics.json that exists but is no whole record ('metrics.json is empty'); '' when
    it is whole or absent. Such a run is damaged, not missing: `ablate run` sets it aside and trains it again."""
    reason = _record(path)[1]
    return f"{METRICS_FILE} {reason}" if reason else ""


def damaged_runs(study_dir: Path) -> dict[Path, str]:
    """Every run folder of a study whose metrics.json is damaged, or whose config.yaml cannot be read, with what is
    wrong ('metrics.json is empty')."""
    found = {file.parent: damage(file.parent) for file in sorted(study_dir.glob(f"*/seed=*/{METRICS_FILE}"))}
    for folder, _ in finished_runs(study_dir):
        try:
            read_config(folder)
        except DamagedRun as error:
            found[folder] = error.reason
    return {folder: reason for folder, reason in sorted(found.items()) if reason}


def set_aside(path: Path) -> Path:
    """Move a damaged run's files (all but its lock and earlier damaged-* folders) into a new damaged-<UTC time>/
    inside its folder, so the run trains again and nothing it held is deleted; returns that folder."""
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    names = (f"{DAMAGED_PREFIX}{stamp}" + (f"-{n}" if n else "") for n in itertools.count())
    aside = next(path / name for name in names if not (path / name).exists())
    with files.machine_failures(aside):
        aside.mkdir()
        for item in sorted(path.iterdir()):
            if item.name != LOCK_FILE and not item.name.startswith(DAMAGED_PREFIX):
                os.rename(item, aside / item.name)
    return aside


def is_finished(path: Path) -> bool:
    """A run is finished when, and only when, it has a whole metrics.json (written last, atomically)."""
    return read_metrics(path) is not None


def read_config(path: Path) -> dict[str, Any]:
    """A run's config.yaml read through the schema (keys added since it was written get their defaults), flattened
    to dotted keys (`model.depth`)."""
    return dict(_read_stored(path)[1])


def stored_config(path: Path) -> AblateConfig:
    """The config a finished run was trained with: its config.yaml on today's schema (keys added since get their
    defaults)."""
    return copy.deepcopy(_read_stored(path)[0])


def finished_runs(study_dir: Path) -> Iterable[tuple[Path, dict[str, Any]]]:
    """(run folder, metrics.json) of every finished run of a study (none when the study does not exist yet)."""
    for metrics_file in sorted(study_dir.glob(f"*/seed=*/{METRICS_FILE}")):
        record = read_metrics(metrics_file.parent)
        if record is not None:  # else not a finished run: missing, or damaged (`damaged_runs`)
            yield metrics_file.parent, record


def _read_stored(path: Path) -> tuple[AblateConfig, dict[str, Any]]:
    """A run's config.yaml typed and flattened, read once per version of the file (a report reads it for the table
    and again for the identity; OmegaConf takes about 30 ms per run)."""
    try:
        found = (path / CONFIG_FILE).stat()
        return _parse_stored(path / CONFIG_FILE, found.st_mtime_ns, found.st_size)
    except FileNotFoundError:
        raise DamagedRun(path, f"{CONFIG_FILE} is missing") from None
    except (OSError, ValueError, TypeError, AttributeError, yaml.YAMLError, OmegaConfBaseException) as error:
        what = error.strerror if isinstance(error, OSError) else " ".join(str(error).split())
        raise DamagedRun(path, f"{CONFIG_FILE} cannot be read ({what})") from None


@functools.lru_cache(maxsize=4096)
def _parse_stored(file: Path, mtime_ns: int, size: int) -> tuple[AblateConfig, dict[str, Any]]:
    config = typed(OmegaConf.create(yaml.load(file.read_text(), Loader=_yaml_loader())))
    return config, flatten_config(plain(config))


@functools.cache
def _yaml_loader() -> type:
    """OmegaConf's YAML rules (its resolvers: `1e-3` is a float, no timestamps) on libyaml's C parser, which reads a
    report's hundreds of stored configs in half the time of OmegaConf.load's pure-Python parser."""
    from omegaconf._utils import get_yaml_loader

    rules = get_yaml_loader()
    return type("StoredConfigLoader", (getattr(yaml, "CSafeLoader", yaml.SafeLoader),),
                {"yaml_implicit_resolvers": rules.yaml_implicit_resolvers, "yaml_constructors": rules.yaml_constructors})


class RunLock:
    """An exclusive lock on one run folder, so two processes never train the same run.

    The operating system drops it when the holder dies, even by SIGKILL, so a crash never leaves a run locked.
    """

    def __init__(self, path: Path) -> None:
        self.path = path / LOCK_FILE
        self.handle: Optional[IO[str]] = None

    def acquire(self, wait: bool = False) -> bool:
        """Take the lock if nobody holds it, or with `wait` once its holder lets go; True on success."""
        with files.machine_failures(self.path):
            self.path.parent.mkdir(parents=True, exist_ok=True)
            handle = self.path.open("a+")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except BlockingIOError:
            handle.close()
            return False
        handle.truncate(0)
        handle.write(f"{os.getpid()}\n")
        handle.flush()
        self.handle = handle
        return True

    def release(self) -> None:
        """Give the lock back (closing the file releases it)."""
        if self.handle is not None:
            self.handle.close()
            self.handle = None


def is_locked(path: Path) -> bool:
    """Whether another trainer holds a run's lock now (one in this process too); takes nothing and creates nothing."""
    try:
        handle = (path / LOCK_FILE).open()
    except OSError:  # no lock file: nobody ever trained it
        return False
    with handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
    return False


def existing_folder(runs_dir: str | Path) -> Path:
    """runs_dir, or where it does not exist yet the nearest path above it that does (where it will be made): what a
    check of the disk looks at, so that checking (a dry run) creates nothing."""
    path = Path(runs_dir).absolute()
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def check_writable(runs_dir: str | Path) -> None:
    """Raise OSError unless a file can be written in runs_dir (or in the folder it will be made in); leaves nothing."""
    root = existing_folder(runs_dir)
    if not root.is_dir():
        raise NotADirectoryError(errno.ENOTDIR, os.strerror(errno.ENOTDIR), str(root))
    with tempfile.NamedTemporaryFile(dir=root, prefix=".write-test-"):
        pass


# Run by a second process while this one holds the lock: exit status 0 if it got the lock too (locks do not work).
_SECOND_LOCKER = "import fcntl, sys; fcntl.flock(open(sys.argv[1]), fcntl.LOCK_EX | fcntl.LOCK_NB)"


def check_locking(runs_dir: str | Path) -> None:
    """Raise ConfigError unless flock in runs_dir keeps a second process out, as RunLock needs (some NFS and Lustre
    mounts refuse flock or ignore it). A second process, not a second open: NFS emulates flock with POSIX locks,
    which exclude other processes but never the holder itself. Locks kept to one node cannot be seen from here."""
    with tempfile.NamedTemporaryFile(dir=existing_folder(runs_dir), prefix=".lock-test-") as probe:
        try:
            fcntl.flock(probe, fcntl.LOCK_EX | fcntl.LOCK_NB)
            second = subprocess.run([sys.executable, "-c", _SECOND_LOCKER, probe.name], capture_output=True, timeout=60)
            why = "a second process took a lock this one holds" if second.returncode == 0 else ""
        except OSError as error:
            why = f"flock failed: {error.strerror or error}"
    if why:
        raise ConfigError(
            f"runs_dir={str(runs_dir)!r}: file locks do not work there ({why}), so two processes could train the same run; "
            "put runs_dir on a filesystem where flock works: a local disk, NFS mounted without local_lock, or Lustre "
            "mounted with -o flock")


def write_run(
    path: Path, config_yaml: str, history: list[dict[str, Any]], metrics: dict[str, Any],
    state_dict: dict[str, torch.Tensor] | None = None,
) -> None:
    """Write one run's files (model.pt only when there are weights); metrics.json goes last, so a crash before it
    leaves the run unfinished."""
    files.write_atomically(path / CONFIG_FILE, config_yaml)
    write_history(path, history)
    if state_dict is not None:
        import torch

        weights = io.BytesIO()
        torch.save(state_dict, weights)
        files.write_atomically(path / MODEL_FILE, weights.getvalue())
    files.write_atomically(path / METRICS_FILE, json.dumps(metrics, indent=2, sort_keys=True) + "\n")


def write_history(path: Path, history: list[dict[str, Any]]) -> None:
    """A run's history.csv, one row per epoch so far (rewritten after every epoch, so a long run can be watched)."""
    table = io.StringIO()
    if history:
        writer = csv.DictWriter(table, fieldnames=list(history[0]))
        writer.writeheader()
        writer.writerows(history)
    files.write_atomically(path / HISTORY_FILE, table.getvalue())


def write_file(run_path: str | Path, name: str, data: str | bytes) -> Path:
    """Write one more file into a run's folder (the pictures of `ablate viz`), atomically; returns its path."""
    return files.write_atomically(Path(run_path) / name, data)


def study_dirs(root: str | Path) -> list[Path]:
    """Studies under a runs folder, or the folder itself when it is one study (it holds variant folders with runs)."""
    root = Path(root)
    if any(root.glob(f"*/seed=*/{METRICS_FILE}")):
        return [root]
    return sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".") and any(p.glob(f"*/seed=*/{METRICS_FILE}")))


def load_runs(study_dir: str | Path, derive: Callable[[Path, dict[str, Any]], dict[str, Any]] = lambda folder, record: {}) -> pd.DataFrame:
    """One row per finished run of a study (failed and diverged ones included, with their status; one whose
    config.yaml cannot be read left out, see `damaged_runs`).

    Columns: everything in metrics.json, the run's config flattened as `cfg.model.depth` etc., run_dir, and what
    `derive(folder, record)` adds (the report adds each run's identity, which the study layer computes).
    """
    import pandas as pd

    rows = []
    for folder, record in finished_runs(Path(study_dir)):
        try:
            record.update({f"cfg.{key}": value for key, value in read_config(folder).items()})
        except DamagedRun:  # named by `damaged_runs`
            continue
        record.update(derive(folder, record))
        rows.append(record | {"run_dir": str(folder)})
    return pd.DataFrame(rows)


def variant_names(study_dir: str | Path) -> list[str]:
    """Every variant of a study that has a folder, finished runs or not."""
    return sorted(variant_of(p) for p in Path(study_dir).iterdir() if p.is_dir() and not p.name.startswith("."))


def load_histories(runs: pd.DataFrame, damaged: Optional[dict[Path, str]] = None) -> pd.DataFrame:
    """Per-epoch curves of the given runs (rows of `load_runs`), tagged with variant and seed; a history.csv that
    cannot be read is left out, and with what is wrong put in `damaged` (by run folder) where given."""
    import pandas as pd

    frames = []
    for run in runs.itertuples():
        try:
            history = read_history(Path(run.run_dir))
            planned = getattr(run, "epochs", None)
            if len(history) and planned == planned and planned is not None and len(history) < planned:
                raise DamagedRun(Path(run.run_dir), f"{HISTORY_FILE} is cut off ({len(history)} of {int(planned)} epochs)")
            frames.append(history.assign(variant=run.variant, seed=run.seed))
        except DamagedRun as error:
            if damaged is not None:
                damaged[error.folder] = error.reason
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def read_history(path: Path) -> pd.DataFrame:
    """A run's history.csv as numbers, one row per epoch (none where it has none); DamagedRun where it is garbled
    or cut off (a row short of cells, or cells that are not numbers: only runs that ended ok are read)."""
    import pandas as pd

    file = path / HISTORY_FILE
    if not file.is_file() or not file.stat().st_size:
        return pd.DataFrame()
    try:
        history = pd.read_csv(io.StringIO(file.read_bytes().decode()))
    except (OSError, ValueError) as error:  # UnicodeDecodeError and pandas' ParserError are ValueErrors
        raise DamagedRun(path, f"{HISTORY_FILE} cannot be read ({' '.join(str(error).split())})") from None
    numbers = history.apply(pd.to_numeric, errors="coerce")
    if numbers.isna().to_numpy().any():  # a run that ended ok has a number in every cell
        raise DamagedRun(path, f"{HISTORY_FILE} is cut off or garbled (a row short of cells, or cells that are not numbers)")
    return numbers


def weights_damage(path: Path) -> str:
    """What is wrong with a run's model.pt ('model.pt is cut off ...'), '' when it is whole or absent: torch saves a
    zip archive, whose directory at the end a cut-off file lacks (checked without torch, which a report never loads)."""
    if not (path / MODEL_FILE).is_file():
        return ""
    try:
        with zipfile.ZipFile(path / MODEL_FILE):
            return ""
    except (OSError, zipfile.BadZipFile) as error:
        return f"{MODEL_FILE} is cut off or garbled ({error})"


def load_trained(run_path: str | Path) -> tuple[AblateConfig, dict[str, torch.Tensor]]:
    """The config one run was trained with (its config.yaml on the schema) and its final weights, on the CPU."""
    path = Path(run_path)
    if damage(path):
        raise DamagedRun(path, f"{damage(path)}; `ablate run` sets it aside and trains it again")
    if not is_finished(path):
        raise FileNotFoundError(f"{path} is not a finished run (no {METRICS_FILE}); give a run folder such as runs/depth/baseline/seed=0")
    if not (path / MODEL_FILE).is_file():
        raise FileNotFoundError(
            f"{path} has no {MODEL_FILE}: the run failed or diverged, or was trained before ablate saved weights; "
            "delete its folder and run it again"
        )
    import torch

    config = stored_config(path)
    try:
        return config, torch.load(path / MODEL_FILE, map_location="cpu", weights_only=True)  # type: ignore[return-value]
    except Exception as error:  # noqa: BLE001 - torch raises RuntimeError, EOFError or an unpickling error for a cut-off file
        raise DamagedRun(path, f"{MODEL_FILE} cannot be read ({' '.join(str(error).split())[:200]})") from None
