"""Make the class-balanced MNIST subset that ships with the assignment.

Reads the four official files in a folder given to ``make-data --from DIR`` (or named by ``$MNIST_DIR``) (checking them against
their published md5), draws ``SUBSET_*_PER_CLASS`` images per digit with ``SUBSET_SEED`` (the
official train split for training, the official test split for testing) and writes them in
the raw IDX layout that ``torchvision.datasets.MNIST(root, download=False)`` reads from
``<root>/MNIST/raw/``, plus ``PROVENANCE.md``, ``SHA256SUMS`` and the chosen indices.

The same generator then draws ``HELDOUT_PER_CLASS`` more test images per digit, none of the
subset's, into ``course_config.HELDOUT_DIR``: the grader's held-out set, which never ships.

    python -m autograder make-data        # rewrite the subset (deterministic)
    python -m autograder make-data --check  # verify the shipped subset, write nothing
"""
from __future__ import annotations

import gzip
import hashlib
import json
import os
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

import course_config as cfg
from autograder.errors import InputError, SetupError

# md5 of the *uncompressed* official files (the training images were re-compressed, so
# their .gz differs from the original while the content is identical).
OFFICIAL_MD5 = {
    "train-images-idx3-ubyte": "6bbc9ace898e44ae57da46a324031adb",
    "train-labels-idx1-ubyte": "a25bea736e30d166cdddb491f175f624",
    "t10k-images-idx3-ubyte": "2646ac647ad5339dbf082846283269ea",
    "t10k-labels-idx1-ubyte": "27ae3e4e09519cfbb04c329615203637",
}
SPLITS = {"train": ("train", cfg.SUBSET_TRAIN_PER_CLASS), "test": ("t10k", cfg.SUBSET_TEST_PER_CLASS)}
IDX_IMAGES_MAGIC, IDX_LABELS_MAGIC = 2051, 2049


class DataError(SetupError):
    """A data file is missing, corrupt or differs from its recorded checksum."""


@dataclass(frozen=True)
class Split:
    images: np.ndarray  # (N, 28, 28) uint8
    labels: np.ndarray  # (N,) uint8
    indices: np.ndarray  # positions in the official split


def raw_dir(root: Path = cfg.DATA_DIR) -> Path:
    """Folder that torchvision reads the raw IDX files from."""
    return root / "MNIST" / "raw"


def read_idx(data: bytes, name: str) -> np.ndarray:
    """Parse one IDX file (images or labels) into a uint8 array, checking its header."""
    magic = struct.unpack(">I", data[:4])[0]
    if magic == IDX_IMAGES_MAGIC:
        n, rows, cols = struct.unpack(">III", data[4:16])
        shape, offset = (n, rows, cols), 16
    elif magic == IDX_LABELS_MAGIC:
        (n,) = struct.unpack(">I", data[4:8])
        shape, offset = (n,), 8
    else:
        raise DataError(f"{name}: not an MNIST IDX file (magic number {magic})")
    array = np.frombuffer(data, dtype=np.uint8, offset=offset)
    if array.size != int(np.prod(shape)):
        raise DataError(f"{name}: header says {shape} but the file holds {array.size} bytes of data")
    return array.reshape(shape)


def write_idx(array: np.ndarray) -> bytes:
    """Serialise a uint8 array as IDX, the inverse of :func:`read_idx`."""
    magic = IDX_IMAGES_MAGIC if array.ndim == 3 else IDX_LABELS_MAGIC
    return struct.pack(f">I{array.ndim}I", magic, *array.shape) + array.astype(np.uint8).tobytes()


WHERE_TO_GET = (f"the four official MNIST files ({', '.join(f'{stem}.gz' for stem in OFFICIAL_MD5)}) are at "
                f"http://yann.lecun.com/exdb/mnist/ and at the mirror torchvision downloads from, {cfg.MNIST_MIRROR}")


def configured_official_dir() -> Path | None:
    """The folder that the environment variable ``course_config.MNIST_DIR_VARIABLE`` names, if it is set."""
    folder = os.environ.get(cfg.MNIST_DIR_VARIABLE)
    return Path(folder) if folder else None


