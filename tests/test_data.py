"""The MNIST subset: checksums, class balance, loadable by torchvision, reproducible."""
from __future__ import annotations

import hashlib
import os

import pytest
import torch
import torchvision

import course_config as cfg
from autograder import data
from autograder.errors import InputError

OFFICIAL = data.configured_official_dir()  # the four official MNIST files, where $MNIST_DIR says


def test_shipped_files_match_their_checksums():
    sums = data.verify()
    assert set(sums) == {"train-images-idx3-ubyte", "train-labels-idx1-ubyte",
                         "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"}


@pytest.mark.parametrize("train, per_class", [(True, cfg.SUBSET_TRAIN_PER_CLASS), (False, cfg.SUBSET_TEST_PER_CLASS)])
def test_torchvision_loads_a_balanced_subset(train, per_class):
    split = torchvision.datasets.MNIST(cfg.DATA_DIR, train=train, download=False)
    assert split.data.shape == (10 * per_class, 28, 28)
    assert torch.bincount(split.targets, minlength=10).tolist() == [per_class] * 10


def test_the_held_out_images_are_balanced_and_none_of_them_ships():
    import json

    assert data.verify(cfg.HELDOUT_DIR, cfg.HELDOUT_DIR)
    held = json.loads((cfg.HELDOUT_DIR / "indices.json").read_text())["t10k"]
    shipped = json.loads((cfg.DATA_DIR / "indices.json").read_text())["test"]
    assert len(held) == 10 * cfg.HELDOUT_PER_CLASS and not set(held) & set(shipped)
    assert not any(cfg.RELEASE_DIR.rglob("heldout*")) and not any(cfg.SOURCE_DIR.rglob("heldout*"))


def test_release_carries_the_same_data():
    for name, digest in data.read_checksums().items():
        shipped = cfg.RELEASE_DIR / cfg.ASSIGNMENT_ID / "data" / "MNIST" / "raw" / name
        assert hashlib.sha256(shipped.read_bytes()).hexdigest() == digest


def test_a_corrupted_file_is_reported_by_name(tmp_path):
    root = tmp_path / "data"
    (root / "MNIST" / "raw").mkdir(parents=True)
    (root / "SHA256SUMS").write_text((cfg.DATA_DIR / "SHA256SUMS").read_text())
    for name in data.read_checksums():
        (data.raw_dir(root) / name).write_bytes((data.raw_dir() / name).read_bytes())
    victim = data.raw_dir(root) / "t10k-labels-idx1-ubyte"
    victim.write_bytes(victim.read_bytes()[:-1] + b"\x00")
    with pytest.raises(data.DataError, match="t10k-labels-idx1-ubyte"):
        data.verify(root)


def test_idx_round_trip_and_bad_header():
    labels = torch.arange(10, dtype=torch.uint8).numpy()
    assert (data.read_idx(data.write_idx(labels), "x") == labels).all()
    with pytest.raises(data.DataError, match="not an MNIST IDX file"):
        data.read_idx(b"\x00\x00\x00\x07" + bytes(8), "bad.idx")


@pytest.mark.skipif(OFFICIAL is None or not OFFICIAL.is_dir(), reason=f"the official MNIST files are absent: "
                    f"set {cfg.MNIST_DIR_VARIABLE} to their folder")
def test_subset_is_reproducible_from_the_official_files(tmp_path):
    made = data.make_subset(tmp_path, OFFICIAL, heldout=tmp_path / "heldout")
    assert made == data.read_checksums()
    for name in ["SHA256SUMS", "indices.json", "PROVENANCE.md", *data.HELDOUT_FILES.values()]:
        assert (tmp_path / "heldout" / name).read_bytes() == (cfg.HELDOUT_DIR / name).read_bytes(), name
    assert (tmp_path / "indices.json").read_text() == (cfg.DATA_DIR / "indices.json").read_text()
    assert (tmp_path / "PROVENANCE.md").read_text() == (cfg.DATA_DIR / "PROVENANCE.md").read_text()


@pytest.mark.kernel
@pytest.mark.skipif(OFFICIAL is None or not OFFICIAL.is_dir(), reason=f"the official MNIST files are absent: "
                    f"set {cfg.MNIST_DIR_VARIABLE} to their folder")
def test_the_notebook_alone_downloads_mnist_and_draws_the_shipped_subset(tmp_path):
    """As on Colab: the release notebook alone in an empty folder, torchvision's download served here
    from the official files, draws the very subset data/ holds (same files, same checksums)."""
    import functools
    import http.server
    import threading

    import nbformat
    from nbclient import NotebookClient

    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(OFFICIAL))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    # torchvision checks each .gz against the md5 of the original download; one official file here was
    # re-compressed (same content, other bytes), so the served files' md5 are used
    served = {path.name: hashlib.md5(path.read_bytes()).hexdigest() for path in OFFICIAL.glob("*.gz")}
    mirror = (f"from torchvision import datasets\n"
              f"datasets.MNIST.mirrors = ['http://127.0.0.1:{server.server_address[1]}/']\n"
              f"datasets.MNIST.resources = {sorted(served.items())!r}\n")
    release = nbformat.read(cfg.RELEASE_NOTEBOOK, as_version=4)
    setup = [c for c in release.cells if c.metadata.get("nbgrader", {}).get("grade_id") in ("setup_imports", "setup_data")]
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(mirror), *setup])
    folder = tmp_path / "content"  # nothing but the notebook, as when it is uploaded alone
    folder.mkdir()
    previous = os.environ.pop("NBGRADER_EXECUTION", None)
    try:
        NotebookClient(nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(folder)}}).execute()
    finally:
        server.shutdown()
        if previous is not None:
            os.environ["NBGRADER_EXECUTION"] = previous
    printed = "".join(o.get("text", "") for c in nb.cells for o in c.get("outputs", []))
    assert "the course's subset written to" in printed and "train (5000, 1, 28, 28) test (1000, 1, 28, 28)" in printed
    for name, digest in data.read_checksums().items():
        assert hashlib.sha256((folder / "data" / "MNIST" / "raw" / name).read_bytes()).hexdigest() == digest, name


def test_the_notebooks_draw_settings_are_the_courses():
    import ast

    import nbformat

    cell = next(c for c in nbformat.read(cfg.SOURCE_NOTEBOOK, as_version=4).cells
                if c.metadata.get("nbgrader", {}).get("grade_id") == "setup_data")
    subset = next(ast.literal_eval(node.value) for node in ast.parse(cell.source).body
                  if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", "") == "SUBSET")
    assert subset == {"seed": cfg.SUBSET_SEED, "train_per_class": cfg.SUBSET_TRAIN_PER_CLASS,
                      "test_per_class": cfg.SUBSET_TEST_PER_CLASS}


def test_without_a_folder_make_data_says_where_to_get_the_files(monkeypatch, tmp_path):
    monkeypatch.delenv(cfg.MNIST_DIR_VARIABLE, raising=False)
    with pytest.raises(InputError, match=r"make-data --from DIR.*yann\.lecun\.com/exdb/mnist.*ossci-datasets"):
        data.make_subset(tmp_path)
    with pytest.raises(InputError, match="not a folder"):
        data.make_subset(tmp_path, tmp_path / "nowhere")
    with pytest.raises(data.DataError, match="train-images-idx3-ubyte.gz: missing"):
        data.make_subset(tmp_path, tmp_path)
    monkeypatch.setenv(cfg.MNIST_DIR_VARIABLE, str(tmp_path))  # the variable is read when the files are
    assert data.official_dir() == tmp_path
