"""``nst-prefer``: find the style mix a person likes by picking stylizations in a web page.

Three commands::

    nst-prefer --content=photo.jpg --model=varied --db=prefs.sqlite [--question=grid4|pair]
               [--port=8765] [--host=127.0.0.1]
        serve the page on http://127.0.0.1:8765/ (add ?annotator=NAME to tag the answers):
        four stylizations in a 2×2 grid (grid4, the default) or two side by side (pair);
        restarting on the same --db continues where it stopped
    nst-prefer export --db=prefs.sqlite --format=jsonl|csv [--output=FILE]
        every answer not undone, one per line (stdout by default); a grid answer is
        {"options": [[...] × 4], "choice": 0-3 | "none" | "skip", "annotator": ..., "time": ...},
        a pair {"left": [...], "right": [...], "choice": "left"|"right"|"tie"|"skip",
        "annotator": ..., "time": ...}
    nst-prefer best --db=prefs.sqlite --output=best.png
        render the best mix learned so far and print its weights
    nst-prefer backup --db=prefs.sqlite --output=backup.sqlite
        copy the whole session into one self-contained SQLite file (safe while the page is
        being served, and after a crash or ``kill -9``)

``export``, ``best`` and ``backup`` only read the database (SQLite ``mode=ro``), refuse a file
that is not a session database, and refuse an ``--output`` that is the database or one of its
SQLite files (``-wal``, ``-shm``, ``-journal``). The server keeps the database in SQLite's WAL
mode: answers reach ``prefs.sqlite`` itself soon after each commit, and all of them when the
server stops (Ctrl-C or SIGTERM); after a crash the newest ones may sit in ``prefs.sqlite-wal``
only, so copy a session with ``backup`` (or copy the ``-wal`` file with it), never the
``.sqlite`` file alone.

The web page needs the ``ui`` extra (``pip install nst-tf[ui]``: Flask). Errors are one line on
stderr with exit code 1.
"""

import csv
import io
import json
import os
import signal
import sys

from absl import flags

from nst_tf.cli.runner import call_reporting_errors, entry_points
from nst_tf.errors import ConfigError

PROGRAM = "nst-prefer"


# ------------------------------------------------------------------ shared
def _open_store(db, readonly, question=None):
    """The session's store: read-only (``export``, ``best``: the file must be a session
    database and is never written) or read-write (``serve``: created if missing)."""
    from nst_tf.preference.store import PreferenceStore

    if readonly and not os.path.exists(db):
        raise ConfigError(f"database {db} does not exist")
    return PreferenceStore(db, kind=question, readonly=readonly)


def _renderer(content, model, size):
    """``(render(weights) -> image, num_styles)`` for a content image and a pastiche model."""
    import nst_tf
    from nst_tf import families, images
    from nst_tf.models.pastiche.family import num_styles_of

    family, network = families.resolve(model)
    if family.name != "pastiche":
        raise ConfigError(f"--model must be a multi-style (pastiche) model, {model!r} is a "
                          f"{family.name} model")
    image = images.load_image(content, max_size=size or None)

    def render(weights):
        return nst_tf.stylize(image, weights, model=network, crop=True)

    return render, num_styles_of(network)


def _refuse_own_files(db, output):
    """An ``--output`` that is the database or one of SQLite's files beside it (resolved paths,
    links included) would destroy the session: refuse it."""
    from nst_tf.io import OutputPathError, same_file

    for suffix in ("", "-wal", "-shm", "-journal"):
        if same_file(output, db + suffix):
            what = "the database" if not suffix else f"the database's {suffix[1:]} file"
            raise OutputPathError(f"--output={output} is {what} {db}{suffix}: writing it would "
                                  "destroy the session; choose another --output")


def _session_settings(store, content, model):
    """Content and model of the session: from the flags, else from the database."""
    content = content or store.get_meta("content")
    model = model or store.get_meta("model")
    if not content or not model:
        raise ConfigError(f"{store.path} records no content/model; pass --content and --model")
    return content, model