def official_dir(source: Path | None = None) -> Path:
    """The folder of the official MNIST files: ``source``, else ``$MNIST_DIR``; ``InputError`` saying
    where to get them when neither names a folder."""
    folder = Path(source) if source is not None else configured_official_dir()
    if folder is None:
        raise InputError(f"no folder of the official MNIST files: give it (make-data --from DIR) or set "
                         f"{cfg.MNIST_DIR_VARIABLE}; {WHERE_TO_GET}")
    if not folder.is_dir():
        raise InputError(f"{folder}: not a folder (of the official MNIST files); {WHERE_TO_GET}")
    return folder


def load_official(stem: str, source: Path | None = None) -> np.ndarray:
    """Read ``<stem>.gz`` from the official folder (``official_dir(source)``) and verify the md5 of its content."""
    folder = official_dir(source)
    path = folder / f"{stem}.gz"
    if not path.is_file():
        raise DataError(f"{path}: missing; the official MNIST files are expected in {folder}; {WHERE_TO_GET}")
    data = gzip.decompress(path.read_bytes())
    digest = hashlib.md5(data).hexdigest()
    if digest != OFFICIAL_MD5[stem]:
        raise DataError(f"{path}: md5 of the content is {digest}, expected {OFFICIAL_MD5[stem]}")
    return read_idx(data, str(path))


def balanced_indices(labels: np.ndarray, per_class: int, rng: np.random.Generator) -> np.ndarray:
    """``per_class`` positions of each digit, drawn without replacement, in ascending order."""
    chosen = [rng.choice(np.flatnonzero(labels == digit), per_class, replace=False) for digit in range(10)]
    return np.sort(np.concatenate(chosen))


def draw_subset(source: Path | None = None, seed: int = cfg.SUBSET_SEED) -> dict[str, Split]:
    """Draw the balanced subset of both splits, then the held-out split (``"heldout"``: test images
    not in the subset); same seed and files, same bytes."""
    rng = np.random.default_rng(seed)
    subset = {}
    for split, (prefix, per_class) in SPLITS.items():
        images = load_official(f"{prefix}-images-idx3-ubyte", source)
        labels = load_official(f"{prefix}-labels-idx1-ubyte", source)
        idx = balanced_indices(labels, per_class, rng)
        subset[split] = Split(images[idx], labels[idx], idx)
    left = np.ones(len(labels), dtype=bool)  # the official test split, minus the subset's test images
    left[subset["test"].indices] = False
    positions = np.flatnonzero(left)
    chosen = positions[balanced_indices(labels[positions], cfg.HELDOUT_PER_CLASS, rng)]
    subset["heldout"] = Split(images[chosen], labels[chosen], chosen)
    return subset


HELDOUT_FILES = {"images": "heldout-images-idx3-ubyte.gz", "labels": "heldout-labels-idx1-ubyte.gz"}


def heldout_files(split: Split) -> dict[str, bytes]:
    """File name -> bytes of the held-out set (gzip without a time stamp: same draw, same bytes)."""
    return {HELDOUT_FILES["images"]: gzip.compress(write_idx(split.images), mtime=0),
            HELDOUT_FILES["labels"]: gzip.compress(write_idx(split.labels), mtime=0)}


def subset_files(subset: dict[str, Split]) -> dict[str, bytes]:
    """File name -> bytes of the four raw files torchvision expects."""
    files = {}
    for split, (prefix, _) in SPLITS.items():
        files[f"{prefix}-images-idx3-ubyte"] = write_idx(subset[split].images)
        files[f"{prefix}-labels-idx1-ubyte"] = write_idx(subset[split].labels)
    return files


def provenance(subset: dict[str, Split], checksums: dict[str, str]) -> str:
    """Markdown that says where the subset came from and how to make it again."""
    lines = [
        "# MNIST subset: provenance",
        "",
        "A class-balanced subset of the MNIST database of handwritten digits (Yann LeCun, Corinna",
        "Cortes, Christopher J.C. Burges), made from the four official IDX files. MNIST is",
        "published under the Creative Commons Attribution-Share Alike 3.0 licence (CC BY-SA 3.0);",
        "this subset is a derivative and is shared under the same licence, with this attribution.",
        "",
        "Made by `python -m autograder make-data` (`autograder/data.py` in the course repository)",
        f"with seed {cfg.SUBSET_SEED}: `numpy.random.default_rng(seed)` draws, without replacement and",
        "digit by digit (0 to 9), the training split first, then the test split; the images keep",
        "their official order. `indices.json` lists the positions taken from each official file.",
        "",
        "| split | official file | per class | images |",
        "|---|---|---|---|",
    ]
    for split, (prefix, per_class) in SPLITS.items():
        lines.append(f"| {split} | {prefix}-images-idx3-ubyte | {per_class} | {len(subset[split].labels)} |")
    lines += ["", "Official files (md5 of the uncompressed content):", ""]
    lines += [f"- `{stem}`: `{md5}`" for stem, md5 in OFFICIAL_MD5.items()]
    lines += ["", "Subset files (sha256, also in `SHA256SUMS`):", ""]
    lines += [f"- `MNIST/raw/{name}`: `{digest}`" for name, digest in checksums.items()]
    return "\n".join(lines) + "\n"


