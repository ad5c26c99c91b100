"""The similarity report: copies are flagged, independent solutions are not, bad files are skipped.

Real notebooks, no kernel: the example submissions and mutants (all made from one reference, so
alike by construction), and ``tests/similarity/`` (solutions written independently of it by
``make_variants.py``; they pass every hidden test of the source notebook). The renamed and
reformatted copy is made here, in memory, from the reference.

    .venv/bin/python -m pytest tests/test_similarity.py -q -s   # -s prints the calibration table
"""
from __future__ import annotations

import copy
import io
import itertools
import json
import re
import statistics
import textwrap
import tokenize
from pathlib import Path

import nbformat
import pytest

import course_config as cfg
from autograder.grading import similarity
from autograder.grading.similarity import similarity_report, write_similarity_html

ROOT = Path(__file__).resolve().parents[1]
VARIANTS_DIR = ROOT / "tests" / "similarity"
REFERENCE = cfg.EXAMPLES_DIR / "reference.ipynb"
BLANK = cfg.EXAMPLES_DIR / "blank.ipynb"
INDEPENDENT = {"independent_sequential": VARIANTS_DIR / "independent_sequential.ipynb",
               "independent_modulelist": VARIANTS_DIR / "independent_modulelist.ipynb"}

# What a copier renames: locals, parameters and the attributes the answer itself assigns.
RENAMES = {"x": "inp", "fc1": "first", "fc2": "second", "fc3": "third", "fc4": "fourth", "fc5": "head",
           "bn1": "norm_a", "bn2": "norm_b", "bn3": "norm_c", "bn4": "norm_d", "dropout": "drop",
           "pairs": "stages", "linear": "lin", "norm": "bn", "layer": "lyr", "m_new": "velocity",
           "w_new": "updated", "group": "g", "p": "param", "state": "memory", "m": "buf", "copies": "n_copies",
           "model": "net"}


def rename(source: str) -> str:
    """``source`` with the names in RENAMES changed, except attributes the answer does not assign
    (``self.state`` is the optimizer's, not the student's)."""
    assigned = set(re.findall(r"\.(\w+)\s*=[^=]", source))
    tokens = list(tokenize.generate_tokens(io.StringIO(source).readline))
    out = []
    for index, tok in enumerate(tokens):
        after_dot = index > 0 and tokens[index - 1].string == "."
        if tok.type == tokenize.NAME and tok.string in RENAMES and (not after_dot or tok.string in assigned):
            tok = tok._replace(string=RENAMES[tok.string])
        out.append(tok)
    return tokenize.untokenize(out)


