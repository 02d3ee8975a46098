"""Stylize a whole dataset with Apache Beam: :class:`StylizeDataset` and :func:`stylize_dataset`.

The same pipeline runs on Beam's DirectRunner (one machine, one or more worker processes),
Dataflow, Flink and Spark; all file access goes through Beam's ``FileSystems`` (local, ``gs://``,
``s3://``, ``hdfs://``). Its shape::

    MatchFiles(content) ─▶ plan each image: style + strength = f(seed, relative path)
                              │  (style pool: MatchFiles(styles) ─▶ probe sizes ─▶ sorted list,
                              │   a side input)
    MatchFiles(output) ──▶ CoGroupByKey(output name): already there → "ok", two inputs with
                              │  one output name → the second "failed"
                              ▼
    GroupByKey(style) ─▶ read the style image once, Family.prepare_style once (AdaIN
                              │  statistics, an arbitrary-style embedding) for all its images
                              ▼
    Reshuffle ─▶ read + decode + resize/crop the content ─▶ RunInference(StylizeModelHandler):
                              │  equally sized images batched, Family.stylize_batch
                              ▼
    encode PNG / JPEG ─▶ FileSystems.create(temporary name) ─▶ FileSystems.rename(final name)
                              ▼
    every image's manifest row ─▶ one sorted manifest.jsonl (written only when it changed)

Nothing stops the pipeline for one image: unreadable, truncated or non-image files, a style
image that cannot be read, a failed forward pass or write become ``"failed"`` rows with the
reason (Beam's dead-letter pattern; ``RunInference(...).with_exception_handling()`` catches
what the handler does not). Outputs that exist are not recomputed, so a rerun after an
interruption (or after deleting some outputs) finishes the job and writes nothing else.

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
import time
import uuid

import apache_beam as beam
from apache_beam.io import fileio
from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems
from apache_beam.metrics import Metrics
from apache_beam.metrics.metric import MetricsFilter
from apache_beam.ml.inference.base import RunInference

from nst_tf.errors import NSTError
from nst_tf.scale import dataset
from nst_tf.scale.dataset import Job, ManifestRow, one_line
from nst_tf.scale.handler import NAMESPACE, Example, StylizeModelHandler, load_stylizer
from nst_tf.scale.plan import DatasetPlan, join, make_plan

_ROW = "row"
_PROGRAM = "nst-stylize-dataset"


def _read(path):
    with FileSystems.open(path, compression_type=CompressionTypes.UNCOMPRESSED) as f:
        return f.read()


def _write_atomically(path, data):
    """Write ``data`` to a temporary name beside ``path``, then rename it to ``path``."""
    folder, name = path.rsplit("/", 1)
    temporary = f"{folder}/.{name}.{uuid.uuid4().hex[:12]}.tmp"
    try:
        with FileSystems.create(temporary, compression_type=CompressionTypes.UNCOMPRESSED) as f:
            f.write(data)
        FileSystems.rename([temporary], [path])
    except BaseException:
        try:
            FileSystems.delete([temporary])
        except Exception:  # noqa: BLE001  it may not exist
            pass
        raise


def _style_key(job):
    return json.dumps(job.style, sort_keys=True)


# --- Steps ------------------------------------------------------------------------------------

class ProbeStyle(beam.DoFn):
    """A matched style file → its relative path, when it is an image of the minimum size
    (reading only its header); other files are counted and left out of the pool."""

    def __init__(self, plan):
        self.plan = plan
        self.unusable = Metrics.counter(NAMESPACE, "styles_left_out")

    def process(self, metadata):
        rel = dataset.relative_path(self.plan.style_root, metadata.path)
        if not dataset.is_hidden(rel):
            if self._usable(metadata.path):
                yield rel
            else:
                self.unusable.inc()

    def _usable(self, path):
        from PIL import Image

        try:
            with FileSystems.open(path, compression_type=CompressionTypes.UNCOMPRESSED) as f:
                size = Image.open(f).size
        except Exception:  # noqa: BLE001  not an image: not a style
            return False
        return not self.plan.min_style_size or min(size) >= self.plan.min_style_size


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


def _plan_jobs(metadata, plan, pool):
    rel = dataset.relative_path(plan.content_root, metadata.path)
    if not dataset.is_hidden(rel):
        yield plan_job(plan, rel, metadata.path, pool)


class Triage(beam.DoFn):
    """Per output name: the jobs planned for it and whether it exists → to do, or a row."""

    def __init__(self, plan):
        self.plan = plan
        self.existing = Metrics.counter(NAMESPACE, "existing")

    def process(self, item):
        name, found = item
        jobs = sorted(found["job"], key=lambda job: job.content)
        # No job: a file in the output folder that no input maps to (left alone).
        for job in jobs[1:]:
            yield beam.pvalue.TaggedOutput(_ROW, job.row(
                f"its output {name} is also the output of {jobs[0].content}"))
        if jobs and found["exists"]:
            self.existing.inc()
            yield beam.pvalue.TaggedOutput(_ROW, jobs[0].row())
        elif jobs and self.plan.style_input == "image" and jobs[0].style is None:
            yield beam.pvalue.TaggedOutput(_ROW, jobs[0].row(
                f"no usable style image matches {self.plan.style_pattern}"))
        elif jobs:
            yield jobs[0]


class PrepareStyle(beam.DoFn):
    """All jobs of one style → the style read and prepared once, paired with each job."""

    def __init__(self, plan):
        self.plan = plan
        self.prepared = Metrics.counter(NAMESPACE, "styles_prepared")

    def setup(self):
        stylizer = load_stylizer(self.plan.model, self.plan.threads)
        self.family, self.network = stylizer.family, stylizer.network

    def _style(self, job):
        if job.style_path is None:
            return job.style
        from nst_tf.images import decode_image, float_to_uint8, uint8_to_float
        from nst_tf.scale.preprocess import square_thumbnail

        image = decode_image(_read(job.style_path), job.style_path)
        if self.plan.style_size:
            image = uint8_to_float(square_thumbnail(float_to_uint8(image), self.plan.style_size))
        return image

    def process(self, item):
        _, jobs = item                     # iterated twice, never copied (it may be huge)
        first = next(iter(jobs))
        try:
            prepared = self.family.prepare_style(self.network, self._style(first),
                                                 **self.plan.prepare_options)
            error = None
            self.prepared.inc()
        except Exception as e:  # noqa: BLE001  the dead letter: every image of this style
            what = f"style image {first.style}" if first.style_path else "style"
            error = f"{what}: {one_line(e)}"
        for job in jobs:
            yield (job, prepared) if error is None else \
                beam.pvalue.TaggedOutput(_ROW, job.row(error))


class ReadContent(beam.DoFn):
    """``(job, prepared style)`` → an :class:`~nst_tf.scale.handler.Example` (the content read,
    converted to RGB, resized and cropped), or a failed row."""

    def __init__(self, plan):
        self.plan = plan

    def process(self, item):
        from nst_tf.images import decode_image, float_to_uint8
        from nst_tf.scale.preprocess import prepare_content

        job, style = item
        try:
            image = float_to_uint8(decode_image(_read(job.path), job.content))
            pixels = prepare_content(image, self.plan.content_size, self.plan.crop_size,
                                     what=f"content image {job.content}")
            yield Example(job, pixels, style)
        except Exception as e:  # noqa: BLE001  the dead letter
            yield beam.pvalue.TaggedOutput(_ROW, job.row(e))


class WriteImage(beam.DoFn):
    """A ``PredictionResult`` → the encoded image at its output path (atomically) → a row."""

    def __init__(self, plan):
        self.plan = plan
        self.written = Metrics.counter(NAMESPACE, "written")

    def process(self, result):
        from PIL import Image

        job, output = result.example, result.inference
        if isinstance(output, str):  # the handler's message for this image
            yield job.row(output)
        else:
            try:
                encoded = io.BytesIO()
                options = {"quality": self.plan.quality} if self.plan.format == "jpeg" else {}
                Image.fromarray(output).save(encoded, format=self.plan.format.upper(), **options)
                _write_atomically(join(self.plan.output, job.output), encoded.getvalue())
                self.written.inc()
                yield job.row()
            except Exception as e:  # noqa: BLE001  the dead letter
                yield job.row(f"cannot write {job.output}: {one_line(e)}")


def dead_letters(failure):
    """``(failed batch, error)`` of ``RunInference``'s dead-letter output → failed rows. Beam
    gives the error as ``(type, repr, traceback lines)``; its last line is ``"Type: message"``."""
    batch, error = failure
    if isinstance(error, tuple):
        error = " ".join(error[2][-1].split()) if error[2] else f"{error[0].__name__}: {error[1]}"
    for example in batch:
        yield example.job.row(error)


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
        if not (FileSystems.exists(path) and _read(path) == text):
            _write_atomically(path, text)
            yield path


# --- The transform ----------------------------------------------------------------------------

class StylizeDataset(beam.PTransform):
    """``pipeline | StylizeDataset(content, output, model, ...)``: stylize every file of
    ``content`` into ``output`` (see the module docstring); the result is the
    :class:`~nst_tf.scale.dataset.ManifestRow` of every input file.

    Takes the arguments of :func:`~nst_tf.scale.plan.make_plan`, or a ready ``plan=``.
    """

    def __init__(self, content=None, output=None, model=None, *, plan=None, **kwargs):
        super().__init__()
        self.plan = plan if plan is not None else make_plan(content, output, model, **kwargs)
        if not isinstance(self.plan, DatasetPlan):
            raise TypeError(f"plan must be a DatasetPlan, got {type(self.plan).__name__}")

    def expand(self, pbegin):
        plan = self.plan
        pool = []
        if plan.style_input == "image":
            pool = beam.pvalue.AsSingleton(
                pbegin
                | "MatchStyles" >> fileio.MatchFiles(plan.style_pattern)
                | "ProbeStyles" >> beam.ParDo(ProbeStyle(plan))
                | "StylePool" >> beam.combiners.ToList()
                | "SortStyles" >> beam.Map(sorted))
        jobs = (pbegin
                | "MatchContent" >> fileio.MatchFiles(plan.content_pattern)
                | "PlanJobs" >> beam.FlatMap(_plan_jobs, plan, pool)
                | "ByOutput" >> beam.Map(lambda job: (job.output, job)))
        existing = (pbegin
                    | "MatchOutputs" >> fileio.MatchFiles(
                        plan.output + "/**",
                        empty_match_treatment=fileio.EmptyMatchTreatment.ALLOW)
                    | "OutputNames" >> beam.Map(
                        lambda m: (dataset.relative_path(plan.output, m.path), True)))
        triage = ({"job": jobs, "exists": existing}
                  | "JoinOutputs" >> beam.CoGroupByKey()
                  | "Triage" >> beam.ParDo(Triage(plan)).with_outputs(_ROW, main="todo"))
        ready = (triage.todo
                 | "ByStyle" >> beam.Map(lambda job: (_style_key(job), job))
                 | "GroupByStyle" >> beam.GroupByKey()
                 | "PrepareStyles" >> beam.ParDo(PrepareStyle(plan)).with_outputs(
                     _ROW, main="ready"))
        examples = (ready.ready
                    | "Spread" >> beam.Reshuffle()
                    | "ReadContent" >> beam.ParDo(ReadContent(plan)).with_outputs(
                        _ROW, main="example"))
        handler = StylizeModelHandler(plan.model, plan.stylize_options, plan.batch_size,
                                      with_strength=plan.strength is not None,
                                      threads=plan.threads)
        results, failures = (examples.example
                             | "Stylize" >> RunInference(handler).with_exception_handling())
        rows = ((triage[_ROW], ready[_ROW], examples[_ROW],
                 results | "WriteImages" >> beam.ParDo(WriteImage(plan)),
                 failures.failed_inferences | "DeadLetters" >> beam.FlatMap(dead_letters))
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
    except Exception:  # noqa: BLE001  some runners have no metrics
        return None
    for counter in query["counters"]:
        value = counter.committed if counter.committed is not None else counter.attempted
        values[counter.key.metric.name] = values.get(counter.key.metric.name, 0) + (value or 0)
    return values


def read_manifest(plan):
    """The rows of ``plan``'s manifest."""
    text = _read(plan.manifest).decode("utf-8")
    return [ManifestRow.from_json(line) for line in text.splitlines() if line.strip()]


