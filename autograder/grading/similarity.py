"""Pairs of submissions whose answers are suspiciously alike: ``similarity.html`` of ``grade``.

Reads the submitted notebooks and the release notebook; compares only what each student wrote
in the answer cells (nbgrader ``solution`` cells, matched to the release by grade id), never the
release's own given code, stubs or question text. Nothing is executed.

- **Code answers** are tokenized (``tokenize``; a regex when the code does not tokenize) and
  normalised: comments, blank lines and layout go; every name the student chose (variables,
  parameters, helper functions, attributes they assign such as ``self.fc1``) becomes ``V``;
  strings become ``S``; keywords, builtins, the names the release defines at top level
  (``Net``, ``momentum_update``, ``nn``, ``F``...) and library attributes (``.numel``,
  ``nn.Linear``) stay. Logical lines equal to a line of the release's own cell (given code,
  ``raise NotImplementedError()``) are dropped, then the answer becomes its set of token
  ``course_config.SIMILARITY_CODE_KGRAM``-grams, minus every k-gram of the release's code.
- **Free-text answers** (``q_*`` markdown) become their set of lower-case word
  ``course_config.SIMILARITY_TEXT_SHINGLE``-grams, minus those of the release's markdown (the
  questions, *YOUR ANSWER HERE*).

An answer counts only with at least ``course_config.SIMILARITY_MIN_ANSWER_GRAMS`` grams left, so a
stub left alone, a multiple-choice cell (every right answer is the same four booleans) or a one-liner never
makes two students look alike. Per answer both students wrote, the similarity is the Jaccard
index of their gram sets; the pair's score pools them (shared grams over all grams of those
answers), so long answers weigh more than short ones. A pair is flagged when its score reaches
``course_config.SIMILARITY_THRESHOLD`` or one substantial answer reaches
``course_config.SIMILARITY_ANSWER_THRESHOLD``, in both cases with at least ``course_config.SIMILARITY_MIN_SHARED_GRAMS`` grams in common.

    from autograder.grading.similarity import similarity_report, write_similarity_html
    pairs = similarity_report([("alice", Path("alice.ipynb")), ("bob", Path("bob.ipynb"))])
    write_similarity_html(pairs, Path("out/similarity.html"))

Calibration (``pytest tests/test_similarity.py -s`` prints it): the example submissions and
mutants, all made from one reference, score 0.81 to 1.00 against each other, a renamed and
reformatted copy of the reference 0.94; independently written solutions (``tests/similarity/``)
score 0.00 to 0.08 against those and each other, no single answer above 0.34.
"""
from __future__ import annotations

import ast
import builtins
import io
import itertools
import keyword
import logging
import re
import tokenize
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

import nbformat

import course_config as cfg
from autograder.errors import InputError
from autograder.notebook_code import is_test_cell, nbgrader_meta
from autograder.pages import render, write_page
from autograder.grading.submissions import read_notebook
from autograder.text import REPLACEMENT

log = logging.getLogger(__name__)

KEPT_NAMES = frozenset(keyword.kwlist) | frozenset(keyword.softkwlist) | frozenset(dir(builtins)) | {"self", "cls"}
NAME, NUMBER, STRING, OP = "name", "number", "string", "op"
FALLBACK_TOKEN = re.compile(r"""[^\W\d]\w*|\d[\w.]*|"[^"\n]*"|'[^'\n]*'|\*\*|//|[-+*/%@<>=!]=|->|\S""")
SKIPPED_TOKENS = {tokenize.COMMENT, tokenize.NL, tokenize.INDENT, tokenize.DEDENT, tokenize.ENCODING,
                  tokenize.ENDMARKER}


class Token(NamedTuple):
    kind: str  # NAME, NUMBER, STRING or OP
    text: str


