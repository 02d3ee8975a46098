"""Stylize a whole dataset with Apache Beam: :class:`StylizeDataset` and :func:`stylize_dataset`.

The same pipeline runs on Beam's DirectRunner (one machine, one or more worker processes), its
DaskRunner (a ``dask.distributed`` cluster; ``--runner=dask``), Dataflow, Flink and Spark; all
file access goes through Beam's ``FileSystems`` (local, ``gs://``, ``s3://``, ``hdfs://``). Its
shape::

    claim the output folder: run.json holds the run's settings (refused if they differ)
    MatchAll(content) ─▶ plan each image: style + strength = f(seed, relative path)
                              │  (style pool: MatchAll(styles) ─▶ probe headers ─▶ sorted list,
                              │   a side input)
    MatchAll(output) ───▶ CoGroupByKey(output name): an output that decodes → "ok", two inputs
                              │  with one output name → the second "failed"
                              ▼
    GroupByKey(style) ─▶ read the style image once, Family.prepare_style once (AdaIN
                              │  statistics, an arbitrary-style embedding), its images cut into
                              │  batches of --batch_size
                              ▼
    Reshuffle ─▶ per batch: read, decode (pixel cap from the header), resize/crop; equally sized
                              │  images in one Family.stylize_batch; encode PNG / JPEG;
                              │  FileSystems.create(temporary name) ─▶ rename(final name)
                              ▼
    every image's manifest row ─▶ one sorted manifest.jsonl (written only when it changed)

Nothing stops the pipeline for one image: unreadable, truncated, oversized or non-image files,
named pipes and devices, a style image that cannot be read, a failed forward pass or write
become ``"failed"`` rows with the reason (the dead-letter pattern). Outputs that exist and
decode are not recomputed, so a rerun after an interruption (or after deleting some outputs)
finishes the job and writes nothing else.

Portability: every step has one output (steps that also finish images emit rows beside their
work items, split by type with ``Filter``), nothing is emitted from ``finish_bundle``, and the
runner's metrics are optional. Beam 2.77's DaskRunner merges a ``ParDo``'s tagged outputs into
one collection, drops what ``finish_bundle`` emits (``BatchElements``, hence ``RunInference``'s
batching) and has no metrics; the DirectRunner has none of these limits.

Example:
    >>> import apache_beam as beam                                             # doctest: +SKIP
    >>> from nst_tf.scale import StylizeDataset
    >>> with beam.Pipeline() as p:                                             # doctest: +SKIP
    ...     rows = p | StylizeDataset("photos/", "out/", model="adain", styles="paintings/")
    >>> summary = stylize_dataset("photos/", "out/", recipe="stylized-imagenet",
    ...                           styles="paintings/")                         # doctest: +SKIP
    >>> print(summary.line())                                                  # doctest: +SKIP
    1200 images: 1200 ok (1200 stylized now, 0 already there), 0 failed
"""

import io
import json
import os
import sys
import threading
import time
import typing

import apache_beam as beam
from apache_beam.io import fileio
from apache_beam.io.filesystems import FileSystems
from apache_beam.metrics import Metrics
from apache_beam.metrics.metric import MetricsFilter

from nst_tf.errors import ConfigError, NSTError
from nst_tf.scale import dataset
from nst_tf.scale.dataset import Job, ManifestRow, join, one_line
from nst_tf.scale.model import NAMESPACE, Example, load_stylizer, stylize_examples
from nst_tf.scale.output import (check_regular_file, claim_output, finished, read,
                                 write_atomically)
from nst_tf.scale.plan import DatasetPlan, inside, make_plan

_PROGRAM = "nst-stylize-dataset"
#: Short runner names the pipeline options may use, beside Beam's own.
RUNNERS = {"dask": "apache_beam.runners.dask.dask_runner.DaskRunner",
           "daskrunner": "apache_beam.runners.dask.dask_runner.DaskRunner"}


