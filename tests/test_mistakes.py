"""The mistakes table: what a user may get wrong, the exit status, and the one line ablate answers with, each case run
as a user types it (`run` commands with --dry-run added, so nothing trains whatever happens). The guide page
docs/guide/mistakes.md is this table, printed lines included: `python tests/test_mistakes.py` writes it again."""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import NamedTuple

import pytest

from conftest import run_ablate

PAGE = Path(__file__).resolve().parents[1] / "docs" / "guide" / "mistakes.md"
# The files the cases use, as the page shows them: a folder of your own config groups (--config-dir myconf), and an
# image folder whose class b holds no image.
FILES = {
    "train/smooth.yaml": "mixup: 0.1\n",
    "model/wide.yaml": "widht: 64\n",
    "sweep/empty.yaml": "# @package _global_\nstudy: empty\nhydra:\n  mode: MULTIRUN\n",
    "sweep/same.yaml": "# @package _global_\nstudy: same\nhydra:\n  mode: MULTIRUN\n  sweeper:\n    factors:\n      model.depth: [2]\n",
    "sweep/typo.yaml": "# @package _global_\nstudy: typo\nhydra:\n  mode: MULTIRUN\n  sweeper:\n    factors:\n      train.mixup: [0.0, 0.1]\n",
}
FILES = {**{f"myconf/{name}": text for name, text in FILES.items()},
         "imgs/train/a/0.png": "", "imgs/train/b/notes.txt": "no image\n", "imgs/test/a/0.png": ""}


class Mistake(NamedTuple):
    """A command line (after `ablate`), its exit status, and what its one line (exit 2) or its output (0) says."""

    command: str
    status: int
    says: str


MISTAKES = [
    # Keys ablate would not use: refused, never dropped.
    Mistake("run +train.mixup=0.1", 2, "train.mixup: no such key, so ablate would not use it"),
    Mistake("run +foo=1", 2, "foo: no such key"),
    Mistake("run model.dept=3", 2, "did you mean model.depth?"),
    Mistake("run +model.dept=3", 2, "did you mean model.depth?"),
    Mistake("run -m train.lr_x=0.1,1", 2, "train.lr_x: no such key"),
    Mistake("run train.schedule=onecycle train.warmup_epochs=1", 2, "is not allowed with train.schedule=onecycle"),
    Mistake("run --config-dir myconf train=smooth", 2, "train.mixup: no such key"),
    Mistake("run --config-dir myconf model=wide", 2, "model.widht: no such key, so ablate would not use it; did you mean model.width"),
    Mistake("run --config-dir myconf +sweep=typo", 2, "train.mixup: no such key"),
    # Values: checked before anything trains.
    Mistake("run model.kernel_size=4", 2, "model.kernel_size=4 is not allowed; 'same' padding needs an odd size"),
    Mistake("run model.pool=median", 2, "model.pool='median' is not allowed; choose one of: max, avg, strided"),
    Mistake("run model.depth=abc", 2, "model.depth: Value 'abc' of type 'str' could not be converted to Integer"),
    Mistake("run train.epochs=0", 2, "train.epochs=0 is not allowed; it must be an integer >= 1"),
    Mistake("run train.lr=nan", 2, "train.lr=nan is not allowed; it must be a finite number > 0"),
    Mistake("run train.lr=inf", 2, "train.lr=inf is not allowed; it must be a finite number > 0"),
    Mistake("run train.weight_decay=-1", 2, "train.weight_decay=-1.0 is not allowed; it must be a finite number >= 0"),
    Mistake("run model.batchnorm=yes", 2, "model.batchnorm=yes is not allowed; write true or false"),
    Mistake("run seeds=[]", 2, "seeds=[] is not allowed; give at least one seed"),
    Mistake("run seeds=0,1", 2, "list them in brackets, seeds=[0,1]"),
    Mistake("run seeds=[99999999999999999999]", 2, "seed 99999999999999999999 does not fit torch's 64-bit seeds"),
    Mistake("run study=ünï", 2, "study=ünï: not an override Hydra can read (LexerNoViableAltException)"),
    Mistake("run study='ünï'", 2, "study='ünï' is not allowed; use letters, digits"),
    Mistake("run +sweep=depth model.depth=3 train.lr=-1", 2, "train.lr=-1.0 is not allowed"),  # the value before the conflict
    Mistake("run +sweep=depth model.depth=3", 2, "model.depth is a factor this study varies"),
    Mistake("run model=nosuch", 2, "Could not find 'model/nosuch'"),
    Mistake("run data=folder data.root=imgs", 2, "the class folder imgs/train/b holds no image"),
    Mistake("inspect data=folder data.root=imgs", 2, "the class folder imgs/train/b holds no image"),  # as run refuses it
    Mistake("run data.name=imagenet", 2, "data.name='imagenet' is not allowed; choose one of: mnist"),
    Mistake("run train.strategy=vectorized precision=bf16", 2, "train.strategy=vectorized is not allowed with precision=bf16"),
    # +variance=sources: it sets the seed streams itself, one study of its own.
    Mistake("run +variance=sources seed_streams.order=7", 2, "seed_streams.order is set by +variance=sources for each source"),
    Mistake("run +variance=sources -m model.depth=2,3", 2, "model.depth is a factor, and +variance=sources varies seed streams only"),
    Mistake("run +variance=sources +tune=lr", 2, "+tune is not allowed with +variance=sources"),
    Mistake("run +variance=sources seeds=[0]", 2, "seeds=[0] is not allowed with +variance=sources; a standard deviation needs at least two seeds"),
    Mistake("run +variance=sources variance.sources=[init]", 2, "variance.sources=init leaves fewer than two streams that can vary here"),
    Mistake("run +variance=sources variance.sources=[init,shape]", 2, "variance.sources: 'shape' is not allowed; choose among: init, order"),
    # Sweeps that would train the baseline alone.
    Mistake("run --config-dir myconf +sweep=empty", 2, "+sweep=empty varies nothing: its file lists no factors"),
    Mistake("run --config-dir myconf +sweep=same", 2, "model.depth=2 lists only the baseline's own value (2)"),
    Mistake("run -m model.depth=2,2", 2, "model.depth=2,2 lists only the baseline's own value (2)"),
    # What a plan shows.
    Mistake("run model.depth=2", 0, "to train  runs/default/baseline/seed=0"),  # the baseline's own value: the baseline
    Mistake("run model.dropout=0", 0, "to train  runs/default/baseline/seed=0"),
    Mistake("run -m train.lr=0.01,0.1", 0, "baseline: train.lr=0.001 (the config's own values)"),
    Mistake("inspect -m model.depth=2,3", 0, "## model.depth=3"),
    Mistake("run --help", 0, "conv blocks; each is followed by 2x downsampling"),
]


