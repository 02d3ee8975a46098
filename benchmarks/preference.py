"""How fast does PreferenceLearner find the mix a simulated person likes? (issues 11, 19)

For each hidden-utility family (``nst_tf.preference.labeler.UTILITIES``: a sparse peak of 2–4
styles, two separated peaks, "mixing everything is mud", a smooth optimum in a look space at a
3-style mix or at a dense blend, "a few styles alone, never blends of many", three bumps) and
each seed, a :class:`SimulatedLabeler` (τ calibrated so 20 % of answers on close pairs — pairs
among the top 1 % of random sparse mixes — are wrong, 10 % lapses, ties within a small band; the
same τ and lapse rate for k options) answers

* ``pairs``: questions of 2 mixes, or ``best-of-4``: one click picks one of 4 mixes;
* asked by ``active``: ``learner.next_query(k)``, or ``random``: ``learner.random_query(k)``
  (random mixes of the pool's kinds) through the same model;

and we score the normalized utility of ``learner.best()``: 0 = mean utility of uniformly random
mixes (Dirichlet(1)), 1 = the optimum, after 10, 20, 40 and 80 answers (clicks). Reported per
design: the mean over families and seeds, the worst family's mean and the worst single seed;
also the p95 time of ``add_choice`` + ``next_query`` at 100–110 answers (designs run interleaved,
seed by seed, so machine load hits all alike).

    python benchmarks/preference.py                 # N = 32, 20 seeds, all families
    python benchmarks/preference.py --seeds=5 --families=sparse,dense --questions=4 --jobs=2

Prints a table and writes JSON to benchmarks/results/preference.json.
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

from nst_tf.preference.labeler import (  # noqa: E402
    UTILITIES, SimulatedLabeler, calibrate_tau, make_utility, random_mixes_mean)
from nst_tf.preference.learner import PreferenceLearner  # noqa: E402

CHECKPOINTS = (10, 20, 40, 80)
QUESTIONS = {"pairs": 2, "best-of-4": 4}
STRATEGIES = ("active", "random")


def run_one(family, seed, questions, strategy, num_styles, budget, timing_at):
    """Scores of ``best()`` at the checkpoints, timings from ``timing_at`` answers, tie rate."""
    utility = make_utility(family, num_styles, seed)
    zero = random_mixes_mean(utility, num_styles, seed)
    top = float(utility(utility.optimum[None])[0])
    tau = calibrate_tau(utility, num_styles, seed=seed)
    labeler = SimulatedLabeler(utility, tau, lapse=0.1, tie_band=0.1 * tau, seed=seed + 1)
    learner = PreferenceLearner(num_styles, seed=seed)
    k = QUESTIONS[questions]
    scores, times, ties = {}, [], 0
    for step in range(1, budget + 1):
        t0 = time.perf_counter()
        options = learner.next_query(k) if strategy == "active" else learner.random_query(k)
        t1 = time.perf_counter()
        answer = labeler.choose(options)
        ties += answer is None
        t2 = time.perf_counter()
        learner.add_choice(options, answer)
        learner.posterior()          # the fit is lazy; count it in add's time
        t3 = time.perf_counter()
        if step >= timing_at:
            times.append((t1 - t0) + (t3 - t2))
        if step in CHECKPOINTS:
            value = float(utility(learner.best()[None].astype(np.float64))[0])
            scores[step] = (value - zero) / (top - zero)
    return scores, times, ties / budget


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--styles", type=int, default=32)
    parser.add_argument("--seeds", type=int, default=20)
    parser.add_argument("--first-seed", type=int, default=0)
    parser.add_argument("--families", default=",".join(UTILITIES))
    parser.add_argument("--questions", default=",".join(QUESTIONS),
                        help=f"comma-separated, of {', '.join(QUESTIONS)}")
    parser.add_argument("--strategies", default=",".join(STRATEGIES))
    parser.add_argument("--budget", type=int, default=max(CHECKPOINTS))
    parser.add_argument("--timing-seeds", type=int, default=3,
                        help="seeds per family run to 110 answers for the p95 timing")
    parser.add_argument("--jobs", type=int, default=1,
                        help="worker processes (timings then include the other workers' load)")
    parser.add_argument("--output", default=os.path.join(os.path.dirname(__file__), "results",
                                                         "preference.json"))
    args = parser.parse_args()
    families = args.families.split(",")
    designs = [(q, s) for q in args.questions.split(",") for s in args.strategies.split(",")]
    checkpoints = [c for c in CHECKPOINTS if c <= args.budget]
    seeds = range(args.first_seed, args.first_seed + args.seeds)
    tasks = [(family, seed, q, s) for seed in seeds for family in families
             for q, s in designs]   # interleaved: the same load for each design

    def task_args(task):
        family, seed, q, s = task
        timed = seed - args.first_seed < args.timing_seeds
        return (family, seed, q, s, args.styles, max(args.budget, 110) if timed else args.budget,
                100 if timed else args.budget + 1)

    start = time.time()
    if args.jobs > 1:
        with multiprocessing.Pool(args.jobs) as pool:
            outputs = pool.starmap(run_one, [task_args(t) for t in tasks], chunksize=1)
    else:
        outputs = [run_one(*task_args(t)) for t in tasks]
    scores = {d: {f: {c: [] for c in checkpoints} for f in families} for d in designs}
    times = {d: [] for d in designs}
    ties = {d: [] for d in designs}
    for (family, seed, q, s), (score, timing, tie_rate) in zip(tasks, outputs):
        for c in checkpoints:
            scores[(q, s)][family][c].append(score[c])
        times[(q, s)] += timing
        ties[(q, s)].append(tie_rate)

    print(f"N={args.styles}, {args.seeds} seeds × {len(families)} families, "
          f"{time.time() - start:.0f} s; normalized utility of best() "
          "(0 = a random mix, 1 = the optimum)")
    print("\nper family, mean over seeds (worst seed in brackets)")
    print(f"{'family':<11}{'questions':<10}{'strategy':<9}"
          + "".join(f"{'@' + str(c):>15}" for c in checkpoints))
    table = []
    for family in families:
        for q, s in designs:
            by_c = scores[(q, s)][family]
            row = {"family": family, "questions": q, "strategy": s,
                   "mean": {c: float(np.mean(v)) for c, v in by_c.items()},
                   "worst_seed": {c: float(np.min(v)) for c, v in by_c.items()}}
            table.append(row)
            print(f"{family:<11}{q:<10}{s:<9}" + "".join(
                f"{row['mean'][c]:>8.3f} ({row['worst_seed'][c]:>5.2f})" for c in checkpoints))
    print("\nall families: mean ± SE / worst family / worst seed")
    print(f"{'questions':<10}{'strategy':<9}" + "".join(f"{'@' + str(c):>25}" for c in checkpoints))
    overall = {}
    for q, s in designs:
        summary = {}
        for c in checkpoints:
            values = np.concatenate([scores[(q, s)][f][c] for f in families])
            family_means = {f: float(np.mean(scores[(q, s)][f][c])) for f in families}
            worst = min(family_means, key=family_means.get)
            summary[c] = {"mean": float(values.mean()),
                          "se": float(values.std() / np.sqrt(len(values))),
                          "worst_family": worst, "worst_family_mean": family_means[worst],
                          "worst_seed": float(values.min())}
        overall[f"{q}/{s}"] = {"scores": summary,
                               "tie_rate": float(np.mean(ties[(q, s)])),
                               "p95_seconds": (float(np.percentile(times[(q, s)], 95))
                                               if times[(q, s)] else None)}
        print(f"{q:<10}{s:<9}" + "".join(
            f"{summary[c]['mean']:>7.3f}±{summary[c]['se']:.3f} {summary[c]['worst_family_mean']:>5.2f}"
            f" {summary[c]['worst_seed']:>5.2f}" for c in checkpoints))
    print("\nworst family at each checkpoint: " + "; ".join(
        f"{d} " + ",".join(overall[d]["scores"][c]["worst_family"] for c in checkpoints)
        for d in overall))
    print("p95 time of add_choice + next_query at 100-110 answers (s): " + ", ".join(
        f"{d} {v['p95_seconds']:.3f}" for d, v in overall.items() if v["p95_seconds"] is not None))
    os.makedirs(os.path.dirname(args.output), exist_ok=True)
    with open(args.output, "w") as f:
        json.dump({"num_styles": args.styles, "seeds": list(seeds), "families": families,
                   "jobs": args.jobs, "table": table, "overall": overall}, f, indent=1)
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