def reformat(source: str) -> str:
    """Another layout: comments dropped and one added, 2-space indents, single quotes, tight operators,
    no blank lines, the long calls split over lines with a trailing comma (as black does)."""
    lines = []
    for line in source.splitlines():
        code = line.split("#", 1)[0].rstrip() if "#" in line and "f\"" not in line else line.rstrip()
        if not code.strip():
            continue
        indent = len(code) - len(code.lstrip(" "))
        code = " " * (indent // 2) + code.strip()
        code = code.replace('"', "'").replace(" * ", "*").replace(" - ", "-").replace(" + ", "+")
        if code.strip().startswith("self.") and "nn.Linear(" in code:
            head, args = code.rstrip(")").split("nn.Linear(")
            pad = " " * (len(head) - len(head.lstrip()) + 2)
            code = f"{head}nn.Linear(\n" + ",\n".join(pad + a.strip() for a in args.split(",")) + ",\n" + \
                head[:len(head) - len(head.lstrip())] + ")"
        lines.append(code)
    return "# my own solution\n" + "\n".join(lines) + "\n"


def reword(text: str) -> str:
    """A free-text answer re-wrapped, re-cased and lightly edited, as a copier hides a copy."""
    text = " ".join(text.split()).replace(" e.g. ", " for example ").replace("; ", ". ")
    return textwrap.fill(text[0].lower() + text[1:] + " That is my answer.", width=70)


def disguised_copy(source: Path, dest: Path) -> Path:
    """A copy of ``source`` with every answer renamed and reformatted (code) or reworded (text)."""
    nb = copy.deepcopy(nbformat.read(source, as_version=4))
    for cell in nb.cells:
        if cell.metadata.get("nbgrader", {}).get("solution"):
            cell.source = reword(cell.source) if cell.cell_type == "markdown" else reformat(rename(cell.source))
    nbformat.write(nb, dest)
    return dest


def pair_of(pairs: list[similarity.Pair], a: str, b: str) -> similarity.Pair:
    found = [p for p in pairs if {p.student_a, p.student_b} == {a, b}]
    assert len(found) == 1, f"expected one pair {a} / {b}, got {len(found)}"
    return found[0]


@pytest.mark.fast
def test_renamed_and_reformatted_copy_is_flagged(tmp_path):
    copied = disguised_copy(REFERENCE, tmp_path / "copy.ipynb")
    # the disguise is real: it still compiles, and most lines differ from the original as text
    nb, ref = nbformat.read(copied, as_version=4), nbformat.read(REFERENCE, as_version=4)
    for cell, original in zip(nb.cells, ref.cells):
        if cell.metadata.get("nbgrader", {}).get("grade_id") in ("ex1_memory", "ex2_bn_models", "ex3_momentum"):
            compile(cell.source, "copy", "exec")
            same_lines = set(cell.source.splitlines()) & set(original.source.splitlines())
            assert len(same_lines) <= 3, same_lines
    pairs = similarity_report([("reference", REFERENCE), ("copy", copied)])
    pair = pair_of(pairs, "reference", "copy")
    assert pair.flagged and pair.score >= cfg.SIMILARITY_THRESHOLD, pair.reason
    for grade_id in ("ex1_memory", "ex2_bn_models", "ex3_momentum", "q_bn_helped_or_hurt"):
        assert pair.answers[grade_id].similarity >= cfg.SIMILARITY_ANSWER_THRESHOLD, (grade_id, pair.answers[grade_id])


@pytest.mark.fast
def test_normalisation_ignores_names_layout_and_comments():
    release = similarity.read_release()
    original = ("def momentum_update(w, grad, m, lr, beta):\n"
                "    m_new = grad + beta * m  # the buffer\n"
                "    w_new = w - lr * m_new\n"
                "    return w_new, m_new\n")
    disguised = ("def momentum_update(a,b,c,d,e):\n\n"
                 "  # step\n  v=b+e*c\n  u = a-\\\n    d*v\n  return u,v\n")
    grams = [similarity.student_grams(s, "code", "ex3_momentum", release) for s in (original, disguised)]
    assert grams[0] and grams[0] == grams[1]
    # library names are not the student's: a different call is a different answer
    assert similarity.normalise(similarity.python_tokens("y = torch.sigmoid(x)"), release.kept_names) == \
        [("V", "=", "torch", ".", "sigmoid", "(", "V", ")")]


@pytest.mark.fast
def test_two_independent_correct_solutions_are_not_flagged():
    pairs = similarity_report([("reference", REFERENCE), *INDEPENDENT.items()])
    assert len(pairs) == 3
    for pair in pairs:
        assert not pair.flagged, (pair.student_a, pair.student_b, pair.reason)
        assert pair.score < cfg.SIMILARITY_THRESHOLD / 2, (pair.student_a, pair.student_b, pair.score)
        # they did write the same exercises: every code answer and free-text answer was compared
        assert {"ex1_memory", "ex2_bn_models", "ex3_momentum", "q_bn_learnable_ab"} <= pair.answers.keys()


@pytest.mark.fast
def test_one_copied_free_text_answer_flags_the_pair(tmp_path):
    nb = nbformat.read(INDEPENDENT["independent_sequential"], as_version=4)
    reference = similarity.answer_cells(nbformat.read(REFERENCE, as_version=4))
    similarity.answer_cells(nb)["q_bn_helped_or_hurt"].source = reference["q_bn_helped_or_hurt"].source
    nbformat.write(nb, tmp_path / "borrowed.ipynb")
    pair = similarity_report([("reference", REFERENCE), ("borrowed", tmp_path / "borrowed.ipynb")])[0]
    assert pair.flagged and pair.score < cfg.SIMILARITY_THRESHOLD
    assert pair.reason.startswith("q_bn_helped_or_hurt"), pair.reason


@pytest.mark.fast
def test_release_code_stubs_and_multiple_choice_do_not_count():
    release = similarity.read_release()
    nb = nbformat.read(cfg.RELEASE_NOTEBOOK, as_version=4)
    for grade_id, cell in similarity.answer_cells(nb).items():
        assert not similarity.student_grams(cell.source, cell.cell_type, grade_id, release), grade_id
    assert similarity.read_answers(BLANK, release) == {}
    # every right multiple-choice answer is the same: too short to say anything
    answers = similarity.read_answers(REFERENCE, release)
    assert "mcq_minibatch" not in answers and "mcq_momentum" not in answers
    assert {"ex1_memory", "ex2_bn_models", "ex3_momentum", "q_delivery_strategy"} <= answers.keys()


@pytest.mark.fast
def test_unreadable_submissions_are_skipped(tmp_path):
    (tmp_path / "not_json.ipynb").write_text("this is not a notebook {")
    (tmp_path / "not_notebook.ipynb").write_text(json.dumps({"cells": "nope"}))
    (tmp_path / "binary.ipynb").write_bytes(b"\xff\xfe\x00garbage")
    broken = copy.deepcopy(nbformat.read(REFERENCE, as_version=4))
    code = similarity.answer_cells(broken)["ex3_momentum"]
    code.source = code.source.replace("return w_new, m_new", "return w_new, (m_new")  # does not tokenize
    nbformat.write(broken, tmp_path / "syntax_error.ipynb")
    submissions = [("a", tmp_path / "not_json.ipynb"), ("b", tmp_path / "not_notebook.ipynb"),
                   ("c", tmp_path / "binary.ipynb"), ("d", tmp_path / "missing.ipynb"),
                   ("ref", REFERENCE), ("broken", tmp_path / "syntax_error.ipynb")]
    pairs = similarity_report(submissions)
    assert [(p.student_a, p.student_b) for p in pairs] == [("ref", "broken")]
    assert pairs[0].flagged and pairs[0].answers["ex3_momentum"].similarity > 0.8


@pytest.mark.fast
def test_html_is_escaped_ranked_and_side_by_side(tmp_path):
    evil = "<script>alert(1)</script>"
    nb = copy.deepcopy(nbformat.read(REFERENCE, as_version=4))
    cell = similarity.answer_cells(nb)["q_good_descent"]
    cell.source += f"\n{evil} <img src=x onerror=alert(2)>"
    nbformat.write(nb, tmp_path / "evil.ipynb")
    pairs = similarity_report([(evil, tmp_path / "evil.ipynb"), ("reference", REFERENCE),
                               *INDEPENDENT.items()])
    assert [p.flagged for p in pairs] == [True] + [False] * 5  # flagged first
    assert [p.score for p in pairs[1:]] == sorted((p.score for p in pairs[1:]), reverse=True)
    page = write_similarity_html(pairs, tmp_path / "out" / "similarity.html").read_text()
    assert "<script" not in page and "<img" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert f"score at least {cfg.SIMILARITY_THRESHOLD}" in page
    assert page.count("<td class=side>") == 2 * len(pairs[0].answers)  # both answers of each grade id
    assert "independent_sequential" in page  # unflagged pairs are listed too, without details
    assert write_similarity_html(pairs, tmp_path / "top1.html", top=1).read_text().count("<tr class=") == 1


def corpus() -> list[tuple[str, Path]]:
    """Examples, mutants and independent variants, named by their file stem."""
    files = [*sorted(cfg.EXAMPLES_DIR.glob("*.ipynb")), *sorted((ROOT / "tests" / "mutants").glob("*.ipynb")),
             *INDEPENDENT.values()]
    return [(path.stem, path) for path in files]


def test_calibration_same_origin_flagged_independent_not():
    """Everything made from the reference is flagged against each other; nothing independent is;
    blank never. Prints the scores that justify the thresholds (pytest -s)."""
    pairs = similarity_report(corpus())
    groups: dict[str, list[similarity.Pair]] = {"same origin": [], "independent vs same origin": [],
                                               "independent vs independent": [], "with blank": []}
    for pair in pairs:
        names = {pair.student_a, pair.student_b}
        independent = len(names & INDEPENDENT.keys())
        group = "with blank" if "blank" in names else ["same origin", "independent vs same origin",
                                                        "independent vs independent"][independent]
        groups[group].append(pair)
    print(f"\n{'pairs':28} {'n':>5} {'min':>5} {'median':>6} {'max':>5} {'max answer':>10} {'flagged':>8}")
    for name, group in groups.items():
        scores = [p.score for p in group]
        top = max(m.similarity for p in group for m in p.answers.values()) if any(p.answers for p in group) else 0
        print(f"{name:28} {len(group):5} {min(scores):5.2f} {statistics.median(scores):6.2f} {max(scores):5.2f} "
              f"{top:10.2f} {sum(p.flagged for p in group):8}")
    assert len(groups["same origin"]) > 500 and all(p.flagged for p in groups["same origin"])
    assert min(p.score for p in groups["same origin"]) >= cfg.SIMILARITY_THRESHOLD + 0.2
    assert not any(p.flagged for g in ("independent vs same origin", "independent vs independent", "with blank")
                   for p in groups[g])
    assert max(p.score for p in groups["independent vs same origin"]) <= cfg.SIMILARITY_THRESHOLD - 0.3
    assert all(p.score == 0 and not p.answers for p in groups["with blank"])


def test_adversarial_corpus_does_not_break_it():
    files = sorted((ROOT / "tests" / "adversarial").glob("*.ipynb"))
    pairs = similarity_report([(p.stem, p) for p in files] + [("reference", REFERENCE)])
    assert len(pairs) == len(files) * (len(files) + 1) // 2


@pytest.mark.fast
def test_variants_are_reproducible():
    from tests.similarity.make_variants import main
    assert main(["--check"]) == 0, "rerun tests/similarity/make_variants.py"


@pytest.mark.fast
@pytest.mark.parametrize("a, b", itertools.combinations(INDEPENDENT, 2))
def test_variants_differ_in_structure_not_only_names(a, b):
    """Guard the fixtures themselves: independent means different code, not a renamed copy."""
    release = similarity.read_release()
    first, second = (similarity.read_answers(INDEPENDENT[name], release) for name in (a, b))
    for grade_id in ("ex2_bn_models", "ex3_momentum"):
        common = first[grade_id].grams & second[grade_id].grams
        assert len(common) / len(first[grade_id].grams | second[grade_id].grams) < 0.2, grade_id