def run_plan(plan, pipeline_args=(), progress=True, poll_seconds=30.0):
    """Run the pipeline of ``plan`` with Beam options ``pipeline_args`` (command-line style,
    e.g. ``["--runner=DirectRunner", "--direct_num_workers=2"]``) and return its
    :class:`~nst_tf.scale.dataset.Summary`.

    Runners that return while the job runs (Dataflow, Flink, Spark) are polled every
    ``poll_seconds`` and their counters printed; the DirectRunner's workers print their own.
    """
    from apache_beam.options.pipeline_options import PipelineOptions
    from apache_beam.runners.runner import PipelineState

    pipeline = beam.Pipeline(options=PipelineOptions(list(pipeline_args)))
    _ = pipeline | "StylizeDataset" >> StylizeDataset(plan=plan)
    say = (lambda text: print(f"{_PROGRAM}: {text}", flush=True)) if progress else \
        (lambda text: None)
    styles = f", styles from {plan.style_pattern}" if plan.style_pattern else ""
    say(f"{plan.content_pattern} -> {plan.output} with {plan.model} ({plan.family}){styles}")
    result = pipeline.run()
    while not PipelineState.is_terminal(result.state):
        counts = _counters(result) or {}
        say(f"running: {counts.get('ok', 0)} ok, {counts.get('failed', 0)} failed, "
            f"{counts.get('written', 0)} written")
        result.wait_until_finish(duration=int(poll_seconds * 1000))
    if result.state != PipelineState.DONE:
        raise NSTError(f"the pipeline ended in state {result.state}")
    counts = _counters(result)
    summary = dataset.Summary.of(read_manifest(plan),
                                 written=None if counts is None else counts.get("written", 0),
                                 counters=counts)
    if summary.counters.get("styles_left_out"):
        say(f"{summary.counters['styles_left_out']} style file(s) left out of the pool (not an "
            f"image, or smaller than {plan.min_style_size or 'the minimum'} px)")
    return summary


def stylize_dataset(content, output, model=None, *, pipeline_args=(), progress=True,
                    **kwargs):
    """Stylize every image below ``content`` into ``output`` with a Beam pipeline.

    Takes the arguments of :func:`~nst_tf.scale.plan.make_plan` (styles, seed, strength,
    recipe, sizes, format, family options) and Beam options ``pipeline_args``; returns the
    run's :class:`~nst_tf.scale.dataset.Summary` (also readable from ``output/manifest.jsonl``).

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