class Batch(typing.NamedTuple):
    """Up to ``batch_size`` jobs of one style, with the style prepared once."""

    style: typing.Any        # what Family.prepare_style returned
    jobs: list


def _is_row(item):
    return isinstance(item, ManifestRow)


def _is_work(item):
    return not isinstance(item, ManifestRow)


def _split(items, label):
    """``(work, rows)``: a step's output split into what goes on and the images it finished."""
    return (items | f"{label}Work" >> beam.Filter(_is_work),
            items | f"{label}Rows" >> beam.Filter(_is_row))


def _match(pbegin, label, patterns):
    """The files matching any of ``patterns``, each once."""
    matched = (pbegin
               | f"{label}Patterns" >> beam.Create(list(patterns))
               | f"Match{label}" >> fileio.MatchAll(fileio.EmptyMatchTreatment.ALLOW))
    if len(patterns) == 1:
        return matched
    return (matched                                     # the variants of a "**/" may overlap
            | f"{label}ByPath" >> beam.Map(lambda metadata: (metadata.path, metadata))
            | f"{label}Once" >> beam.GroupByKey()
            | f"{label}First" >> beam.Map(lambda found: next(iter(found[1]))))


def _data_file(root, path):
    """The relative path of a matched file that is data: below ``root`` (an escaped ``[`` also
    matches ``]``: :func:`~nst_tf.scale.dataset.escape`) and not hidden; else None."""
    if dataset.below(root, path):
        rel = dataset.relative_path(root, path)
        if not dataset.is_hidden(rel):
            return rel
    return None


def _style_key(job):
    return json.dumps(job.style, sort_keys=True)


def _decode(path, name, max_pixels):
    """A local or remote image file as float32 RGB (:func:`nst_tf.images.decode_image`),
    refused from its header above ``max_pixels``, and before it is opened when it is not a
    regular file."""
    from nst_tf.images import DEFAULT_MAX_PIXELS, decode_image

    check_regular_file(path, name)
    return decode_image(read(path), name, max_pixels or DEFAULT_MAX_PIXELS)


# --- Steps ------------------------------------------------------------------------------------

class ProbeStyle(beam.DoFn):
    """A matched style file → its relative path, when it is an image of the minimum size and
    under the pixel cap (reading only its header); other files are counted and left out."""

    def __init__(self, plan):
        self.plan = plan
        self.unusable = Metrics.counter(NAMESPACE, "styles_left_out")

    def process(self, metadata):
        rel = _data_file(self.plan.style_root, metadata.path)
        if rel:
            if self._usable(metadata.path):
                yield rel
            else:
                self.unusable.inc()

    def _usable(self, path):
        from PIL import Image

        try:
            check_regular_file(path, path)
            with FileSystems.open(path) as f:
                width, height = Image.open(f).size
        except Exception:  # noqa: BLE001  not an image: not a style
            return False
        too_big = self.plan.max_pixels and width * height > self.plan.max_pixels
        return not too_big and min(width, height) >= (self.plan.min_style_size or 0)


def plan_job(plan, relpath, path, pool=()):
    """The :class:`~nst_tf.scale.dataset.Job` of one content file: its style (from ``pool``,
    the sorted style images, for style-image models) and strength by
    :func:`~nst_tf.scale.dataset.choose`, and its output name."""
    style = style_path = None
    if plan.style_input == "image":
        index, strength = dataset.choose(plan.seed, relpath, len(pool) or None, plan.strength)
        if pool:
            style = pool[index]
            style_path = join(plan.style_root, style)
    elif plan.style_input == "index" and plan.mixture is None:
        index, strength = dataset.choose(plan.seed, relpath, len(plan.style_pool),
                                         plan.strength)
        style = plan.style_pool[index]
    else:
        _, strength = dataset.choose(plan.seed, relpath, None, plan.strength)
        style = plan.mixture
    return Job(relpath, path, style, style_path, strength,
               dataset.output_name(relpath, plan.format))


