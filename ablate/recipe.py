"""The training recipe's constants: how ablate trains fast without changing what a run measures.

Each constant has its unit and the measurement that chose it, so changing one means measuring again (`make bench`).
They decide speed and memory, not what is trained; where one changes a run's float results (the strategy `auto`
picks), the resolved value is part of the run's identity, never the constant.
"""

from __future__ import annotations

EVAL_BATCH = 256
"""Test (and validation) images per forward when a split is evaluated. On the 2-core CPU 256 ran 2.5x faster than
1000 (its maps stay cache-sized); the benchmark's textbook loop evaluates in the same batches, so the comparison is
about the training loop."""

MEMORY_SHARE = 0.7
"""Share of the free GPU memory (a fraction, 0 to 1) a vectorized group of seeds may plan to fill; the rest is headroom
for the caching allocator and cuDNN's workspaces, which `Description.training_bytes` does not estimate."""

TRAINING_COPIES = 4
"""Copies of the weights one seed holds while it trains (fp32): the weights, their gradients and Adam's two moments."""

ACTIVATION_COPIES = 3
"""Copies of each layer's output per training image kept at once: the output saved for backward, its gradient and a
workspace (an upper estimate for `Description.training_bytes`)."""

AUTO_STRATEGY = {"cpu": "eager", "cuda": "eager"}
"""What `train.strategy=auto` resolves to per device type: what measured faster there. On the 2-core CPU vectorized
ran 1.3 to 1.7x slower per seed-step than eager (3 or 5 seeds; under vmap there is no channels_last); on an H100
(the bench's GPU figures) vmap without a CUDA graph was slower than eager."""

CPU_CHANNELS_LAST = True
"""Eager training on the CPU keeps images and weights in channels_last (oneDNN's fast layout): 1.0 to 1.35x faster
per step, never slower, in the bench's CNN variants."""

CPU_FUSED_OPTIMIZER = True
"""torch's fused Adam, AdamW and SGD kernels on the CPU (measured faster there); on CUDA torch's own default."""

CPU_MALLOC_MMAP_BYTES = 32 * 2**20
"""Blocks up to this size (bytes) that training frees on the CPU stay in glibc's heap for the next step instead of going
back to the kernel (`training/memory.py`; 32 MB is the most glibc's own adaptive threshold reaches, here from the
start): without it the baseline's step took 3,000 to 6,000 page faults and 52 to 57 CPU ms (one thread), with it none
and 40 to 44 ms (bit-equal weights)."""

CPU_MALLOC_TRIM_BYTES = 512 * 2**20
"""Free memory (bytes) at the top of glibc's heap it keeps rather than returning it to the kernel, for the same reason:
a step's peak is far below it, so what one step frees the next reuses without a page fault."""

PROGRESS_SECONDS = 1.0
"""Least seconds between two redraws of the progress bar; a redraw reads the loss from the device, the loop's only
host sync, so a fast GPU step is never held up by it."""

LOSS_EXPLOSION = 100.0
"""A seed has diverged when an epoch's mean training loss (cross-entropy, nats) exceeds this many times ln(classes),
the loss of a uniform guess, which a freshly initialised network starts near. The reference is not the run's first
epoch: a run that blows up does so within it (train.lr=1000 on 256 synthetic images: 1.7e18 in epoch 1, lr=0.1:
309 to 972 against ln 10 = 2.30); a healthy run's training loss stays below ln(classes) after its first epoch, so
the factor leaves two orders of magnitude for an unstable run that still learns."""

CHANCE_MARGIN = 0.02
"""A seed has also diverged when its last epoch's training accuracy is within this much (a fraction: two percentage
points) of chance, 1 / classes: it did not even fit the images it trained on. Training accuracy, not test accuracy,
so that which runs count is never decided on the split that is reported (a run that fits its training images and not
the test split is a result about generalisation). Chance is for balanced classes."""

CHANCE_AFTER_STEPS = 100
"""The accuracy rule applies only after this many optimizer steps: a short run may not have left chance yet and is a
result, not a divergence (1 epoch of 4 steps on 256 synthetic images ends at 11 to 23 % training accuracy for 10
classes, as ablate's tests train), while MNIST's baseline ends 50 steps (1 epoch of 3,200 images) at 75 to 78 %."""

JOBS_PER_GPU = 4
"""The most jobs `hydra.launcher.ray.remote.num_gpus=auto` packs onto one GPU (a share of 1/4 at the smallest): small
CNNs also share the GPU's compute, and more than a few processes per GPU each pay a CUDA context (some 300 to 500 MB).
Not measured: chosen, as a cap, without a GPU to time it on."""

RESIDENT_IMAGES = 70_000
"""Images a job's estimate keeps on the GPU where data.train_size or data.test_size is null (every image): MNIST's,
Fashion-MNIST's and KMNIST's 60,000 + 10,000, the most of the built-in datasets (CIFAR-10 has 60,000)."""
