"""Command line of the week-4 autograder: a thin layer over the library.

    python -m autograder doctor [--out DIR]      what this machine gives the grader; the canary
    python -m autograder release [--check]       build release/ from source/ (and verify it)
    python -m autograder grade SUBMISSIONS --out DIR [--workers N] [--shard i/N] [--remove-missing]
    python -m autograder merge SHARD_DIR... --out DIR   combine the outputs of sharded runs
    python -m autograder slurm SUBMISSIONS --out DIR --tasks N [--gpus-per-task G] [--wait]   grade on Slurm
    python -m autograder formgrader RUN [--port P]       nbgrader's formgrader on a run, to grade by hand
    python -m autograder manual-sheet RUN --out DIR      free-response answers per question, a CSV to fill
    python -m autograder manual-import FILE.csv --run RUN   load hand-given points into the gradebook
    python -m autograder feedback RUN [--times FILE]     each student's final feedback: hand grades, comments, total
    python -m autograder export RUN --out FILE [--roster LMS.csv] [--times FILE]   final grades for the LMS
    python -m autograder gradescope-zip [--out FILE]     the Gradescope autograder zip
    python -m autograder demo [--out DIR]        release, then grade examples/submissions
    python -m autograder check NOTEBOOK          for students: visible tests, before submitting
    python -m autograder selftest                reference, blank and mutants graded as expected?
    python -m autograder calibrate [--seeds K]   convergence thresholds over K seeds
    python -m autograder make-data [--check] [--from DIR]   the MNIST subset shipped with the notebook
    python -m autograder figures [--quick]       the notebook's figures, from the full MNIST
"""
from __future__ import annotations

import argparse
import logging
import os
import shlex
import sys
from pathlib import Path

import course_config as cfg
from autograder.errors import InputError, SetupError

EXAMPLES = cfg.EXAMPLES_DIR


def cmd_release(args: argparse.Namespace) -> int:
    from autograder.authoring import release

    if not args.check:
        target = release.release()
        print(f"release written to {target.relative_to(cfg.ROOT)}")
    problems = release.check()
    for problem in problems:
        print(f"release problem: {problem}", file=sys.stderr)
    print("release check: " + ("FAILED" if problems else "no leak, no drift"))
    return 1 if problems else 0


def grade_and_report(submissions: Path, out: Path, *, workers: int, shard: tuple[int, int] | None,
                     warm: bool | None = None, remove_missing: bool = False) -> tuple[int, list]:
    """Grade, print the table, the isolation and any grader faults; (exit status, rows)."""
    from autograder.reports.class_report import write_class_report
    from autograder.grading.grade import fault_summary, grade, graded_cells
    from autograder.reports.report import summary_table

    rows = grade(submissions, out, workers=workers, shard=shard, progress=True, warm=warm,
                 remove_missing=remove_missing)
    print(summary_table(rows, graded_cells()[0]))
    from autograder.grading.submissions import repair_notes

    png, table = write_class_report(out / "grades.csv", out, notes=repair_notes([out], {row.student_id for row in rows}))
    print(f"\ngrades: {out / 'grades.csv'}   feedback: {out / 'feedback'}/   class report: {table}, {png}")
    print(f"class gradebook (nbgrader, for the formgrader): {out / 'gradebook.db'}   similarity: {out / 'similarity.html'}")
    unsandboxed = sorted({row.isolation for row in rows if row.isolation.startswith("NONE")})
    for isolation in unsandboxed:
        print(f"WARNING: kernels were NOT sandboxed ({isolation.removeprefix('NONE: ')}); "
              "see `python -m autograder doctor`", file=sys.stderr)
    faults = fault_summary(rows)
    if faults:
        print(f"error: {faults}", file=sys.stderr)
        return 1, rows
    return 0, rows


def cmd_grade(args: argparse.Namespace) -> int:
    shard = None
    if args.shard:
        from autograder.grading.shards import parse_shard

        shard = parse_shard(args.shard)
    return grade_and_report(Path(args.submissions), Path(args.out), workers=args.workers, shard=shard,
                            warm=args.kernels == "warm", remove_missing=args.remove_missing)[0]


def cmd_doctor(args: argparse.Namespace) -> int:
    from autograder.grading.doctor import run_doctor

    ok, report = run_doctor(Path(args.out) if args.out else None)
    print(report)
    return 0 if ok else 1


def cmd_merge(args: argparse.Namespace) -> int:
    from autograder.platforms.class_merge import merge_class

    path = merge_class([Path(s) for s in args.shards], Path(args.out))
    print(f"merged {len(args.shards)} shard(s) into {path}")
    return 0


