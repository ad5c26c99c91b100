"""Sharding submissions across pods and merging the shards' output folders (no kernel needed)."""
from __future__ import annotations

import csv
import random
import shutil
from pathlib import Path

import pytest

import course_config as cfg
from autograder.grading.grade import GradeRow, graded_cells, write_grades
from autograder.grading.shards import merge, parse_shard, select_shard
from autograder.grading.submissions import Submission, find_submissions

AUTO_IDS, MANUAL_IDS = graded_cells()
STUDENTS = [f"student{i:03d}" for i in range(60)]


def submissions(ids: list[str]) -> list[Submission]:
    return [Submission(sid, Path(f"{sid}.ipynb")) for sid in ids]


@pytest.mark.parametrize("spec, expected", [("0/4", (0, 4)), (" 3 / 4 ", (3, 4)), ("0/1", (0, 1))])
def test_parse_shard_reads_index_and_count(spec, expected):
    assert parse_shard(spec) == expected


@pytest.mark.parametrize("spec, message", [
    ("4/4", "outside 0..3"), ("7/4", "outside 0..3"), ("1/0", "at least 1"),
    ("-1/4", "expected i/N"), ("3of4", "expected i/N"), ("a/b", "expected i/N"), ("", "expected i/N"),
])
def test_parse_shard_rejects_bad_specs_with_the_fix(spec, message):
    with pytest.raises(ValueError, match=message):
        parse_shard(spec)


@pytest.mark.parametrize("index, count", [(0, 0), (2, 2), (-1, 3), (True, 2), (0, 2.0)])
def test_select_shard_checks_its_arguments(index, count):
    with pytest.raises(ValueError):
        select_shard(submissions(STUDENTS), index, count)


@pytest.mark.parametrize("count", [1, 2, 3, 4, 7])
def test_every_student_falls_in_exactly_one_shard(count):
    shards = [{s.student_id for s in select_shard(submissions(STUDENTS), i, count)} for i in range(count)]
    assert sum(len(shard) for shard in shards) == len(STUDENTS)
    assert set().union(*shards) == set(STUDENTS)


def test_shards_do_not_depend_on_file_order_or_on_other_students():
    shuffled = STUDENTS[:]
    random.Random(0).shuffle(shuffled)
    for i in range(4):
        ids = [s.student_id for s in select_shard(submissions(STUDENTS), i, 4)]
        assert {s.student_id for s in select_shard(submissions(shuffled), i, 4)} == set(ids)
        # a late submission moves no one else to another shard
        with_late = {s.student_id for s in select_shard(submissions(STUDENTS + ["late_one"]), i, 4)}
        assert with_late - {"late_one"} == set(ids)


def test_shards_are_reasonably_balanced():
    sizes = [len(select_shard(submissions(STUDENTS), i, 4)) for i in range(4)]
    assert min(sizes) >= 5, sizes  # 60 students in 4 shards: about 15 each, by hash


def test_select_shard_on_found_submissions_keeps_their_order(tmp_path):
    for name in ["ada", "bob", "cy", "dee", "eve"]:
        shutil.copy(cfg.RELEASE_NOTEBOOK, tmp_path / f"{name}.ipynb")
    found = find_submissions(tmp_path)
    for i in range(2):
        chosen = select_shard(found, i, 2)
        assert chosen == [s for s in found if s in chosen]


def row(student: str, score: float, status: str = "graded") -> GradeRow:
    cells = {gid: (cfg.POINTS[gid] if score else 0.0) for gid in AUTO_IDS} | {gid: None for gid in MANUAL_IDS}
    return GradeRow(student, score, sum(cfg.POINTS[g] for g in AUTO_IDS), cells, status)


def shard_folder(folder: Path, rows: list[GradeRow]) -> Path:
    """A `grade --out` folder: grades.csv and one feedback page per student."""
    (folder / "feedback").mkdir(parents=True)
    write_grades(rows, folder / "grades.csv", AUTO_IDS, MANUAL_IDS)
    for r in rows:
        (folder / "feedback" / f"{r.student_id}.html").write_text(f"<p>{r.student_id}</p>")
    return folder


def read_csv(path: Path) -> list[list[str]]:
    with open(path, newline="") as f:
        return list(csv.reader(f))


def test_merge_combines_grades_and_feedback(tmp_path):
    a = shard_folder(tmp_path / "shard-0", [row("carol", 21), row("alice", 0)])
    b = shard_folder(tmp_path / "shard-1", [row("bob", 21), row("dave", 0, "error: dave.ipynb: not valid JSON")])
    path = merge([a, b], tmp_path / "merged")
    assert path == tmp_path / "merged" / "grades.csv"
    table = read_csv(path)
    assert table[0] == read_csv(a / "grades.csv")[0]
    assert [r[0] for r in table[1:]] == ["alice", "bob", "carol", "dave"]
    assert table[4][table[0].index("status")] == "error: dave.ipynb: not valid JSON"
    assert sorted(p.name for p in (tmp_path / "merged" / "feedback").iterdir()) == [
        "alice.html", "bob.html", "carol.html", "dave.html"]
    assert not list((tmp_path / "merged").glob("*.tmp"))


def test_merge_accepts_an_empty_shard(tmp_path):
    a = shard_folder(tmp_path / "shard-0", [row("alice", 21)])
    b = shard_folder(tmp_path / "shard-1", [])
    assert [r[0] for r in read_csv(merge([a, b], tmp_path / "merged"))[1:]] == ["alice"]


def test_merge_names_both_folders_of_a_student_graded_twice(tmp_path):
    a = shard_folder(tmp_path / "shard-0", [row("alice", 21)])
    b = shard_folder(tmp_path / "shard-1", [row("alice", 0)])
    with pytest.raises(ValueError, match="'alice' was graded in two shards") as error:
        merge([a, b], tmp_path / "merged")
    assert str(a) in str(error.value) and str(b) in str(error.value)
    assert not (tmp_path / "merged" / "grades.csv").exists()


def test_merge_names_the_file_whose_header_differs(tmp_path):
    a = shard_folder(tmp_path / "shard-0", [row("alice", 21)])
    b = tmp_path / "shard-1"
    b.mkdir()
    write_grades([row("bob", 21)], b / "grades.csv", AUTO_IDS[:-1], MANUAL_IDS)
    with pytest.raises(ValueError, match="header differs") as error:
        merge([a, b], tmp_path / "merged")
    assert str(b / "grades.csv") in str(error.value) and AUTO_IDS[-1] in str(error.value)


def test_merge_rejects_missing_and_misused_folders(tmp_path):
    a = shard_folder(tmp_path / "shard-0", [row("alice", 21)])
    (tmp_path / "shard-1").mkdir()
    with pytest.raises(ValueError, match="shard-1/grades.csv: no such file"):
        merge([a, tmp_path / "shard-1"], tmp_path / "merged")
    with pytest.raises(ValueError, match="not a folder"):
        merge([a, tmp_path / "nowhere"], tmp_path / "merged")
    with pytest.raises(ValueError, match="also a shard folder"):
        merge([a], a)
    with pytest.raises(ValueError, match="given twice"):
        merge([a, a], tmp_path / "merged")
    with pytest.raises(ValueError, match="at least one shard"):
        merge([], tmp_path / "merged")