def python_tokens(source: str) -> list[list[Token]]:
    """The logical lines of ``source`` as tokens, without comments or layout.

    Code that ``tokenize`` rejects (a syntax error, an IPython magic) falls back to a regex,
    one physical line per logical line: a broken answer can still be a copied one.
    """
    lines: list[list[Token]] = [[]]
    try:
        for tok in tokenize.generate_tokens(io.StringIO(source).readline):
            if tok.type == tokenize.NEWLINE:
                lines.append([])
            elif tok.type in SKIPPED_TOKENS or not tok.string.strip():
                continue
            elif tok.type == tokenize.NAME:
                lines[-1].append(Token(NAME, tok.string))
            elif tok.type == tokenize.NUMBER:
                lines[-1].append(Token(NUMBER, tok.string))
            elif tok.type == tokenize.STRING:
                lines[-1].append(Token(STRING, tok.string))
            else:
                lines[-1].append(Token(OP, tok.string))
    except (tokenize.TokenError, SyntaxError, ValueError):  # IndentationError is a SyntaxError
        lines = []
        for physical in source.splitlines():
            physical = physical.split("#", 1)[0]
            found = []
            for text in FALLBACK_TOKEN.findall(physical):
                kind = NAME if text[0].isalpha() or text[0] == "_" else NUMBER if text[0].isdigit() else \
                    STRING if text[0] in "'\"" else OP
                found.append(Token(kind, text))
            lines.append(found)
    return [line for line in lines if line]


def normalise(lines: list[list[Token]], kept_names: frozenset[str]) -> list[tuple[str, ...]]:
    """Logical lines with every student-chosen name as ``V``, every string as ``S``, no trailing comma.

    A name stays when it is in ``kept_names`` (keywords, builtins, the release's top-level
    names), when it is a keyword argument (``dim=1``), or when it follows a dot and the answer
    never assigns it (``p.numel``, ``nn.Linear``; not ``self.fc1 = ...``).
    """
    flat = [tok for line in lines for tok in line]
    assigned_attributes = {flat[i].text for i in range(1, len(flat) - 1)
                           if flat[i].kind == NAME and flat[i - 1].text == "." and flat[i + 1].text == "="}
    result, position = [], 0
    for line in lines:
        out, depth = [], 0  # a bracket left open by broken code must not reach the next line
        for tok in line:
            before = flat[position - 1].text if position else ""
            after = flat[position + 1].text if position + 1 < len(flat) else ""
            position += 1
            if tok.kind == OP:
                depth += 1 if tok.text in ("(", "[", "{") else -1 if tok.text in (")", "]", "}") else 0
                if not (tok.text == "," and after in (")", "]", "}")):  # a trailing comma is layout
                    out.append(tok.text)
            elif tok.kind == STRING:
                out.append("S")
            elif tok.kind == NUMBER:
                out.append(tok.text.lower().replace("_", ""))
            elif before == ".":
                out.append("V" if tok.text in assigned_attributes else tok.text)
            elif tok.text in kept_names or (depth > 0 and after == "="):
                out.append(tok.text)
            else:
                out.append("V")
        result.append(tuple(out))
    return result


def words(text: str) -> list[str]:
    """Lower-case words and numbers of a free-text answer, without markdown or punctuation."""
    return re.findall(r"[a-z0-9]+", text.lower())


def grams(sequence: list[str] | tuple[str, ...], size: int) -> set[int]:
    """Hashes of the ``size``-grams of ``sequence`` (the whole sequence if it is shorter)."""
    if len(sequence) < size:
        return {hash(tuple(sequence))} if sequence else set()
    return {hash(tuple(sequence[i:i + size])) for i in range(len(sequence) - size + 1)}


