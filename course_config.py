"""Course and grading settings: the one place each value is declared.

nbgrader reads this through ``nbgrader_config.py``; the autograder, the data script, the
tests and the benchmarks import it. Students never see this file: what the notebook needs
at run time (its data, its figures) travels inside ``release/``.
"""
from __future__ import annotations

from pathlib import Path
from typing import Final

ROOT: Final[Path] = Path(__file__).resolve().parent

# --- Identity ------------------------------------------------------------------------
COURSE_ID: Final[str] = "dl-optimization"  # nbgrader course id (gradebook, exchange)
ASSIGNMENT_ID: Final[str] = "w4_optimization"  # folder name under source/ and release/
NOTEBOOK_NAME: Final[str] = "W4_Tutorial1"  # notebook file stem inside the assignment

SOURCE_DIR: Final[Path] = ROOT / "source"
EXAMPLES_DIR: Final[Path] = ROOT / "examples" / "submissions"  # reference, blank, partials; expected.json
# graded before every batch (the canary): it must earn full marks in the batch's sandbox and device
REFERENCE_SUBMISSION: Final[Path] = EXAMPLES_DIR / "reference.ipynb"
RELEASE_DIR: Final[Path] = ROOT / "release"
SOURCE_NOTEBOOK: Final[Path] = SOURCE_DIR / ASSIGNMENT_ID / f"{NOTEBOOK_NAME}.ipynb"
RELEASE_NOTEBOOK: Final[Path] = RELEASE_DIR / ASSIGNMENT_ID / f"{NOTEBOOK_NAME}.ipynb"
# the students' own checker, shipped in the release beside the notebook (the one .py file there)
STUDENT_CHECKER: Final[Path] = SOURCE_DIR / ASSIGNMENT_ID / "check.py"

# --- Points per graded cell (grade id -> points) ------------------------------------------
# Autograded answers carry their points on the locked test cells that follow them;
# free-response answers (q_*) carry their own and are graded by hand.
POINTS: Final[dict[str, float]] = {
    "test_ex1_memory": 4,
    "test_ex2_bn_models_structure": 4,
    "test_ex2_bn_models_convergence": 3,
    "test_ex3_momentum_update": 3,
    "test_ex3_momentum_optimizer": 3,
    "test_mcq_minibatch": 2,
    "test_mcq_momentum": 2,
    "q_delivery_strategy": 1,
    "q_better_loss": 1,
    "q_good_descent": 1,
    "q_sgd_vs_minibatch_plot": 2,
    "q_convergence_vs_batch_size": 2,
    "q_bn_learnable_ab": 2,
    "q_bn_helped_or_hurt": 2,
}
# A test cell earns all its points or a share of them: its hidden tests (run by the grader,
# autograder/grading/judge.py) set `share` for partial credit, as the multiple-choice questions do.

# --- Data: the MNIST subset shipped with the assignment --------------------------------
# The four official MNIST .gz files are needed only to redraw the subset (`make-data --from DIR`) and for
# the full-MNIST figures; without --from, their folder is read from this environment variable. Get them
# from http://yann.lecun.com/exdb/mnist/ or the mirror torchvision downloads from (MNIST_MIRROR).
MNIST_DIR_VARIABLE: Final[str] = "MNIST_DIR"
MNIST_MIRROR: Final[str] = "https://ossci-datasets.s3.amazonaws.com/mnist/"
DATA_DIR: Final[Path] = SOURCE_DIR / ASSIGNMENT_ID / "data"  # torchvision root; raw files in MNIST/raw
SUBSET_SEED: Final[int] = 4  # the draw of the subset; change it and the checksums change
SUBSET_TRAIN_PER_CLASS: Final[int] = 500  # 5,000 training images: enough to converge in 1-2 s
SUBSET_TEST_PER_CLASS: Final[int] = 100  # 1,000 test images: accuracy resolution of 0.1 %
# Held-out images of the official test split, disjoint from the subset, drawn after it with the same
# seed: the convergence tests judge a trained network on them, and their labels never enter a kernel.
HELDOUT_PER_CLASS: Final[int] = 100
HELDOUT_DIR: Final[Path] = ROOT / "autograder" / "heldout_mnist"  # grader-only: never in release/ nor a sandbox

# --- Collecting -----------------------------------------------------------------------
# The course's learning-management system: "canvas", "moodle" or "blackboard". It says how the names in
# its submissions download (.zip) read (autograder/lms.py) and the layout of its roster and grade import.
LMS: Final[str] = "canvas"
# None: the LMS's own download names. Else a pattern of the zip members' paths, matched from their start,
# with a student_id group and, optionally, timestamp (the latest attempt wins); the LMS's fields are read
# from the left, since the end of each name is the file name the student chose.
ZIP_FILENAME_REGEXP: Final[str | None] = None

MAX_SUBMISSION_MB: Final[int] = 50  # a notebook is ~0.2 MB; larger ones carry giant outputs

# --- Deadline and late policy ----------------------------------------------------------
# "course": the penalty below is computed here, from each submission's time (nbgrader's timestamp.txt,
# the time in the download's names, or `export --times FILE`); a submission without a time is flagged.
# "lms": the LMS applies its own late policy (Canvas's), nothing is taken off here, and no one is
# flagged for a missing time.
LATE_POLICY: Final[str] = "course"
# Submission times come from nbgrader's timestamp.txt (submitted/ tree), the LMS download's names
# (Blackboard's attempt time) or a times file; a time without a zone is in COURSE_TIMEZONE.
COURSE_TIMEZONE: Final[str] = "America/New_York"  # IANA zone of the due date
DUE_DATE: Final[str] = "2026-10-16 23:59"  # local time in COURSE_TIMEZONE
LATE_GRACE_MINUTES: Final[int] = 15  # submissions this late count as on time (upload lag)
LATE_PENALTY_UNIT: Final[str] = "day"  # "day" or "hour": each started unit after the due date costs...
LATE_PENALTY_PER_UNIT: Final[float] = 0.10  # ...this share of the assignment's maximum score
LATE_PENALTY_CAP: Final[float] = 0.50  # at most this share; the final score never drops below 0