def read_checksums(root: Path = cfg.DATA_DIR) -> dict[str, str]:
    """Parse ``SHA256SUMS`` (``<sha256>  <path>`` lines) into file name -> digest."""
    path = root / "SHA256SUMS"
    if not path.is_file():
        raise DataError(f"{path}: missing; run `python -m autograder make-data`")
    sums = {}
    for line in path.read_text().splitlines():
        digest, name = line.split(maxsplit=1)
        sums[Path(name).name] = digest
    return sums


def verify(root: Path = cfg.DATA_DIR, files: Path | None = None) -> dict[str, str]:
    """Check every shipped raw file (in ``files``, default the raw folder) against ``SHA256SUMS``;
    return the checksums."""
    sums = read_checksums(root)
    for name, expected in sums.items():
        path = (files or raw_dir(root)) / name
        if not path.is_file():
            raise DataError(f"{path}: missing")
        got = hashlib.sha256(path.read_bytes()).hexdigest()
        if got != expected:
            raise DataError(f"{path}: sha256 {got} differs from SHA256SUMS ({expected})")
    return sums


def make_subset(root: Path = cfg.DATA_DIR, source: Path | None = None,
                heldout: Path = cfg.HELDOUT_DIR) -> dict[str, str]:
    """Write the subset, its checksums, indices and provenance under ``root``, and the held-out set
    into ``heldout``; return the subset's checksums."""
    subset = draw_subset(source)
    files = subset_files(subset)
    raw_dir(root).mkdir(parents=True, exist_ok=True)
    checksums = {}
    for name, data in files.items():
        (raw_dir(root) / name).write_bytes(data)
        checksums[name] = hashlib.sha256(data).hexdigest()
    (root / "SHA256SUMS").write_text("".join(f"{d}  MNIST/raw/{n}\n" for n, d in checksums.items()))
    indices = {split: subset[split].indices.tolist() for split in SPLITS}
    (root / "indices.json").write_text(json.dumps(indices, separators=(",", ":")) + "\n")
    (root / "PROVENANCE.md").write_text(provenance(subset, checksums))
    write_heldout(subset["heldout"], heldout)
    return checksums


def write_heldout(split: Split, folder: Path = cfg.HELDOUT_DIR) -> dict[str, str]:
    """Write the grader's held-out set, its checksums and indices into ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    checksums = {}
    for name, data in heldout_files(split).items():
        (folder / name).write_bytes(data)
        checksums[name] = hashlib.sha256(data).hexdigest()
    (folder / "SHA256SUMS").write_text("".join(f"{d}  {n}\n" for n, d in checksums.items()))
    (folder / "indices.json").write_text(json.dumps({"t10k": split.indices.tolist()}, separators=(",", ":")) + "\n")
    (folder / "PROVENANCE.md").write_text(
        "# Held-out MNIST images (grader only)\n\n"
        f"{len(split.labels)} images of the official MNIST test split (t10k), {cfg.HELDOUT_PER_CLASS} per digit, none\n"
        "of them in the subset that ships with the assignment. `python -m autograder make-data` draws them\n"
        f"with the subset's generator (seed {cfg.SUBSET_SEED}) right after the subset; `indices.json` lists\n"
        "their positions in t10k. The convergence tests evaluate a trained network's outputs on them in\n"
        "the grader: the labels never enter a student's kernel, and the folder never ships.\n\n"
        "MNIST (Yann LeCun, Corinna Cortes, Christopher J.C. Burges) is published under the Creative\n"
        "Commons Attribution-Share Alike 3.0 licence (CC BY-SA 3.0); this subset is shared under the same\n"
        "licence, with this attribution. sha256 of the files: `SHA256SUMS`.\n")
    return checksums