# ------------------------------------------------------------------ serve
def define_serve_flags(fv):
    flags.DEFINE_string("content", None, "Content photo to stylize.", flag_values=fv)
    flags.DEFINE_string("model", "varied", "Multi-style model: 'varied', 'monet' or a Magenta "
                        "checkpoint.", flag_values=fv)
    flags.DEFINE_string("db", None, "SQLite file of the session (created if missing).",
                        flag_values=fv)
    flags.DEFINE_integer("port", 8765, "Port to listen on.", flag_values=fv)
    flags.DEFINE_string("host", "127.0.0.1", "Address to bind (127.0.0.1: this machine only).",
                        flag_values=fv)
    flags.DEFINE_integer("size", 384, "Longest side of the content image, in pixels (0: as is).",
                         flag_values=fv)
    flags.DEFINE_integer("seed", 0, "Seed of the questions and of the order on screen.",
                         flag_values=fv)
    flags.DEFINE_enum("question", "grid4", ["grid4", "pair"], "grid4: pick the best of four "
                      "stylizations in a 2x2 grid; pair: the better of two (keys left/right). "
                      "Unset: a continued --db keeps its kind.", flag_values=fv)
    flags.mark_flags_as_required(["content", "db"], flag_values=fv)


def build_app(content, model, db, size=384, seed=0, question=None):
    """The Flask app of a session (used by ``serve`` and by tests); ``question`` None: the kind
    the database already holds, else ``grid4``."""
    try:
        from nst_tf.preference.app import create_app
    except ImportError as e:
        raise ConfigError(f"the web page needs Flask: pip install 'nst-tf[ui]' ({e})") from None
    from nst_tf.preference.session import PreferenceSession

    render, num_styles = _renderer(content, model, size)   # bad content/model: no file created
    store = _open_store(db, readonly=False, question=question)
    known = store.get_meta("num_styles")
    if known is not None and known != num_styles:
        raise ConfigError(f"{db} holds a session with {known} styles; model {model!r} has "
                          f"{num_styles}")
    store.set_meta("content", os.path.abspath(content))
    store.set_meta("model", model if not os.path.exists(model) else os.path.abspath(model))
    store.set_meta("num_styles", num_styles)
    store.set_meta("size", size)
    store.set_meta("seed", seed)
    return create_app(PreferenceSession(store, num_styles, render, seed=seed))


def execute_serve(fv):
    app, code = call_reporting_errors(PROGRAM, build_app, fv.content, fv.model, fv.db,
                                      size=fv.size, seed=fv.seed,
                                      question=fv.question if fv["question"].present else None)
    if code:
        return code
    print(f"{PROGRAM}: serving on http://{fv.host}:{fv.port}/", file=sys.stderr, flush=True)
    signal.signal(signal.SIGTERM, _stop)   # `kill`: stop like Ctrl-C, closing the database
    session = app.extensions["nst_session"]
    try:
        app.run(host=fv.host, port=fv.port, threaded=True, use_reloader=False)
    except OSError as e:
        return call_reporting_errors(PROGRAM, _raise, e)[1]
    finally:
        session.close()
        session.store.close()   # moves the write-ahead log into the .sqlite file
    print(f"{PROGRAM}: stopped; every answer is in {fv.db}", file=sys.stderr)
    return 0


def _stop(signum, frame):
    raise KeyboardInterrupt


def _raise(error):
    raise error


# ------------------------------------------------------------------ export
def define_export_flags(fv):
    flags.DEFINE_string("db", None, "SQLite file of the session.", flag_values=fv)
    flags.DEFINE_enum("format", "jsonl", ["jsonl", "csv"], "Output format.", flag_values=fv)
    flags.DEFINE_string("output", None, "Output file (default: stdout).", flag_values=fv)
    flags.mark_flags_as_required(["db"], flag_values=fv)


def export_text(db, fmt):
    """The answers of ``db`` (undone ones excluded) as JSONL or CSV text."""
    store = _open_store(db, readonly=True)
    try:
        rows, kind = store.export_rows(), store.kind
    finally:
        store.close()
    if fmt == "jsonl":
        return "".join(json.dumps(row) + "\n" for row in rows)
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, kind.export_fields, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow(kind.csv_row(row))
    return buffer.getvalue()