# --- Export to the course's LMS (autograder/lms.py holds each LMS's column layout) -------
# the assignment's column in the LMS gradebook, before the id the LMS adds ("W4 Optimization (123456)" in
# Canvas, "W4 Optimization [Total Pts: 32 Score] |123456" in Blackboard; Moodle's worksheet is the assignment's)
LMS_ASSIGNMENT_COLUMN: Final[str] = "W4 Optimization"
# what a roster student without a submission gets in the LMS file: "zero" (0 points) or "blank" (no change)
MISSING_SUBMISSION: Final[str] = "zero"

# --- Similarity report (similarity.html; autograder/grading/similarity.py says how it compares) ---
SIMILARITY_CODE_KGRAM: Final[int] = 6  # tokens per code k-gram: about one short statement
SIMILARITY_TEXT_SHINGLE: Final[int] = 3  # words per free-text shingle: rarely repeated by independent writers
SIMILARITY_MIN_ANSWER_GRAMS: Final[int] = 10  # smaller answers are not compared (stubs, multiple choice)
SIMILARITY_MIN_SHARED_GRAMS: Final[int] = 15  # a flagged pair shares at least this many grams
# Calibrated on the examples, mutants and tests/similarity/: same-origin pairs score >= 0.81,
# independent ones <= 0.08 (a single independent answer <= 0.34, a disguised copy's >= 0.77)
SIMILARITY_THRESHOLD: Final[float] = 0.5  # pooled score that flags a pair
SIMILARITY_ANSWER_THRESHOLD: Final[float] = 0.7  # one answer this close flags the pair (a copied essay)

# --- Pages that show students' text (feedback, formgrader, manual sheets, similarity) ---
# A text longer than this is cut where it is shown, with a note (the submission keeps all of it):
# a free-text answer is about 1,000 characters and the notebook's longest cell about 5,000.
SHOWN_TEXT_CHARS: Final[int] = 20_000

# --- Grading -------------------------------------------------------------------------
CELL_TIMEOUT_S: Final[int] = 60  # one cell, at least; the slowest test cell takes about 2 s on 2 cores
SUBMISSION_TIMEOUT_S: Final[int] = 600  # a whole notebook, all cells, at least
# On a slow or loaded machine the limits grow: a cell may run TIMEOUT_SCALE times as long as the
# reference's same cell took in this run's canary (and a notebook TIMEOUT_SCALE times the whole).
TIMEOUT_SCALE: Final[int] = 20
# "auto": the kernel uses CUDA when torch.cuda.is_available(), the CPU otherwise. "cpu"
# hides GPUs from the kernel (CUDA_VISIBLE_DEVICES=""), for reproducing a CPU grade.
DEVICE_POLICY: Final[str] = "auto"
# Untrusted code: "auto" sandboxes each kernel when the grader runs as root on Linux with
# bubblewrap (own user, no network, a file system of what the kernel needs and nothing else,
# limits; see autograder/kernel/sandbox.py) and says loudly when it cannot, "require" refuses to grade
# without it, "off" runs kernels as the grader's user (a trusted machine only).
SANDBOX: Final[str] = "auto"
# Warm kernels (autograder/kernel/zygote.py): each worker keeps a Python that has imported the notebook's
# stack and forks it, isolated, for every kernel, instead of starting a kernel from scratch.
WARM_KERNELS: Final[bool] = True
SANDBOX_UID_BASE: Final[int] = 61000  # kernel users: the first free ids from here (one per worker)
KERNEL_MEMORY_MB: Final[int] = 3072  # a kernel with torch and the MNIST subset peaks near 1 GB
KERNEL_MAX_PROCESSES: Final[int] = 256  # threads count too; a fork bomb stops here
# the grading worker (nbgrader, the judge) in a memory cgroup of its own; it holds about 0.4 GB of its own
WORKER_MEMORY_MB: Final[int] = 1536
KERNEL_SCRATCH_MB: Final[int] = 512  # the kernel's writable home and /tmp (each a tmpfs of this size)
# CPU threads of each grading kernel (torch, OpenMP), at most the cores per worker. The tests' tiny
# networks gain nothing from a second thread (3.3 s per submission with 1 or 2 on 2 cores), whose
# OpenMP spin-waits burned 2 CPU-seconds per submission that a second worker can use instead.
KERNEL_THREADS: Final[int] = 1
# What a kernel may send back, counted by the grader before nbgrader reads it (outputs beyond a limit
# are dropped, with a note; a larger message is refused by the socket unread). The notebook's own
# outputs (a few figures and progress bars) total about 0.3 MB.
OUTPUT_CELL_MAX_BYTES: Final[int] = 2 * 10**6
OUTPUT_NOTEBOOK_MAX_BYTES: Final[int] = 20 * 10**6
KERNEL_MESSAGE_MAX_BYTES: Final[int] = 8 * 2**20  # also bounds an answer to the grader's questions
KERNEL_MESSAGE_QUEUE: Final[int] = 32  # messages the grader queues unread (more are dropped by the kernel's side)
CALIBRATION_SEEDS: Final[int] = 20  # seeds the reference runs through each convergence test
CALIBRATION_DIR: Final[Path] = ROOT / "autograder" / "calibration"
