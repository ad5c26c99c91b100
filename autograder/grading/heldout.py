"""The grader's held-out MNIST images (``course_config.HELDOUT_DIR``, made by ``make-data``).

The convergence tests send these images to the student's kernel and judge the trained network's
outputs on them here: their labels never leave the grader, and the kernel's sandbox shows no
file of this folder.
"""
from __future__ import annotations

import functools
import gzip

import course_config as cfg
from autograder import data


@functools.lru_cache(maxsize=1)
def _arrays():
    data.verify(cfg.HELDOUT_DIR, cfg.HELDOUT_DIR)  # a damaged copy is an error, never a verdict
    files = data.HELDOUT_FILES
    images = data.read_idx(gzip.decompress((cfg.HELDOUT_DIR / files["images"]).read_bytes()), files["images"])
    labels = data.read_idx(gzip.decompress((cfg.HELDOUT_DIR / files["labels"]).read_bytes()), files["labels"])
    return images, labels


def load():
    """(images, labels): uint8 images (N, 28, 28) and int64 labels (N,), as torch tensors."""
    import torch

    images, labels = _arrays()
    return torch.from_numpy(images.copy()), torch.from_numpy(labels.astype("int64"))
