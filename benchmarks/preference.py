"""How close does PreferenceLearner get to the mix a simulated person likes, on tastes it was
not tuned on? (issues 11, 19, 27)

People come from families of tastes drawn at random (:mod:`nst_tf.preference.tastes`: sparse
recipes, several modes, dense linear tastes with a taste for purity or for mixing, near-flat
tastes; each family with its own lapse rate, 0–20 %, and temperature, 10–45 % wrong answers on
close pairs). The learner's settings were tuned on the ``tuning`` draw; this script reports the
``validation`` draw unless told otherwise (different families, different people).

Rows (designs), each person answering up to ``--budget`` questions:

* ``best-of-4 / active`` and ``pairs / active``: :class:`PreferenceLearner` picks the questions;
* ``best-of-4 / random`` and ``pairs / random``: random questions (the pool's kinds) through the
  same model;
* ``pairs / baseline``: the pairs learner from before k-option questions
  (:class:`~nst_tf.preference.baseline.BaselinePairsLearner`).

Score: the normalized utility of ``best()``, 0 = the mean utility of uniformly random mixes
(Dirichlet(1)), 1 = the optimum, after 10, 20 and 40 answers (clicks). Per family: the mean over
its people and the worst person; overall: the mean and the worst person.

    python benchmarks/preference.py                       # validation: 8 families x 5 people
    python benchmarks/preference.py --set=tuning --jobs=2
    python benchmarks/preference.py --designs=pairs/active,pairs/baseline --families=4

Prints a table and writes JSON to benchmarks/results/preference-<set>.json.
"""

import argparse
import os

# Small matrices: a multi-threaded BLAS on a shared 2-core machine is ~30x slower than one thread.
for _name in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_name, "1")

import json  # noqa: E402
import multiprocessing  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402

from nst_tf.preference.baseline import BaselinePairsLearner  # noqa: E402
from nst_tf.preference.learner import PreferenceLearner  # noqa: E402
from nst_tf.preference.tastes import draw_families, simulate  # noqa: E402

CHECKPOINTS = (10, 20, 40)
QUESTIONS = {"pairs": 2, "best-of-4": 4}
DESIGNS = ("best-of-4/active", "pairs/active", "best-of-4/random", "pairs/random",
           "pairs/baseline")


def run_person(family, seed, design, num_styles=32, budget=40, checkpoints=CHECKPOINTS):
    """Scores ``{answers: normalized utility of best()}`` of one person of ``family``."""
    questions, strategy = design.split("/")
    learner = (BaselinePairsLearner(num_styles, seed=seed) if strategy == "baseline"
               else PreferenceLearner(num_styles, seed=seed))
    return simulate(learner, family, seed, QUESTIONS[questions], budget, checkpoints,
                    random=strategy == "random")


def _task(args):
    family, seed, design, num_styles, budget = args
    start = time.perf_counter()
    return run_person(family, seed, design, num_styles, budget), time.perf_counter() - start


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--set", default="validation", choices=("validation", "tuning"))
    parser.add_argument("--families", type=int, default=8)
    parser.add_argument("--people", type=int, default=5)
    parser.add_argument("--styles", type=int, default=32)
    parser.add_argument("--budget", type=int, default=max(CHECKPOINTS))
    parser.add_argument("--designs", default=",".join(DESIGNS))
    parser.add_argument("--jobs", type=int, default=1)
    parser.add_argument("--output", default=None)
    args = parser.parse_args()
    families = draw_families(args.set, args.families)
    designs = args.designs.split(",")
    checkpoints = [c for c in CHECKPOINTS if c <= args.budget]
    tasks = [(f, seed, d, args.styles, args.budget) for seed in range(args.people)
             for f in families for d in designs]   # interleaved: the same load for each design
    start = time.time()
    load = os.getloadavg()[0]
    if args.jobs > 1:
        with multiprocessing.Pool(args.jobs) as pool:
            outputs = pool.map(_task, tasks, chunksize=1)
    else:
        outputs = [_task(t) for t in tasks]
    scores = {d: {f.name: {c: [] for c in checkpoints} for f in families} for d in designs}
    seconds = {d: [] for d in designs}
    for (f, _, d, _, _), (score, took) in zip(tasks, outputs):
        for c in checkpoints:
            scores[d][f.name][c].append(score[c])
        seconds[d].append(took)

    last = checkpoints[-1]
    print(f"{args.set} set: {len(families)} families x {args.people} people, N={args.styles}, "
          f"{time.time() - start:.0f} s, load average {load:.1f} -> {os.getloadavg()[0]:.1f}; "
          "normalized utility of best() (0 = a random mix, 1 = the optimum)")
    print(f"\nper family at {last} answers: mean over people (worst person)")
    width = max(len(f.name) for f in families) + 2
    print(f"{'family':<{width}}" + "".join(f"{d:>20}" for d in designs))
    table = []
    for f in families:
        row = {"family": f.name, "kind": f.kind, "lapse": f.lapse, "error_rate": f.error_rate,
               "designs": {}}
        cells = []
        for d in designs:
            by_c = scores[d][f.name]
            row["designs"][d] = {"mean": {c: float(np.mean(v)) for c, v in by_c.items()},
                                 "worst": {c: float(np.min(v)) for c, v in by_c.items()}}
            cells.append(f"{np.mean(by_c[last]):>12.3f} ({np.min(by_c[last]):>5.2f})")
        table.append(row)
        print(f"{f.name:<{width}}" + "".join(cells))
    print(f"\nall families: mean ± SE (worst person), at {', '.join(map(str, checkpoints))} "
          "answers; seconds per person")
    overall = {}
    for d in designs:
        summary = {}
        for c in checkpoints:
            values = np.concatenate([scores[d][f.name][c] for f in families])
            summary[c] = {"mean": float(values.mean()),
                          "se": float(values.std() / np.sqrt(len(values))),
                          "worst": float(values.min())}
        overall[d] = {"scores": summary, "seconds_per_person": float(np.mean(seconds[d]))}
        print(f"{d:<18}" + "".join(
            f"{summary[c]['mean']:>8.3f}±{summary[c]['se']:.3f} ({summary[c]['worst']:>5.2f})"
            for c in checkpoints) + f"{np.mean(seconds[d]):>8.1f} s")
    output = args.output or os.path.join(os.path.dirname(__file__), "results",
                                         f"preference-{args.set}.json")
    os.makedirs(os.path.dirname(output), exist_ok=True)
    with open(output, "w") as f:
        json.dump({"set": args.set, "num_styles": args.styles, "people": args.people,
                   "families": [f.name for f in families], "budget": args.budget,
                   "table": table, "overall": overall}, f, indent=1)
    print(f"wrote {output}")


if __name__ == "__main__":
    main()