def with_files(folder: Path) -> Path:
    """`folder` holding the cases' FILES."""
    for name, text in FILES.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_text(text)
    return folder


def answer(mistake: Mistake, folder: Path) -> tuple[int, str]:
    """The exit status and what the command printed: its one error line (exit 2), or all it printed."""
    args = mistake.command.split(" ")
    if args[0] == "run" and "--help" not in args:
        args += ["--dry-run", *([] if any(a.startswith("data") for a in args) else ["data=synthetic"])]
    done = run_ablate(*args, cwd=with_files(folder))
    return done.returncode, done.stderr.strip() if done.returncode == 2 else done.stdout


def page_lines() -> dict[str, str]:
    """What the guide page says each command prints: its rows, command -> line."""
    rows = [line.split(" | ") for line in PAGE.read_text().splitlines() if line.startswith("| `ablate ")]
    return {row[0].strip("| `").removeprefix("ablate "): row[2].strip(" |`") for row in rows}


@pytest.mark.parametrize("mistake", MISTAKES, ids=[m.command for m in MISTAKES])
def test_every_mistake_gets_its_exit_status_and_one_line_and_the_guide_says_it(mistake: Mistake, tmp_path: Path) -> None:
    status, printed = answer(mistake, tmp_path)
    assert status == mistake.status and mistake.says in printed, printed
    if status == 2:
        assert len(printed.splitlines()) == 1 and printed.startswith("ablate: error: ")
    assert page_lines().get(mistake.command) == (printed if status == 2 else mistake.says), \
        "docs/guide/mistakes.md is out of date: python tests/test_mistakes.py writes it again"


def test_the_guide_page_lists_every_case_of_the_table_and_no_other() -> None:
    assert list(page_lines()) == [m.command for m in MISTAKES]


def test_the_readmes_mistakes_are_rows_of_the_table_with_their_lines() -> None:
    """Each `$ ablate ...` of README.md and the factors guide followed by `ablate: error: ...` prints that line."""
    pages = [PAGE.parents[2] / "README.md", PAGE.parent / "factors-and-sweeps.md"]
    shown = [pair for page in pages
             for pair in re.findall(r"^ +\$ ablate (.+)\n +(ablate: error: .+)$", page.read_text(), flags=re.M)]
    assert len(shown) >= 3 and all(page_lines().get(command) == line for command, line in shown), shown


def test_run_help_gives_every_key_a_meaning_and_hides_internal_keys(tmp_path: Path) -> None:
    helped = run_ablate("run", "--help", cwd=tmp_path)
    keys = [line.split()[0] for line in helped.stdout.partition("Keys (")[2].splitlines()[1:] if line.startswith("  ")]
    assert "train.lr=0.001" in keys and "seeds=[0,1,2]" in keys and len(keys) > 50
    assert all(len(line.split()) > 1 for line in helped.stdout.splitlines() if line.startswith("  ") and line.split()[0] in keys)
    assert not [key for key in keys if key.partition("=")[0] in ("variant", "retry_failed", "model._target_", "model.params")]
    assert "+sweep          activation, all," in helped.stdout


def test_run_info_prints_once(tmp_path: Path) -> None:
    info = run_ablate("run", "--info", cwd=tmp_path)
    assert info.returncode == 0 and info.stdout.count("Config search path") == 1 and "Config search path" not in info.stderr


def write_page() -> None:
    """docs/guide/mistakes.md from the table, each line as the command prints it now."""
    import tempfile

    rows = []
    for mistake in MISTAKES:
        with tempfile.TemporaryDirectory() as folder:
            status, printed = answer(mistake, Path(folder))
        rows.append(f"| `ablate {mistake.command}` | {status} | `{printed if status == 2 else mistake.says}` |")
    files = "\n".join(f"    # {name}{'' if text else ' (an image; any file named so is one to a listing)'}\n" + "".join(f"    {line}\n" for line in text.splitlines()) for name, text in FILES.items())
    PAGE.write_text(f"""# Mistakes and what ablate says

Every mistake below gets one line and exit status 2 before anything trains (`--debug` or `HYDRA_FULL_ERROR=1` shows
the traceback instead); the last rows show what a plan prints for commands that are no mistake but easy to misread.
The table is tests/test_mistakes.py's: each row is run by the tests, so the lines here are the lines ablate prints
(`python tests/test_mistakes.py` writes this page again). The rows use these files (`--config-dir myconf`, an
image folder `imgs` whose class `b` holds no image):

{files}
| command | exit | what it prints (exit 0: a line of it) |
| --- | --- | --- |
{chr(10).join(rows)}
""")


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).parent))
    write_page()
