"""ablate: ablation studies of convolutional networks from the command line (`ablate run`, `ablate report`) and from
Python (`ablate.load`, `ablate.load_all`, `ablate.run`: see ablate/api.py)."""

__version__ = "0.1.0"
# The name on PyPI: `ablate` there is an unrelated project; the command and the import stay `ablate`.
DISTRIBUTION = "ablate-cnn"

# ablate from Python (ablate/api.py), imported on first use so `import ablate` stays instant and the command line
# never loads it.
_API = ("RunError", "Study", "load", "load_all", "run")
__all__ = list(_API)


def __getattr__(name: str) -> object:
    """`ablate.load` and the other names of ablate/api.py, imported when first asked for."""
    if name in _API:
        from ablate import api

        return getattr(api, name)
    raise AttributeError(f"module 'ablate' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_API])
