#!/usr/bin/env python
"""Mutation testing of the core modules with cosmic-ray, one target at a time (not in CI: slow).

    python .ci/mutation.py losses                 # a seeded sample of the target's mutants
    python .ci/mutation.py losses --all           # every mutant
    python .ci/mutation.py losses --count         # how many mutants there are, nothing run
    python .ci/mutation.py losses --only out.json # only the survivors listed in an earlier result

Each target names the modules to mutate and the few fast test files that cover them. cosmic-ray
mutates files in place, so the tree is copied into a scratch folder (``--workdir``, a temporary
folder by default) and the tests run there with ``PYTHONPATH`` pointing at the copy. The sample is
``--sample`` places in the code (module, line, column) drawn with ``random.Random(--seed)``, and
one of the mutants at each place, so the sample spreads over the code rather than over the many
operator swaps of one expression; the same tree and seed give the same sample. The result
(counts, and the diff of every survivor and time-out) is printed and written as JSON to
``--json``. A time-out is reported apart: a hang, or tests slowed down by a busy machine. Needs
``pip install cosmic-ray``; see docs/development.md, "Mutation testing"."""

import argparse
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PYTEST = "python -m pytest -x -q -p no:cacheprovider -m 'not slow'"

# target: modules to mutate, the tests that cover them (fastest first: -x stops at the first
# failure), seconds per mutant before it counts as killed (a hang), default sample size
TARGETS = {
    "losses": (["nst_tf/losses.py"], ["tests/test_losses.py", "tests/test_video_math.py"], 300, 15),
    "objective": (["nst_tf/objective.py"], ["tests/test_objective.py"], 300, 12),
    "resume": (["nst_tf/resume.py"],
               ["tests/test_gatys_checkpoint_files.py",
                "tests/test_resume.py::test_a_checkpoint_of_another_run_is_refused",
                "'tests/test_resume.py::test_a_crashed_run_resumes_exactly[None]'"], 900, 8),
    "scale": (["nst_tf/scale/output.py", "nst_tf/scale/dataset.py"],
              ["tests/test_scale_dataset.py", "tests/test_scale_hardening.py"], 1200, 6),
    "video": (["nst_tf/video/warp.py", "nst_tf/video/consistency.py"],
              ["tests/test_video_math.py"], 300, 12),
    "families": (["nst_tf/families.py"], ["tests/test_families.py", "tests/test_families_batch.py",
                                          "tests/test_keras_files.py"], 600, 10),
    "tiling": (["nst_tf/tiling.py"], ["tests/test_tiling.py"], 600, 6),
    "patches": (["nst_tf/patches.py"], ["tests/test_patches.py"], 600, 5),
    "preference": (["nst_tf/preference/learner.py"], ["tests/test_preference_learner.py"], 600, 6),
}


def _copy_tree(dest):
    shutil.copytree(ROOT, dest, ignore=shutil.ignore_patterns(".git", "__pycache__", "*.egg-info",
                                                             "_build", ".pytest_cache"))


def _config(modules, tests, timeout):
    quoted = lambda v: json.dumps(v)  # TOML basic strings read JSON's escapes
    return "\n".join([
        "[cosmic-ray]",
        f"module-path = [{', '.join(quoted(m) for m in modules)}]",
        f"timeout = {float(timeout)}",
        "excluded-modules = []",
        f"test-command = {quoted(PYTEST + ' ' + ' '.join(tests))}",
        "",
        "[cosmic-ray.distributor]",
        'name = "local"',
        "",
    ])


def _key(mutation):
    return (mutation.module_path.as_posix() if hasattr(mutation.module_path, "as_posix")
            else str(mutation.module_path), mutation.operator_name, mutation.occurrence)


def _choose(db_path, sample, seed, only):
    """Mark every mutant outside the sample (or ``only``) as skipped: ``(mutants, to run)``."""
    from cosmic_ray.work_db import use_db
    from cosmic_ray.work_item import WorkerOutcome, WorkResult

    with use_db(db_path) as db:
        items = sorted(db.pending_work_items, key=lambda item: _key(item.mutations[0]))
        if only is not None:
            keep = {i for i, item in enumerate(items) if list(_key(item.mutations[0])) in only}
        elif sample is None or sample >= len(items):
            keep = set(range(len(items)))
        else:  # spread over the code: `sample` places, one of the mutants at each place
            places = {}
            for i, item in enumerate(items):
                mutation = item.mutations[0]
                places.setdefault((_key(mutation)[0], tuple(mutation.start_pos)), []).append(i)
            rng = random.Random(seed)
            chosen = rng.sample(sorted(places), min(sample, len(places)))
            keep = {rng.choice(places[place]) for place in chosen}
        for i, item in enumerate(items):
            if i not in keep:
                db.set_result(item.job_id, WorkResult(output="not in the sample",
                                                      worker_outcome=WorkerOutcome.SKIPPED))
        return len(items), len(keep)


