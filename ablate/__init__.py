"""ablate: ablation studies of convolutional networks from the command line (`ablate run`, `ablate report`)."""

__version__ = "0.1.0"
# The name on PyPI: `ablate` there is an unrelated project; the command and the import stay `ablate`.
DISTRIBUTION = "ablate-cnn"