class PlanJobs(beam.DoFn):
    """A matched content file → its job, or a failed row when it is the output folder's own
    file reached through a link; hidden files are skipped."""

    def __init__(self, plan):
        self.plan = plan

    def process(self, metadata, pool=()):
        rel = _data_file(self.plan.content_root, metadata.path)
        if rel:
            job = plan_job(self.plan, rel, metadata.path, pool)
            if "://" not in metadata.path and inside(metadata.path, self.plan.output):
                yield job.row(f"{rel} is a link into the output folder {self.plan.output}")
            else:
                yield job


class Triage(beam.DoFn):
    """Per output name: the jobs planned for it and the file there, if any → a row (done, or
    failed), or the job to do."""

    def __init__(self, plan):
        self.plan = plan
        self.existing = Metrics.counter(NAMESPACE, "existing")

    def process(self, item):
        name, found = item
        # No job: a file in the output folder that no input maps to (left alone).
        jobs = sorted(found["job"], key=lambda job: job.content)
        for job in jobs[1:]:
            yield job.row(f"its output {name} is also the output of {jobs[0].content}")
        if jobs:
            yield self._triage(jobs[0], found["exists"])

    def _triage(self, job, existing):
        if any(finished(path, self.plan.max_pixels) for path in existing):
            self.existing.inc()
            return job.row()
        if self.plan.style_input == "image" and job.style is None:
            return job.row(f"no usable style image matches {self.plan.style_pattern}")
        return job


class PrepareStyle(beam.DoFn):
    """All jobs of one style → the style read and prepared once, and the jobs in
    :class:`Batch` es of up to ``plan.batch_size``; failed rows when the style cannot be."""

    def __init__(self, plan):
        self.plan = plan
        self.prepared = Metrics.counter(NAMESPACE, "styles_prepared")

    def setup(self):
        stylizer = load_stylizer(self.plan.model, self.plan.threads)
        self.family, self.network = stylizer.family, stylizer.network

    def _style(self, job):
        if job.style_path is None:
            return job.style
        from nst_tf.images import float_to_uint8, uint8_to_float
        from nst_tf.scale.preprocess import square_thumbnail

        image = _decode(job.style_path, job.style, self.plan.max_pixels)
        if self.plan.style_size:
            image = uint8_to_float(square_thumbnail(float_to_uint8(image), self.plan.style_size))
        return image

    def process(self, item):
        _, jobs = item                     # iterated twice, never copied (it may be huge)
        first = next(iter(jobs))
        try:
            prepared = self.family.prepare_style(self.network, self._style(first),
                                                 **self.plan.prepare_options)
            self.prepared.inc()
        except Exception as e:  # noqa: BLE001  the dead letter: every image of this style
            what = f"style image {first.style}" if first.style_path else "style"
            yield from (job.row(f"{what}: {one_line(e)}") for job in jobs)
        else:
            yield from self._batches(prepared, jobs)

    def _batches(self, prepared, jobs):
        batch = []
        for job in jobs:
            batch.append(job)
            if len(batch) == self.plan.batch_size:
                yield Batch(prepared, batch)
                batch = []
        if batch:
            yield Batch(prepared, batch)