def _export(db, fmt, output):
    from nst_tf.io import atomic_write

    if output is not None:
        _refuse_own_files(db, output)
    text = export_text(db, fmt)
    if output is None:
        sys.stdout.write(text)
    else:
        with atomic_write(output, "w") as f:
            f.write(text)


def execute_export(fv):
    return call_reporting_errors(f"{PROGRAM} export", _export, fv.db, fv.format, fv.output)[1]


# ------------------------------------------------------------------ best
def define_best_flags(fv):
    flags.DEFINE_string("db", None, "SQLite file of the session.", flag_values=fv)
    flags.DEFINE_string("output", None, "Image file to write (PNG or JPEG by extension).",
                        flag_values=fv)
    flags.DEFINE_string("content", None, "Content photo (default: the session's).",
                        flag_values=fv)
    flags.DEFINE_string("model", None, "Model (default: the session's).", flag_values=fv)
    flags.mark_flags_as_required(["db", "output"], flag_values=fv)


def best_mix(db, output, content=None, model=None):
    """Render the best mix of the session in ``db`` to ``output``; returns the weights."""
    from nst_tf import images
    from nst_tf.io import check_output_dir
    from nst_tf.preference.learner import PreferenceLearner

    check_output_dir(output)
    _refuse_own_files(db, output)
    store = _open_store(db, readonly=True)
    try:
        content, model = _session_settings(store, content, model)
        size, seed, answers = store.get_meta("size", 0), store.get_meta("seed", 0), \
            store.learner_data()
    finally:
        store.close()
    render, num_styles = _renderer(content, model, size)
    learner = PreferenceLearner(num_styles, seed=seed)
    for options, chosen in answers:
        learner.add_choice(options, chosen)
    weights = learner.best()
    images.save_image(output, render(weights))
    return weights


def execute_best(fv):
    weights, code = call_reporting_errors(f"{PROGRAM} best", best_mix, fv.db, fv.output, fv.content,
                                          fv.model)
    if not code:
        mix = {int(i): round(float(w), 4) for i, w in enumerate(weights) if w > 0}
        print(json.dumps(dict(sorted(mix.items(), key=lambda kv: -kv[1]))))
    return code


# ------------------------------------------------------------------ backup
def define_backup_flags(fv):
    flags.DEFINE_string("db", None, "SQLite file of the session.", flag_values=fv)
    flags.DEFINE_string("output", None, "The copy to write (one self-contained SQLite file).",
                        flag_values=fv)
    flags.mark_flags_as_required(["db", "output"], flag_values=fv)


def backup(db, output):
    """Copy the session in ``db`` (answers in its write-ahead log included) to ``output``."""
    _refuse_own_files(db, output)
    store = _open_store(db, readonly=True)
    try:
        store.backup(output)
        return len(store.answers(include_undone=True))
    finally:
        store.close()


def execute_backup(fv):
    count, code = call_reporting_errors(f"{PROGRAM} backup", backup, fv.db, fv.output)
    if not code:
        print(f"saved {fv.output} ({count} answers)")
    return code


_COMMANDS = {
    "serve": entry_points(PROGRAM, define_serve_flags, execute_serve),
    "export": entry_points(f"{PROGRAM} export", define_export_flags, execute_export),
    "best": entry_points(f"{PROGRAM} best", define_best_flags, execute_best),
    "backup": entry_points(f"{PROGRAM} backup", define_backup_flags, execute_backup),
}


def _split(argv):
    if len(argv) > 1 and argv[1] in _COMMANDS:
        return _COMMANDS[argv[1]], [f"{argv[0]} {argv[1]}"] + list(argv[2:])
    return _COMMANDS["serve"], list(argv)


def main(argv=None):
    """Run with fresh flags (``argv`` starts with the program name); returns the exit code."""
    (command_main, _), rest = _split(sys.argv if argv is None else argv)
    return command_main(rest)


def run(argv=None):
    """Console entry point."""
    # The learner's matrices are small: one BLAS thread is ~30x faster than many on a busy
    # machine (NumPy reads this when it is first imported, which happens after this line).
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    (_, command_run), rest = _split(sys.argv if argv is None else argv)
    command_run(rest)


if __name__ == "__main__":
    from nst_tf.cli.launch import launch

    launch(PROGRAM)