def cmd_slurm(args: argparse.Namespace) -> int:
    from autograder.platforms import slurm

    plan = slurm.make_plan(Path(args.submissions), Path(args.out), tasks=args.tasks, partition=args.partition,
                           gpus_per_task=args.gpus_per_task, time_minutes=args.time)
    submitted = slurm.submit(plan)
    print(slurm.describe(submitted), flush=True)
    if not args.wait:
        jobs = ",".join(j for j in (submitted.array_job, submitted.merge_job) if j)
        print(f"follow them with `squeue -j {jobs}`; the merge's verdict: {slurm.shown(plan.out / slurm.VERDICT)}" if jobs else "")
        return 0
    status, message = slurm.follow(submitted)
    if (plan.out / "grades.csv").is_file() and status != slurm.SHARDS_FAILED:
        print(slurm.grades_table(plan.out))
    print(message, file=sys.stderr if status else sys.stdout)
    return status


def cmd_slurm_merge(args: argparse.Namespace) -> int:
    from autograder.platforms.slurm import merge_job

    status, message = merge_job(Path(args.out), args.tasks)
    print(message, file=sys.stderr if status else sys.stdout)
    return status


def cmd_formgrader(args: argparse.Namespace) -> int:
    from autograder.marking.formgrader import serve

    return serve(Path(args.run), args.port)


def this_command() -> str:
    """How to run this program again, as typed in a shell: this very interpreter (the checkout's venv, whose
    packages the command needs; a bare ``python`` may lack them), relative to the working folder when below it."""
    python = Path(sys.executable)
    try:
        shown = str(python.relative_to(Path.cwd()))
        shown = shown if os.sep in shown else os.path.join(".", shown)
    except ValueError:
        shown = str(python)
    return f"{shlex.quote(shown)} -m autograder"


def cmd_manual_sheet(args: argparse.Namespace) -> int:
    from autograder.marking.manual import write_manual_sheet

    pages, sheet = write_manual_sheet(Path(args.run), Path(args.out))
    print(f"{len(pages)} question pages in {Path(args.out)}/; fill in {sheet}, then: "
          f"{this_command()} manual-import {shlex.quote(str(sheet))} --run {shlex.quote(str(args.run))}")
    return 0


def cmd_manual_import(args: argparse.Namespace) -> int:
    from autograder.marking.manual import import_manual_grades

    count = import_manual_grades(Path(args.file), Path(args.run))
    print(f"imported {count} manual grade(s) into {Path(args.run) / 'gradebook.db'}")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from autograder.marking.export import export, summary

    done = export(Path(args.run), Path(args.out), roster=Path(args.roster) if args.roster else None,
                  times=[Path(t) for t in args.times or []])
    print(summary(done.grades, done.file))
    print(f"LMS import file ({cfg.LMS}): {done.lms}   nbgrader's CSV: {done.nbgrader_csv}   every cell: {done.final_csv}")
    return 0


def cmd_feedback(args: argparse.Namespace) -> int:
    from autograder.marking.feedback import write_final_feedback

    done = write_final_feedback(Path(args.run), times=[Path(t) for t in args.times or []])
    folder = Path(args.run) / "final_feedback"
    print(f"final feedback: {len(done.pages)} page(s) in {folder}/   every cell: {done.final_csv}")
    for student, why in done.withheld.items():
        print(f"  no page for {student}: {why}")
    return 0


def cmd_gradescope_zip(args: argparse.Namespace) -> int:
    from autograder.platforms.gradescope import build_zip

    print(f"Gradescope autograder: {build_zip(Path(args.out))}")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    """Release, grade the examples, and compare each with ``examples/submissions/expected.json``."""
    from autograder.authoring.expected import verdict_lines

    args.check = False
    status = cmd_release(args)
    if status:
        return status
    status, rows = grade_and_report(EXAMPLES, Path(args.out), workers=args.workers, shard=None)
    ok, lines = verdict_lines({row.student_id: row.cells for row in rows})
    print("\n".join(lines), file=sys.stdout if ok else sys.stderr)
    return status or (0 if ok else 1)


def cmd_calibrate(args: argparse.Namespace) -> int:
    from autograder.authoring import calibrate

    report = calibrate.calibrate(seeds=args.seeds)
    path = calibrate.write_report(report)
    print(calibrate.format_report(report))
    print(f"written to {path.relative_to(cfg.ROOT)}")
    return 0 if report["all_passed"] else 1


def cmd_check(args: argparse.Namespace) -> int:
    from autograder.authoring.check import check, format_verdicts

    items = check(Path(args.notebook))
    print(format_verdicts(items))
    return 0 if all(v.ok for v in items if v.kind == "test") else 1


def cmd_selftest(args: argparse.Namespace) -> int:
    from autograder.authoring.selftest import run_selftest

    ok, report = run_selftest(seeds=args.seeds, workers=args.workers)
    print(report)
    return 0 if ok else 1


