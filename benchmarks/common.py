"""Shared pieces of the benchmark scripts: timing a call, printing the summary, writing JSON.

Example:
    >>> stats = measure(lambda: sum(range(1000)), min_seconds=0.0, max_repeats=3)
    >>> sorted(stats)
    ['cpu_s', 'first_call_s', 'repeats', 'wall_s']
"""

import json
import os
import platform
import time

import numpy as np

RESULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")


def measure(call, min_seconds, max_repeats):
    """First-call seconds, then median wall and CPU seconds of at least three following calls
    (more until ``min_seconds`` have passed, at most ``max_repeats``)."""
    start = time.perf_counter()
    call()
    first = time.perf_counter() - start
    walls, cpus = [], []
    while len(walls) < 3 or (sum(walls) < min_seconds and len(walls) < max_repeats):
        wall, cpu = time.perf_counter(), time.process_time()
        call()
        walls.append(time.perf_counter() - wall)
        cpus.append(time.process_time() - cpu)
    return {"first_call_s": first, "wall_s": float(np.median(walls)),
            "cpu_s": float(np.median(cpus)), "repeats": len(walls)}


def report(name, title, header, rows, format_row, notes=(), **meta):
    """Print ``title``, the table and the notes, then write ``results/<name>.json`` atomically
    (with the TensorFlow version, machine and time); returns the JSON path."""
    import tensorflow as tf

    from nst_tf.io import atomic_write

    print(f"\n{title}")
    print(header)
    for row in rows:
        print(format_row(row))
    for note in notes:
        print("note:", note)
    os.makedirs(RESULTS, exist_ok=True)
    path = os.path.join(RESULTS, f"{name}.json")
    with atomic_write(path, mode="w") as f:
        json.dump({"tensorflow": tf.__version__, "machine": platform.machine(),
                   "processor": platform.processor(), "cpus": os.cpu_count(),
                   "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                   **meta, "rows": rows, "notes": list(notes)}, f, indent=2)
    print("wrote", path)
    return path