def top_level_names(source: str) -> set[str]:
    """Names a cell defines at module level: imports, functions, classes, assigned variables."""
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError):  # a magic (%matplotlib) or a null byte: no names from this cell
        return set()
    names = set()
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            names.update((alias.asname or alias.name).split(".")[0] for alias in node.names)
        elif isinstance(node, (ast.Assign, ast.AnnAssign, ast.AugAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names.update(n.id for t in targets for n in ast.walk(t) if isinstance(n, ast.Name))
    return names


def answer_cells(nb: nbformat.NotebookNode) -> dict[str, nbformat.NotebookNode]:
    """Answer cells (nbgrader ``solution`` cells) by grade id; the first one of a repeated id."""
    cells: dict[str, nbformat.NotebookNode] = {}
    for cell in nb.cells:
        meta = nbgrader_meta(cell)
        if meta.get("solution") and isinstance(meta.get("grade_id"), str):
            cells.setdefault(meta["grade_id"], cell)
    return cells


@dataclass(frozen=True)
class Release:
    """What every student received, read once from the release notebook."""

    kinds: dict[str, str]  # answer grade id -> "code" or "markdown"
    given_lines: dict[str, frozenset[tuple[str, ...]]]  # grade id -> normalised logical lines of its release cell
    kept_names: frozenset[str]  # names that stay as written (see ``normalise``)
    code_grams: frozenset[int]  # every k-gram of the release's code cells
    text_grams: frozenset[int]  # every shingle of the release's markdown cells


def read_release(release_notebook: Path = cfg.RELEASE_NOTEBOOK) -> Release:
    """The answer cells, given code and vocabulary of ``release_notebook``.

    Raises ``ValueError`` naming the file when it holds no answer cell.
    """
    nb = nbformat.read(release_notebook, as_version=4)
    kept = set(KEPT_NAMES)
    for cell in nb.cells:  # a test cell's names (w, m_new, model...) are the students' names too
        if cell.cell_type == "code" and not is_test_cell(cell):
            kept |= top_level_names(cell.source)
    kept_names = frozenset(kept)
    code_grams: set[int] = set()
    text_grams: set[int] = set()
    for cell in nb.cells:
        if cell.cell_type == "code":
            code_grams |= grams([t for line in normalise(python_tokens(cell.source), kept_names) for t in line],
                                cfg.SIMILARITY_CODE_KGRAM)
        elif cell.cell_type == "markdown":
            text_grams |= grams(words(cell.source), cfg.SIMILARITY_TEXT_SHINGLE)
    cells = answer_cells(nb)
    if not cells:
        raise InputError(f"{release_notebook}: no answer cell (nbgrader solution cell); is it the release notebook?")
    given = {gid: frozenset(normalise(python_tokens(cell.source), kept_names))
             for gid, cell in cells.items() if cell.cell_type == "code"}
    return Release({gid: cell.cell_type for gid, cell in cells.items()}, given, kept_names,
                   frozenset(code_grams), frozenset(text_grams))


@dataclass(frozen=True)
class AnswerGrams:
    """One student's answer as the comparison sees it (``manual.Answer`` is the answer a grader marks)."""
    text: str  # the cell as the student left it
    grams: frozenset[int]  # what the student wrote, as k-grams (code) or shingles (free text)


def student_grams(source: str, kind: str, grade_id: str, release: Release) -> frozenset[int]:
    """The grams of one answer cell that the student wrote, not the release."""
    if kind == "markdown":
        return frozenset(grams(words(source), cfg.SIMILARITY_TEXT_SHINGLE) - release.text_grams)
    given = release.given_lines.get(grade_id, frozenset())
    lines = [line for line in normalise(python_tokens(source), release.kept_names) if line not in given]
    return frozenset(grams([t for line in lines for t in line], cfg.SIMILARITY_CODE_KGRAM) - release.code_grams)


def read_answers(notebook: Path, release: Release) -> dict[str, AnswerGrams] | None:
    """The answers of one submission worth comparing, by grade id; None if it cannot be read.

    Answers with fewer than ``course_config.SIMILARITY_MIN_ANSWER_GRAMS`` student-written grams are left out. The
    release decides whether a cell is code or free text, whatever the student turned it into.
    """
    try:
        cells = answer_cells(read_notebook(notebook))
    except Exception as error:  # not JSON, not a notebook, unreadable: graded 0 with the reason by submissions.py
        log.debug("%s: skipped in the similarity report (%s)", notebook, error)
        return None
    answers = {}
    for grade_id, kind in release.kinds.items():
        source = cells[grade_id].get("source", "") if grade_id in cells else ""
        if not isinstance(source, str):  # a hand-edited notebook can hold anything here
            continue
        found = student_grams(source, kind, grade_id, release)
        if len(found) >= cfg.SIMILARITY_MIN_ANSWER_GRAMS:
            answers[grade_id] = AnswerGrams(source, found)
    return answers


class AnswerMatch(NamedTuple):
    similarity: float  # Jaccard index of the two answers' grams
    answer_a: str  # the answer cell of student_a, as written
    answer_b: str


@dataclass
class Pair:
    student_a: str
    student_b: str
    score: float  # shared grams / all grams, over the answers both wrote (0 when none)
    flagged: bool
    answers: dict[str, AnswerMatch] = field(default_factory=dict)  # grade id -> match, answers both wrote
    shared: int = 0  # grams the two have in common, over those answers
    reason: str = ""  # why it is flagged ("" when it is not)


def compare(student_a: str, a: dict[str, AnswerGrams], student_b: str, b: dict[str, AnswerGrams]) -> Pair:
    """Score one pair of submissions and decide whether to flag it."""
    answers, shared, union, closest = {}, 0, 0, ("", 0.0, 0)
    for grade_id in a.keys() & b.keys():
        common = len(a[grade_id].grams & b[grade_id].grams)
        total = len(a[grade_id].grams | b[grade_id].grams)
        similarity = common / total
        answers[grade_id] = AnswerMatch(similarity, a[grade_id].text, b[grade_id].text)
        shared, union = shared + common, union + total
        if common >= cfg.SIMILARITY_MIN_SHARED_GRAMS and similarity > closest[1]:
            closest = (grade_id, similarity, common)
    score = shared / union if union else 0.0
    reason = ""
    if shared >= cfg.SIMILARITY_MIN_SHARED_GRAMS and score >= cfg.SIMILARITY_THRESHOLD:
        reason = f"score {score:.2f} over {len(answers)} answers ({shared} shared grams)"
    elif closest[1] >= cfg.SIMILARITY_ANSWER_THRESHOLD:
        reason = f"{closest[0]}: similarity {closest[1]:.2f} ({closest[2]} shared grams)"
    ordered = dict(sorted(answers.items(), key=lambda item: -item[1].similarity))
    return Pair(student_a, student_b, score, bool(reason), ordered, shared, reason)


class Ranking(list):
    """The pairs, best first (a ``list`` of ``Pair``), and ``notes`` naming the students that a grader
    should know about: left out (their notebook could not be read), or shown with repaired text."""

    def __init__(self, pairs: list[Pair] = (), notes: list[str] = ()):
        super().__init__(pairs)
        self.notes = list(notes)


def similarity_report(submissions: list[tuple[str, Path]], *,
                      release_notebook: Path = cfg.RELEASE_NOTEBOOK) -> Ranking:
    """Every pair of readable submissions, flagged pairs first, then by decreasing score.

    ``submissions``: (student id, notebook) pairs; a notebook that cannot be read, or whose answers
    cannot be compared, is left out with a note naming the student, and the others are compared.
    Each notebook is read and reduced to gram sets once, so a class of 300 (about 45,000 pairs)
    takes seconds.
    """
    release = read_release(release_notebook)
    students, notes = [], []
    for student_id, path in submissions:
        try:
            answers = read_answers(Path(path), release)
        except Exception as error:  # one student's notebook never stops the report of the others
            log.warning("%s: left out of the similarity report (%s: %s)", student_id, type(error).__name__, error)
            notes.append(f"{student_id}: left out, its answers could not be compared ({type(error).__name__}: {error})"[:300])
            continue
        if answers is None:
            notes.append(f"{student_id}: left out, its notebook could not be read (graded 0 with the reason)")
            continue
        if any(REPLACEMENT in answer.text for answer in answers.values()):
            notes.append(f"{student_id}: {REPLACEMENT} in its answers marks characters that no file can hold "
                         "(replaced when it was graded)")
        students.append((student_id, answers))
    pairs = [compare(sa, a, sb, b) for (sa, a), (sb, b) in itertools.combinations(students, 2)]
    pairs.sort(key=lambda p: (not p.flagged, -p.score, -max((m.similarity for m in p.answers.values()), default=0),
                              p.student_a, p.student_b))
    return Ranking(pairs, notes)


def write_similarity_html(pairs: list[Pair], path: Path, *, top: int = 100) -> Path:
    """Write the ranked pairs (the first ``top``) as one self-contained HTML page; return ``path``.

    Flagged pairs come first, highlighted, each followed further down by its answers side by
    side; the notes of a ``Ranking`` (students left out, text shown repaired) come first. The page
    is ``templates/similarity.html.j2``, rendered with autoescape: it holds no script and runs none.
    """
    page = render("similarity.html.j2", assignment=cfg.ASSIGNMENT_ID, cfg=cfg, shown_pairs=pairs[:top],
                  flagged=sum(p.flagged for p in pairs), total=len(pairs), notes=getattr(pairs, "notes", []))
    return write_page(path, page)
