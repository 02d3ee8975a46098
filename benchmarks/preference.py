"""How fast does PreferenceLearner find the mix a simulated person likes? (issue 11)

For each hidden-utility family (``nst_tf.preference.labeler.UTILITIES``: sparse peak of 2–4
styles, two separated peaks, "mixing everything is mud", smooth) and each seed, a
:class:`SimulatedLabeler` (τ calibrated so 20 % of answers on close pairs — pairs among the top 1 %
of random sparse mixes — are wrong, 10 % lapses, ties within a small band) answers the pairs of

* ``active``: ``learner.next_pair()`` (incumbent vs highest expected gain);
* ``random``: ``learner.random_pair()`` (random mixes from the same pool distribution) through the
  same model;

and we score the normalized utility of ``learner.best()``: 0 = mean utility of uniformly random
mixes, 1 = the optimum, after 10, 20, 40 and 80 comparisons. Also: the comparisons each strategy
needs to reach 0.90 on average (linear interpolation between checkpoints), and the p95 time of
``add`` + ``next_pair`` at ~100 comparisons (strategies run interleaved, seed by seed, so machine
load hits both alike).

    python benchmarks/preference.py                 # N = 32, 20 seeds, all families
    python benchmarks/preference.py --seeds=5 --families=sparse,mud --features

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
    UTILITIES, SimulatedLabeler, calibrate_tau, make_utility,
                                       random_mixes_mean)
from nst_tf.preference.learner import PreferenceLearner  # noqa: E402

CHECKPOINTS = (10, 20, 40, 80)


def run_one(family, seed, strategy, num_styles, budget, use_features, timing_at):
    utility = make_utility(family, num_styles, seed)
    zero = random_mixes_mean(utility, num_styles, seed)
    top = float(utility(utility.optimum[None])[0])
    tau = calibrate_tau(utility, num_styles, seed=seed)
    labeler = SimulatedLabeler(utility, tau, lapse=0.1, tie_band=0.1 * tau, seed=seed + 1)
    features = getattr(utility, "features", None) if use_features else None
    learner = PreferenceLearner(num_styles, seed=seed, features=features)
    scores, times, ties = {}, [], 0
    for step in range(1, budget + 1):
        t0 = time.perf_counter()
        a, b = learner.next_pair() if strategy == "active" else learner.random_pair()
        t1 = time.perf_counter()
        answer = labeler(a, b)
        ties += answer is None
        t2 = time.perf_counter()
        learner.add(a, b, answer)
        learner.posterior()          # the fit is lazy; count it in add's time
        t3 = time.perf_counter()
        if step >= timing_at:
            times.append((t1 - t0) + (t3 - t2))
        if step in CHECKPOINTS:
            value = float(utility(learner.best()[None].astype(np.float64))[0])
            scores[step] = (value - zero) / (top - zero)
    return scores, times, ties / budget


def comparisons_to_reach(curve, target=0.9):
    """Interpolated number of comparisons at which the mean curve first reaches ``target``."""
    points = [(0, 0.0)] + sorted(curve.items())
    for (x0, y0), (x1, y1) in zip(points, points[1:]):
        if y1 >= target:
            return x0 + (x1 - x0) * (target - y0) / max(y1 - y0, 1e-12) if y0 < target else x0
    return None


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--styles", type=int, default=32)
    parser.add_argument("--seeds", type=int, default=20)
    parser.add_argument("--families", default=",".join(UTILITIES))
    parser.add_argument("--features", action="store_true",
                        help="also run the active strategy with the styles' features (on the "
                             "families that define them: smooth)")
    parser.add_argument("--timing-seeds", type=int, default=3,
                        help="seeds per family run to 110 comparisons for the p95 timing")
    parser.add_argument("--jobs", type=int, default=1,
                        help="worker processes (timings then include the other workers' load)")
    parser.add_argument("--output", default=os.path.join(os.path.dirname(__file__), "results",
                                                         "preference.json"))
    args = parser.parse_args()
    families = args.families.split(",")
    strategies = ["active", "random"] + (["active+features"] if args.features else [])
    budget = max(CHECKPOINTS)
    def family_strategies(family):   # features exist only where the utility defines them
        has = hasattr(make_utility(family, args.styles, 0), "features")
        return [s for s in strategies if has or not s.endswith("features")]

    tasks = [(family, seed, strategy) for family in families for seed in range(args.seeds)
             for strategy in family_strategies(family)]   # interleaved: same load for each

    def task_args(task):
        family, seed, strategy = task
        timed = seed < args.timing_seeds
        return (family, seed, strategy.split("+")[0], args.styles, 110 if timed else budget,
                strategy.endswith("features"), 100 if timed else budget + 1)

    if args.jobs > 1:
        with multiprocessing.Pool(args.jobs) as pool:
            outputs = pool.starmap(run_one, [task_args(t) for t in tasks])
    else:
        outputs = [run_one(*task_args(t)) for t in tasks]
    results = {(f, s): {c: [] for c in CHECKPOINTS} for f in families
               for s in family_strategies(f)}
    all_times = {s: [] for s in strategies}
    tie_rates = {f: [] for f in families}
    for (family, seed, strategy), (scores, times, tie_rate) in zip(tasks, outputs):
        for c in CHECKPOINTS:
            results[(family, strategy)][c].append(scores[c])
        all_times[strategy] += times
        tie_rates[family].append(tie_rate)
    for family in families:
        print(f"# {family}: tie rate {np.mean(tie_rates[family]):.3f}", flush=True)

    header = f"{'family':<10} {'strategy':<16}" + "".join(f"{'@' + str(c):>14}" for c in
                                                       CHECKPOINTS) + f"{'to 0.90':>9}"
    print(f"\nN={args.styles}, {args.seeds} seeds; normalized utility of best(), mean ± SE")
    print(header)
    table = []
    summary = {s: {c: [] for c in CHECKPOINTS} for s in strategies}
    for (family, strategy), by_c in results.items():
        means = {c: float(np.mean(v)) for c, v in by_c.items()}
        ses = {c: float(np.std(v) / np.sqrt(len(v))) for c, v in by_c.items()}
        reach = comparisons_to_reach(means)
        for c in CHECKPOINTS:
            summary[strategy][c] += by_c[c]
        table.append({"family": family, "strategy": strategy, "mean": means, "se": ses,
                      "comparisons_to_0.90": reach})
        print(f"{family:<10} {strategy:<16}" + "".join(f"{means[c]:>8.3f} ±{ses[c]:.3f}"
                                                       for c in CHECKPOINTS)
              + f"{reach if reach is None else round(reach, 1)!s:>9}")
    overall = {}
    for strategy in strategies:
        if len(summary[strategy][CHECKPOINTS[0]]) < len(families) * args.seeds:
            continue  # not run on every family
        means = {c: float(np.mean(v)) for c, v in summary[strategy].items()}
        ses = {c: float(np.std(v) / np.sqrt(len(v))) for c, v in summary[strategy].items()}
        reach = comparisons_to_reach(means)
        overall[strategy] = {"mean": means, "se": ses, "comparisons_to_0.90": reach}
        print(f"{'all':<10} {strategy:<16}" + "".join(f"{means[c]:>8.3f} ±{ses[c]:.3f}"
                                                     for c in CHECKPOINTS)
              + f"{reach if reach is None else round(reach, 1)!s:>9}")
    print("\np95 time of add + next_pair at 100-110 comparisons (s): "
          + ", ".join(f"{s} {np.percentile(t, 95):.3f}" for s, t in all_times.items() if t))
    os.makedirs(os.path.dirname(args.output), exist_ok=True)
    with open(args.output, "w") as f:
        json.dump({"num_styles": args.styles, "seeds": args.seeds, "table": table,
                   "overall": overall, "jobs": args.jobs,
                   "p95_seconds": {s: float(np.percentile(t, 95)) for s, t in all_times.items()
                                   if t}}, f, indent=1)
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