def _results(db_path):
    from cosmic_ray.work_db import use_db
    from cosmic_ray.work_item import TestOutcome, WorkerOutcome

    out = {"killed": 0, "survived": 0, "timeout": 0, "incompetent": 0, "survivors": [],
           "timeouts": []}
    with use_db(db_path) as db:
        for item, result in db.completed_work_items:
            if result.worker_outcome == WorkerOutcome.SKIPPED:
                continue
            mutation = item.mutations[0]
            if result.worker_outcome != WorkerOutcome.NORMAL:  # the worker crashed
                out["killed"] += 1
            elif result.output == "timeout":  # a hang, or tests slowed down by a busy machine
                out["timeout"] += 1
                out["timeouts"].append({"key": list(_key(mutation)),
                                        "line": mutation.start_pos[0], "diff": result.diff})
            elif result.test_outcome == TestOutcome.SURVIVED:
                out["survived"] += 1
                out["survivors"].append({"key": list(_key(mutation)),
                                         "line": mutation.start_pos[0], "diff": result.diff})
            elif result.test_outcome == TestOutcome.INCOMPETENT:
                out["incompetent"] += 1
            else:
                out["killed"] += 1
    out["survivors"].sort(key=lambda s: s["key"])
    out["timeouts"].sort(key=lambda s: s["key"])
    return out


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("target", choices=sorted(TARGETS))
    parser.add_argument("--sample", type=int, help="mutants to run (default: the target's)")
    parser.add_argument("--all", action="store_true", help="run every mutant")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--count", action="store_true", help="count the mutants, run nothing")
    parser.add_argument("--only", help="JSON result of an earlier run: run only its survivors")
    parser.add_argument("--report", action="store_true",
                        help="only report the session already in --workdir")
    parser.add_argument("--workdir", help="scratch folder (default: a new temporary folder)")
    parser.add_argument("--json", help="where to write the result (default: WORKDIR/result.json)")
    args = parser.parse_args(argv)

    modules, tests, timeout, sample = TARGETS[args.target]
    work = args.workdir or tempfile.mkdtemp(prefix=f"mutation-{args.target}-")
    db = os.path.join(work, "session.sqlite")
    if args.report:
        return _report(args, db, None, None)
    tree = os.path.join(work, "tree")
    if os.path.exists(tree):
        shutil.rmtree(tree)
    _copy_tree(tree)
    config = os.path.join(work, "cosmic-ray.toml")
    with open(config, "w") as f:
        f.write(_config(modules, tests, timeout))
    if os.path.exists(db):
        os.remove(db)
    env = dict(os.environ, PYTHONPATH=tree, TF_CPP_MIN_LOG_LEVEL="2")
    subprocess.run(["cosmic-ray", "init", config, db], cwd=tree, env=env, check=True)
    only = None
    if args.only:
        with open(args.only) as f:
            earlier = json.load(f)
            only = [s["key"] for s in earlier["survivors"] + earlier.get("timeouts", [])]
    total, chosen = _choose(db, None if args.all else args.sample or sample, args.seed, only)
    print(f"{args.target}: {total} mutants, running {chosen} (seed {args.seed})", flush=True)
    if args.count:
        return 0
    subprocess.run(["cosmic-ray", "exec", config, db], cwd=tree, env=env, check=True)
    return _report(args, db, total, chosen)


def _report(args, db, total, chosen):
    result = dict(_results(db), target=args.target, mutants=total, run=chosen, seed=args.seed,
                  command=" ".join(["python", ".ci/mutation.py", args.target]))
    chosen = result["run"] = chosen or (result["killed"] + result["survived"] + result["timeout"]
                                        + result["incompetent"])
    for kind in ("survivors", "timeouts"):
        for s in result[kind]:
            print(f"--- {kind}: {' '.join(map(str, s['key']))} (line {s['line']})\n{s['diff']}")
    print(f"{args.target}: run {chosen} of {total}, killed {result['killed']}, "
          f"survived {result['survived']}, timed out {result['timeout']}, "
          f"incompetent {result['incompetent']}")
    with open(args.json or os.path.join(os.path.dirname(db), "result.json"), "w") as f:
        json.dump(result, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