class Stylize(beam.DoFn):
    """A :class:`Batch` → its images read, prepared, stylized (equally sized ones together)
    and written atomically → one row per image."""

    def __init__(self, plan):
        self.plan = plan
        self.written = Metrics.counter(NAMESPACE, "written")

    def setup(self):
        self.stylizer = load_stylizer(self.plan.model, self.plan.threads)

    def process(self, batch):
        examples = []
        for job in batch.jobs:
            try:
                examples.append(self._example(job, batch.style))
            except Exception as e:  # noqa: BLE001  the dead letter
                yield job.row(e)
        outputs = stylize_examples(self.stylizer, examples, self.plan.stylize_options,
                                   with_strength=self.plan.strength is not None)
        for example, output in zip(examples, outputs):
            yield self._write(example.job, output)

    def _example(self, job, style):
        from nst_tf.images import float_to_uint8
        from nst_tf.scale.preprocess import prepare_content

        image = float_to_uint8(_decode(job.path, job.content, self.plan.max_pixels))
        pixels = prepare_content(image, self.plan.content_size, self.plan.crop_size,
                                 what=f"content image {job.content}")
        return Example(job, pixels, style)

    def _write(self, job, output):
        from PIL import Image

        if isinstance(output, str):  # the model's message for this image
            return job.row(output)
        try:
            encoded = io.BytesIO()
            options = {"quality": self.plan.quality} if self.plan.format == "jpeg" else {}
            Image.fromarray(output).save(encoded, format=self.plan.format.upper(), **options)
            write_atomically(join(self.plan.output, job.output), encoded.getvalue())
        except Exception as e:  # noqa: BLE001  the dead letter
            return job.row(f"cannot write {job.output}: {one_line(e)}")
        self.written.inc()
        return job.row()


class CountRows(beam.DoFn):
    """Counts every finished row (Beam metrics ``ok`` / ``failed``) and prints this worker's
    progress every ``plan.progress_seconds``."""

    def __init__(self, plan):
        self.plan = plan
        self.ok = Metrics.counter(NAMESPACE, "ok")
        self.failed = Metrics.counter(NAMESPACE, "failed")

    def setup(self):
        self.counts = {"ok": 0, "failed": 0}
        self.start = self.last = time.monotonic()

    def process(self, row):
        (self.ok if row.status == "ok" else self.failed).inc()
        self.counts[row.status if row.status == "ok" else "failed"] += 1
        now = time.monotonic()
        if self.plan.progress_seconds and now - self.last >= self.plan.progress_seconds:
            self.last = now
            done = sum(self.counts.values())
            print(f"{_PROGRAM}: worker {os.getpid()}: {done} images done ({self.counts['ok']} "
                  f"ok, {self.counts['failed']} failed), {done / (now - self.start):.2f}/s",
                  flush=True)
        yield row


class WriteManifest(beam.DoFn):
    """All ``(content, JSON line)`` pairs → ``manifest.jsonl`` (sorted by content path),
    replaced only when it changes."""

    def __init__(self, plan):
        self.plan = plan

    def process(self, lines):
        text = dataset.manifest_text(lines).encode("utf-8")
        path = self.plan.manifest
        if not (FileSystems.exists(path) and read(path) == text):
            write_atomically(path, text)
            yield path


# --- The transform ----------------------------------------------------------------------------

