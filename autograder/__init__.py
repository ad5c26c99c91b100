"""The week-4 autograder: data, release, grading and reports (see README.md).

Layers. Each folder says where its code runs; an arrow is "may import", and nothing else is
allowed (``tests/test_layers.py`` reads every import, at module level and inside functions):

    foundation   the modules at the top of the package (text, csvfiles, notebook_code, pages,
                 sanitize, late, lms, data, errors, files): import no subpackage.
    kernel/      runs in or around the student's kernel: guard and probe (sent to the kernel by
                 their source), zygote (bound alone into the sandbox, started with ``python -S``),
                 sandbox (the kernelspec's launcher), processes (a sandbox user's, found and
                 killed). The standard library only at module level;
                 guard, probe and zygote import nothing of this package.
    grading/     -> foundation, kernel. The grader's processes: intake, nbgrader's steps, the
                 judge, the workers, the class run and its records.
    authoring/   -> foundation, kernel, grading. Before release: figures, release, calibration,
                 self-test, the students' check.
    marking/     -> foundation, grading. After grading: hand grading, final feedback, export.
    reports/     -> foundation, grading. Tables and figures of a run.
    platforms/   -> foundation, grading, reports. This grader packaged for Gradescope and for a
                 Slurm cluster, and the class folder merged from shards.

``__main__`` (the command line) may import every layer; ``settings`` is the public name that
``nbgrader_config.py`` files import, and re-exports ``grading/settings.py`` only. No two modules
import each other, directly or through others.
"""
import sys

# jsonschema, under nbformat, probes the optional package rfc3987_syntax, which compiles a grammar
# when imported: 0.75 s of every grader process's start on 2 cores, for the "iri" format check that
# nbformat and nbgrader never ask for. A None entry makes that probe an ImportError it expects.
sys.modules.setdefault("rfc3987_syntax", None)