def cmd_figures(args: argparse.Namespace) -> int:
    from autograder.authoring.figures import main as figures_main

    return figures_main(["--quick"] if args.quick else [])


def cmd_make_data(args: argparse.Namespace) -> int:
    from autograder import data

    sums = data.verify() if args.check else data.make_subset(source=args.source)
    held = data.verify(cfg.HELDOUT_DIR, cfg.HELDOUT_DIR)
    for name, digest in {**sums, **held}.items():
        print(f"{digest}  {name}")
    print("subset and held-out set verified" if args.check else
          f"subset written to {cfg.DATA_DIR.relative_to(cfg.ROOT)}, held-out set to {cfg.HELDOUT_DIR.relative_to(cfg.ROOT)}")
    return 0


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m autograder", description=__doc__.splitlines()[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("-v", "--verbose", action="store_true", help="show nbgrader's log")
    sub = p.add_subparsers(dest="command", required=True)
    add_authoring_commands(sub)
    add_grading_commands(sub)
    add_marking_commands(sub)
    return p


def add_authoring_commands(sub) -> None:
    """release, calibrate, check, selftest, figures, make-data: before students get the assignment."""
    r = sub.add_parser("release", help="generate release/ from source/ and check it for leaks and drift")
    r.add_argument("--check", action="store_true", help="only check the committed release")
    r.set_defaults(handler=cmd_release)

    c = sub.add_parser("calibrate", help="run the reference through the convergence tests over many seeds",
                       formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    c.add_argument("--seeds", type=int, default=cfg.CALIBRATION_SEEDS, help="number of seeds")
    c.set_defaults(handler=cmd_calibrate)

    ck = sub.add_parser("check", help="run a notebook's visible tests in a fresh kernel (for students)")
    ck.add_argument("notebook", help="the notebook to check")
    ck.set_defaults(handler=cmd_check)

    st = sub.add_parser("selftest", help="grade reference, blank and mutants; calibrate; exit 1 on a surprise",
                        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    st.add_argument("--seeds", type=int, default=cfg.CALIBRATION_SEEDS, help="calibration seeds")
    st.add_argument("--workers", type=int, default=2, help="submissions graded in parallel")
    st.set_defaults(handler=cmd_selftest)

    fg = sub.add_parser("figures", help="make the notebook's figures (the tutorial's experiments on full MNIST)")
    fg.add_argument("--quick", action="store_true", help="smoke run on the shipped subset, into out/figures-quick")
    fg.set_defaults(handler=cmd_figures)

    m = sub.add_parser("make-data", help="write (or --check) the MNIST subset")
    m.add_argument("--check", action="store_true", help="verify checksums, write nothing")
    m.add_argument("--from", dest="source", type=Path, metavar="DIR",
                   help=f"folder of the four official MNIST .gz files (default: ${cfg.MNIST_DIR_VARIABLE}); "
                        f"from http://yann.lecun.com/exdb/mnist/ or {cfg.MNIST_MIRROR}")
    m.set_defaults(handler=cmd_make_data)


def add_grading_commands(sub) -> None:
    """grade, merge, gradescope-zip, demo, doctor: grading a class and the machine it runs on."""
    g = sub.add_parser("grade", help="autograde submissions, write grades.csv and feedback",
                       formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    g.add_argument("submissions", help="nbgrader submitted/ tree, folder of <student>.ipynb, or an LMS .zip export")
    g.add_argument("--out", required=True, help="output folder (grades.csv, feedback/, .course/)")
    g.add_argument("--workers", type=int, default=1, help="submissions graded in parallel")
    g.add_argument("--shard", metavar="i/N", help="grade only the i-th of N deterministic slices (0-based)")
    g.add_argument("--kernels", choices=["warm", "cold"], default="warm" if cfg.WARM_KERNELS else "cold",
                   help="warm: forked from a pre-imported Python per worker; cold: a fresh Python each")
    g.add_argument("--remove-missing", action="store_true",
                   help="remove from --out the students of earlier runs that this input does not hold")
    g.set_defaults(handler=cmd_grade)

    mg = sub.add_parser("merge", help="combine the grades.csv and feedback of sharded grading runs")
    mg.add_argument("shards", nargs="+", help="the --out folders of the shard runs")
    mg.add_argument("--out", required=True, help="folder for the merged grades.csv, feedback and report")
    mg.set_defaults(handler=cmd_merge)

    sl = sub.add_parser("slurm", help="grade on a Slurm cluster: an array job of N shards, then a merge job into --out",
                        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    sl.add_argument("submissions", help="as for grade; on a file system that the cluster's nodes share")
    sl.add_argument("--out", required=True, help="the class folder (as grade writes it), the batch scripts in OUT/slurm/ "
                                                 "and the shards in OUT/shards/i; on the shared file system")
    sl.add_argument("--tasks", type=int, required=True, help="array tasks, one shard each (grade --shard i/N)")
    sl.add_argument("--partition", help="Slurm partition (default: the cluster's default partition)")
    sl.add_argument("--gpus-per-task", type=int, default=0, help="GPUs per task (#SBATCH --gres=gpu:G); 0: none")
    sl.add_argument("--time", type=int, metavar="MINUTES", help="time limit per task (#SBATCH --time); default: "
                                                                 "the partition's")
    sl.add_argument("--wait", action="store_true", help="follow the tasks, then exit with the merge's verdict: 3 when a "
                                                        "task failed or was cancelled, else grade's exit status")
    sl.set_defaults(handler=cmd_slurm)

    sm = sub.add_parser("slurm-merge", help="the Slurm merge job (OUT/slurm/merge.sbatch): merge OUT/shards/* into OUT")
    sm.add_argument("out", help="the --out folder of the slurm command")
    sm.add_argument("--tasks", type=int, required=True, help="the number of shards")
    sm.set_defaults(handler=cmd_slurm_merge)

    gz = sub.add_parser("gradescope-zip", help="build the Gradescope autograder zip (setup.sh, run_autograder)",
                        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    gz.add_argument("--out", default="out/gradescope.zip", help="where to write the zip")
    gz.set_defaults(handler=cmd_gradescope_zip)

    d = sub.add_parser("demo", help="release, then grade the example submissions",
                       formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    d.add_argument("--out", default="out/demo", help="output folder")
    d.add_argument("--workers", type=int, default=2, help="submissions graded in parallel")
    d.set_defaults(handler=cmd_demo)

    dr = sub.add_parser("doctor", help="what this machine gives the grader (sandbox, GPU, limits), then the canary",
                        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    dr.add_argument("--out", help="folder for the canary's output (default: a temporary folder)")
    dr.set_defaults(handler=cmd_doctor)


def add_marking_commands(sub) -> None:
    """formgrader, manual-sheet, manual-import, feedback, export: after the autograder."""
    fm = sub.add_parser("formgrader", help="nbgrader's formgrader on a run's class gradebook (loopback only)",
                        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    fm.add_argument("run", help="a grade --out folder")
    fm.add_argument("--port", type=int, default=8888, help="port on 127.0.0.1")
    fm.set_defaults(handler=cmd_formgrader)

    ms = sub.add_parser("manual-sheet", help="one HTML page per free-response question and a CSV to fill in")
    ms.add_argument("run", help="a grade --out folder (its gradebook.db)")
    ms.add_argument("--out", required=True, help="folder for the pages and manual_grades.csv")
    ms.set_defaults(handler=cmd_manual_sheet)

    mi = sub.add_parser("manual-import", help="load a filled manual_grades.csv into the gradebook (all lines or none)")
    mi.add_argument("file", help="the filled CSV (student_id, question, max_points, points, comment)")
    mi.add_argument("--run", required=True, help="the grade --out folder whose gradebook.db receives the points")
    mi.set_defaults(handler=cmd_manual_import)

    times_help = ("submission times, kept in the run: a CSV of student_id,submitted_at, Canvas's submissions API "
                  "JSON, or Moodle's grading worksheet (course_config.LATE_POLICY = 'course'); may be given again")
    fb = sub.add_parser("feedback", help="each student's final feedback: hand-graded points, comments, late penalty, total")
    fb.add_argument("run", help="a grade --out folder, its answers graded by hand")
    fb.add_argument("--times", action="append", metavar="FILE", help=times_help)
    fb.set_defaults(handler=cmd_feedback)

    ex = sub.add_parser("export", help="final grades (autograded + manual - late penalty): LMS file and nbgrader CSV")
    ex.add_argument("run", help="a grade --out folder (its gradebook.db and grades.csv)")
    ex.add_argument("--out", required=True, help="the LMS import file; nbgrader's CSV goes beside it")
    ex.add_argument("--roster", help="the LMS's gradebook export (course_config.LMS): names, LMS ids, the assignment's "
                                     "column and the students without a submission (default: student ids only)")
    ex.add_argument("--times", action="append", metavar="FILE", help=times_help)
    ex.set_defaults(handler=cmd_export)


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    if not args.verbose:
        # nbgrader's apps reset their logger to INFO and log every copied file; keep its errors only
        quiet = logging.Filter()
        quiet.filter = lambda record: record.name != "traitlets" or record.levelno >= logging.ERROR
        for handler in logging.getLogger().handlers:
            handler.addFilter(quiet)
    try:
        return args.handler(args)
    except (InputError, SetupError) as error:  # anything else is a bug: its traceback is shown
        print(f"error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