class StylizeDataset(beam.PTransform):
    """``pipeline | StylizeDataset(content, output, model, ...)``: stylize every file of
    ``content`` into ``output`` (see the module docstring); the result is the
    :class:`~nst_tf.scale.dataset.ManifestRow` of every input file.

    Takes the arguments of :func:`~nst_tf.scale.plan.make_plan`, or a ready ``plan=``. Creating
    it claims the output folder (:func:`~nst_tf.scale.output.claim_output`): a folder that holds
    a run with other settings is refused here, before anything runs.
    """

    def __init__(self, content=None, output=None, model=None, *, plan=None, **kwargs):
        super().__init__()
        self.plan = plan if plan is not None else make_plan(content, output, model, **kwargs)
        if not isinstance(self.plan, DatasetPlan):
            raise TypeError(f"plan must be a DatasetPlan, got {type(self.plan).__name__}")
        self.settings = claim_output(self.plan)

    def expand(self, pbegin):
        plan = self.plan
        pool = []                                  # side inputs of PlanJobs
        if plan.style_input == "image":
            pool = [beam.pvalue.AsSingleton(
                _match(pbegin, "Styles", plan.style_patterns)
                | "ProbeStyles" >> beam.ParDo(ProbeStyle(plan))
                | "StylePool" >> beam.combiners.ToList()
                | "SortStyles" >> beam.Map(lambda names: sorted(set(names))))]
        planned = (_match(pbegin, "Content", plan.content_patterns)
                   | "PlanJobs" >> beam.ParDo(PlanJobs(plan), *pool))
        jobs, linked = _split(planned, "Planned")
        existing = (_match(pbegin, "Outputs", [plan.output_pattern])
                    | "OutputNames" >> beam.FlatMap(
                        lambda m: [(dataset.relative_path(plan.output, m.path), m.path)]
                        if dataset.below(plan.output, m.path) else []))
        triage = ({"job": jobs | "ByOutput" >> beam.Map(lambda job: (job.output, job)),
                   "exists": existing}
                  | "JoinOutputs" >> beam.CoGroupByKey()
                  | "Triage" >> beam.ParDo(Triage(plan)))
        todo, done = _split(triage, "Triaged")
        prepared = (todo
                    | "ByStyle" >> beam.Map(lambda job: (_style_key(job), job))
                    | "GroupByStyle" >> beam.GroupByKey()
                    | "PrepareStyles" >> beam.ParDo(PrepareStyle(plan)))
        batches, unprepared = _split(prepared, "Prepared")
        stylized = (batches
                    | "Spread" >> beam.Reshuffle()
                    | "Stylize" >> beam.ParDo(Stylize(plan)))
        rows = ((linked, done, unprepared, stylized)
                | "AllRows" >> beam.Flatten()
                | "CountRows" >> beam.ParDo(CountRows(plan)))
        _ = (rows
             | "ManifestLines" >> beam.Map(ManifestRow.line)
             | "CollectRows" >> beam.combiners.ToList()
             | "WriteManifest" >> beam.ParDo(WriteManifest(plan)))
        return rows


# --- Running it -------------------------------------------------------------------------------

def _counters(result):
    """``{name: value}`` of the pipeline's counters (committed where the runner has them);
    None when the runner reports no metrics."""
    values = {}
    try:
        query = result.metrics().query(MetricsFilter().with_namespace(NAMESPACE))
    except Exception:  # noqa: BLE001  some runners have no metrics (DaskRunner)
        return None
    for counter in query["counters"]:
        value = counter.committed if counter.committed is not None else counter.attempted
        values[counter.key.metric.name] = values.get(counter.key.metric.name, 0) + (value or 0)
    return values


def read_manifest(plan):
    """The rows of ``plan``'s manifest."""
    text = read(plan.manifest).decode("utf-8")
    return [ManifestRow.from_json(line) for line in text.splitlines() if line.strip()]


def runner_args(args):
    """Beam options with the short runner names of :data:`RUNNERS` spelled out
    (``--runner=dask`` → ``--runner=apache_beam.runners.dask.dask_runner.DaskRunner``)."""
    args = list(args)
    for i, arg in enumerate(args):
        if arg.startswith("--runner="):
            name = arg.split("=", 1)[1]
            args[i] = "--runner=" + RUNNERS.get(name.lower(), name)
        elif arg == "--runner" and i + 1 < len(args):
            args[i + 1] = RUNNERS.get(args[i + 1].lower(), args[i + 1])
    return args


def _pipeline(pipeline_args):
    from apache_beam.options.pipeline_options import PipelineOptions

    try:
        return beam.Pipeline(options=PipelineOptions(runner_args(pipeline_args)))
    except ImportError as e:
        raise ConfigError(f"the runner cannot be loaded ({one_line(e)}); the Dask runner needs "
                          "pip install 'nst-tf[dask]'") from None
    except ValueError as e:  # an unknown runner name
        raise ConfigError(f"{' '.join(str(e).split())} (or dask, for the DaskRunner)") from None


def _wait(result, say, poll_seconds):
    """Wait for the pipeline to end; meanwhile print its counters every ``poll_seconds``
    where the runner has them (Dataflow, Flink, Spark; the DirectRunner returns when it is
    done, the DaskRunner has no metrics)."""
    from apache_beam.runners.runner import PipelineState

    if PipelineState.is_terminal(result.state):
        return
    stop = threading.Event()

    def poll():
        while not stop.wait(poll_seconds):
            counts = _counters(result)
            if counts is not None:
                say(f"running: {counts.get('ok', 0)} ok, {counts.get('failed', 0)} failed, "
                    f"{counts.get('written', 0)} written")

    threading.Thread(target=poll, name="nst-progress", daemon=True).start()
    try:
        result.wait_until_finish()
    finally:
        stop.set()


def _close(result):
    """Close the connection a runner left open (the DaskRunner's client, and the local
    cluster it started when not given one)."""
    client = getattr(result, "client", None)
    if client is not None and hasattr(client, "close"):
        client.close()


def run_plan(plan, pipeline_args=(), progress=True, poll_seconds=30.0):
    """Run the pipeline of ``plan`` with Beam options ``pipeline_args`` (command-line style,
    e.g. ``["--runner=DirectRunner", "--direct_num_workers=2"]``, ``["--runner=dask"]``) and
    return its :class:`~nst_tf.scale.dataset.Summary`.

    Runners that return while the job runs (Dataflow, Flink, Spark) are polled every
    ``poll_seconds`` and their counters printed; the DirectRunner's workers print their own.
    """
    from apache_beam.runners.runner import PipelineState

    pipeline = _pipeline(pipeline_args)
    _ = pipeline | "StylizeDataset" >> StylizeDataset(plan=plan)
    say = (lambda text: print(f"{_PROGRAM}: {text}", flush=True)) if progress else \
        (lambda text: None)
    styles = f", styles from {plan.style_pattern}" if plan.style_pattern else ""
    say(f"{plan.content_pattern} -> {plan.output} with {plan.model} ({plan.family}){styles}")
    result = pipeline.run()
    try:
        _wait(result, say, poll_seconds)
    finally:
        _close(result)
    if result.state != PipelineState.DONE:
        raise NSTError(f"the pipeline ended in state {result.state}")
    counts = _counters(result)
    summary = dataset.Summary.of(read_manifest(plan),
                                 written=None if counts is None else counts.get("written", 0),
                                 counters=counts)
    if summary.counters.get("styles_left_out"):
        say(f"{summary.counters['styles_left_out']} style file(s) left out of the pool (not an "
            f"image, smaller than {plan.min_style_size or 'the minimum'} px or over "
            f"{plan.max_pixels or 'the'} pixels)")
    return summary


def stylize_dataset(content, output, model=None, *, pipeline_args=(), progress=True,
                    **kwargs):
    """Stylize every image below ``content`` into ``output`` with a Beam pipeline.

    Takes the arguments of :func:`~nst_tf.scale.plan.make_plan` (styles, seed, strength,
    recipe, sizes, format, pixel cap, family options) and Beam options ``pipeline_args``;
    returns the run's :class:`~nst_tf.scale.dataset.Summary` (also readable from
    ``output/manifest.jsonl``).

    Example:
        >>> s = stylize_dataset("imagenet/train", "sin/train", styles="paintings",
        ...                     recipe="stylized-imagenet",
        ...                     pipeline_args=["--direct_num_workers=2",
        ...                                    "--direct_running_mode=multi_processing"])
        ...                                                        # doctest: +SKIP
    """
    plan = make_plan(content, output, model, **kwargs)
    return run_plan(plan, pipeline_args, progress)


def print_summary(summary, stream=None):
    """Print the summary line, then up to ten failed images with their reasons."""
    stream = stream or sys.stdout
    print(f"{_PROGRAM}: {summary.line()}", file=stream, flush=True)
    for row in summary.examples:
        print(f"  failed: {row.content}: {row.error}", file=stream)
    if summary.failed > len(summary.examples):
        print(f"  ... and {summary.failed - len(summary.examples)} more (see manifest.jsonl)",
              file=stream)
