"""nst-stylize-dataset against what users' folders hold: links into the content tree, reruns
with other settings, broken outputs, named pipes, decompression bombs, odd folder names,
Ctrl-C with worker processes (issue 28, items 3-7), and the docs' ``photos/**/*.jpg`` (issue
24, item 7). Each is run as a user types it (the console script in a subprocess) where the
command line is what is at stake; tiny images and a tiny random network.
"""

import os
import resource
import shutil
import signal
import struct
import subprocess
import sys
import time
import zlib

import numpy as np
import pytest
from PIL import Image

from nst_tf.cli import stylize_dataset as cli
from nst_tf.errors import ConfigError
from nst_tf.networks import johnson_network
from nst_tf.scale import make_plan, stylize_dataset
from pastiche_helpers import random_pastiche

CLI = os.path.join(os.path.dirname(sys.executable), "nst-stylize-dataset")
ENV = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
ADAIN = os.path.join(os.path.dirname(__file__), "fixtures", "adain")
QUIET = dict(progress=False, progress_seconds=0)


def run(*args, timeout=300, **kwargs):
    """The console script with ``args`` (our flags; Beam's after ``--``)."""
    return subprocess.run([CLI, "--progress_seconds=0", *args], capture_output=True, text=True,
                          timeout=timeout, env=ENV, **kwargs)


def one_line_error(done, *words):
    """Assert that ``done`` failed with exactly one line on stderr naming ``words``."""
    assert done.returncode == 1, (done.stdout, done.stderr)
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("nst-stylize-dataset: error: "), done.stderr
    for word in words:
        assert word in lines[0], lines[0]
    return lines[0]


def save(path, seed=0, size=(32, 40)):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    rng = np.random.default_rng(seed)
    Image.fromarray(rng.integers(0, 256, size + (3,), np.uint8)).save(path)


def snapshot(folder):
    """``{relative path: (mtime_ns, bytes)}`` of every file below ``folder``."""
    found = {}
    for base, _, names in os.walk(folder):
        for name in names:
            path = os.path.join(base, name)
            if os.path.isfile(path):
                with open(path, "rb") as f:
                    found[os.path.relpath(path, folder)] = (os.stat(path).st_mtime_ns, f.read())
    return found


def rows(output):
    import json

    with open(os.path.join(output, "manifest.jsonl"), encoding="utf-8") as f:
        return {row["content"]: row for row in map(json.loads, f)}


@pytest.fixture(scope="module")
def johnson(tmp_path_factory):
    """A tiny single-style network as a .keras file (no styles to choose: the fastest runs)."""
    path = str(tmp_path_factory.mktemp("model") / "johnson.keras")
    johnson_network(alpha=0.25, num_residual=1).save(path)
    return path


# --- Item 3: the output folder through a link into the content tree --------------------------------

def test_output_folder_through_a_link_into_the_inputs_is_refused(tmp_path, johnson):
    photos = tmp_path / "photos"
    for rel in ("a.png", "sub/b.png"):
        save(str(photos / rel))
    (tmp_path / "out").symlink_to(photos, target_is_directory=True)
    before = snapshot(photos)
    done = run(f"--content={photos}", f"--output={tmp_path / 'out'}", f"--model={johnson}")
    one_line_error(done, "inside the content folder", f"through a link: {photos}")
    assert snapshot(photos) == before                       # nothing written among the inputs
    # The other ways round: content below the output folder, styles reached through a link.
    with pytest.raises(ConfigError, match="content folder .* is inside the output folder"):
        make_plan(str(photos / "sub"), str(photos), johnson)
    save(str(tmp_path / "stylized" / "art" / "s.png"))
    (tmp_path / "art").symlink_to(tmp_path / "stylized" / "art", target_is_directory=True)
    with pytest.raises(ConfigError, match=r"style image folder \S+ \(through a link: .*\) is "
                                          "inside the output folder"):
        make_plan(str(photos), str(tmp_path / "stylized"), ADAIN, styles=str(tmp_path / "art"))


def test_a_content_file_linked_into_the_output_folder_is_a_failed_row(tmp_path, johnson):
    photos, output = tmp_path / "photos", tmp_path / "out"
    save(str(photos / "a.png"))
    save(str(output / "elsewhere.png"), seed=1)
    (photos / "b.png").symlink_to(output / "elsewhere.png")
    summary = stylize_dataset(str(photos), str(output), johnson, **QUIET)
    assert (summary.ok, summary.failed) == (1, 1)
    assert rows(output)["b.png"]["error"] == f"b.png is a link into the output folder {output}"
    assert not os.path.exists(output / "b.png")


# --- Item 4: reruns with other settings; outputs that do not decode ------------------------------

@pytest.mark.slow
def test_rerun_with_other_settings_is_refused(tmp_path):
    photos, art, output = tmp_path / "photos", tmp_path / "art", str(tmp_path / "out")
    for i, rel in enumerate(("a.png", "sub/b.png", "c.png")):
        save(str(photos / rel), seed=i)
    for i in range(2):
        save(str(art / f"s{i}.png"), seed=10 + i, size=(24, 24))
    request = dict(styles=str(art), seed=0, **QUIET)
    stylize_dataset(str(photos), output, ADAIN, **request)
    made = snapshot(output)
    # As typed: another seed is refused in one line that names it; nothing is touched.
    done = run(f"--content={photos}", f"--styles={art}", f"--output={output}",
               f"--model={ADAIN}", "--seed=3")
    one_line_error(done, f"{output} holds images made with other settings (seed 0, now 3)",
                   "use another output folder")
    for change, named in [(dict(strength=0.5), "strength [1.0, 1.0], now [0.5, 0.5]"),
                          (dict(content_size=20), "content_size null, now 20"),
                          (dict(format="jpeg"), 'format "png", now "jpeg"')]:
        with pytest.raises(ConfigError, match=named.replace("[", r"\[").replace("]", r"\]")):
            stylize_dataset(str(photos), output, ADAIN, **{**request, **change})
    save(str(art / "s2.png"), seed=12, size=(24, 24))        # a style image added
    with pytest.raises(ConfigError, match="style_files changed"):
        stylize_dataset(str(photos), output, ADAIN, **request)
    assert snapshot(output) == made


def test_rerun_with_a_retrained_model_is_refused(tmp_path):
    photos, output = tmp_path / "photos", str(tmp_path / "out")
    save(str(photos / "a.png"))
    model = str(tmp_path / "model.keras")
    johnson_network(alpha=0.25, num_residual=1).save(model)
    stylize_dataset(str(photos), output, model, **QUIET)
    network = johnson_network(alpha=0.25, num_residual=1)
    network.weights[0].assign(network.weights[0] + 0.1)
    network.save(model)                                     # same path, other weights
    with pytest.raises(ConfigError, match="model_files changed"):
        stylize_dataset(str(photos), output, model, **QUIET)


def test_a_model_folder_fingerprint_follows_its_visible_files(tmp_path):
    """A model folder (SavedModel, train_dir) is fingerprinted by its files' names and bytes;
    hidden files and folders (editor swap files, .git) are left out."""
    from nst_tf.scale.output import model_fingerprint

    model = tmp_path / "model"
    (model / "variables").mkdir(parents=True)
    (model / ".git").mkdir()
    for rel, data in {"saved_model.pb": b"graph", "variables/data": b"w1", ".swp": b"x",
                      ".git/HEAD": b"ref"}.items():
        (model / rel).write_bytes(data)
    first = model_fingerprint(str(model))
    (model / ".swp").write_bytes(b"edited")
    (model / ".git" / "HEAD").write_bytes(b"other")
    assert model_fingerprint(str(model)) == first
    (model / "variables" / "data").write_bytes(b"w2")        # retrained: other weights
    retrained = model_fingerprint(str(model))
    assert retrained != first
    (model / "variables" / "data").rename(model / "variables" / "data2")  # renamed
    assert model_fingerprint(str(model)) not in (first, retrained)


def _remote_over_local():
    """Beam's local file system under an ``nsttest://`` scheme: a stand-in for a ``gs://``
    model folder (Beam finds file systems by subclass)."""
    from apache_beam.io.filesystem import FileMetadata
    from apache_beam.io.localfilesystem import LocalFileSystem

    prefix = "nsttest://"

    class Remote(LocalFileSystem):  # an object store: files only, folders do not exist
        @classmethod
        def scheme(cls):
            return "nsttest"

        def _remote(self, m):
            return FileMetadata(prefix + m.path, m.size_in_bytes, m.last_updated_in_seconds)

        def exists(self, path):
            if path.startswith(prefix):
                return os.path.isfile(path[len(prefix):])
            return super().exists(path)  # Beam's own listing, on local paths

        def metadata(self, path, **kwargs):
            return self._remote(super().metadata(path[len(prefix):], **kwargs))

        def _list(self, dir_or_prefix):
            return (self._remote(m) for m in super()._list(dir_or_prefix[len(prefix):]))

    return prefix


def test_a_remote_model_fingerprint_follows_its_files_names_and_sizes(tmp_path):
    from nst_tf.scale.output import model_fingerprint

    prefix = _remote_over_local()
    model = tmp_path / "model"
    (model / "variables").mkdir(parents=True)
    (model / "saved_model.pb").write_bytes(b"graph")
    (model / "variables" / "data").write_bytes(b"w1")
    url = prefix + str(model)
    first = model_fingerprint(url)
    assert first != model_fingerprint(prefix + str(tmp_path / "other"))   # nothing there
    assert model_fingerprint(url + "/") == first
    (model / "variables" / "data").write_bytes(b"w22")                  # another size
    assert model_fingerprint(url) != first
    (model / "variables" / "data").write_bytes(b"w2")                   # same size: same
    assert model_fingerprint(url) == first                              # (names and sizes only)
    (model / "extra").write_bytes(b"")
    assert model_fingerprint(url) != first
    single = model / "saved_model.pb"                                   # one remote file
    assert model_fingerprint(prefix + str(single)) not in (None, first)


def test_outputs_that_do_not_decode_are_made_again(tmp_path, johnson):
    photos, output = tmp_path / "photos", str(tmp_path / "out")
    for i, rel in enumerate(("a.png", "b.png", "c.png", "d.png")):
        save(str(photos / rel), seed=i)
    stylize_dataset(str(photos), output, johnson, **QUIET)
    made = snapshot(output)
    with open(os.path.join(output, "a.png"), "wb"):
        pass                                                # 0 bytes
    with open(os.path.join(output, "b.png"), "wb") as f:
        f.write(b"garbage")
    with open(os.path.join(output, "c.png"), "r+b") as f:
        f.truncate(len(made["c.png"][1]) // 2)              # truncated
    summary = stylize_dataset(str(photos), output, johnson, **QUIET)
    assert (summary.written, summary.existing) == (3, 1)
    again = snapshot(output)
    assert {rel: data for rel, (_, data) in again.items()} == \
        {rel: data for rel, (_, data) in made.items()}
    assert again["d.png"][0] == made["d.png"][0]            # the good one untouched


# --- Item 5: named pipes and other non-regular files ------------------------------------------------

@pytest.mark.slow
def test_named_pipes_and_devices_are_failed_rows_not_a_hang(tmp_path):
    photos, art, output = tmp_path / "photos", tmp_path / "art", tmp_path / "out"
    save(str(photos / "a.png"))
    save(str(photos / "c.png"), seed=1)
    os.mkfifo(photos / "pipe.jpg")
    (photos / "null.jpg").symlink_to("/dev/null")
    save(str(art / "s.png"), seed=2, size=(24, 24))
    os.mkfifo(art / "pipe.png")                             # in the style pool's folder
    output.mkdir()
    os.mkfifo(output / "c.png")                             # where an output goes
    done = run(f"--content={photos}", f"--styles={art}", f"--output={output}",
               f"--model={ADAIN}", timeout=240)
    assert done.returncode == 0, done.stderr
    assert "4 images: 2 ok (2 stylized now, 0 already there), 2 failed" in done.stdout
    assert "1 style file(s) left out" in done.stdout
    found = rows(output)
    assert found["pipe.jpg"]["error"] == "ImageError: pipe.jpg is a named pipe, not a regular file"
    assert found["null.jpg"]["error"] == \
        "ImageError: null.jpg is a character device, not a regular file"
    assert found["c.png"]["status"] == "ok" and os.path.isfile(output / "c.png")
    assert {r["style"] for r in found.values()} == {"s.png"}


# --- Item 6: a pixel cap, from the header ----------------------------------------------------------

def _chunk(kind, data):
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def huge_png(path, width, height):
    """A black RGB PNG of ``width x height`` pixels that is a few hundred KB on disk."""
    compressor = zlib.compressobj(9)
    row = bytes(1 + 3 * width)                              # filter byte + black pixels
    data = b"".join(compressor.compress(row) for _ in range(height)) + compressor.flush()
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    with open(path, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", header) + _chunk(b"IDAT", data)
                + _chunk(b"IEND", b""))


@pytest.mark.slow
def test_a_huge_image_is_a_failed_row_read_from_its_header(tmp_path):
    # An 8000x8000 PNG of 186 KB decodes to 192 MB (768 MB as float32). Uncapped, under this
    # 6 GB address-space limit, the run ended in a segmentation fault with TensorFlow's default
    # threads (no image made), or, with the one thread used here, gave the image a failed row
    # from deep in TensorFlow (ResourceExhaustedError); with the cap it needs under 2.5 GB
    # (measured on the development machine).
    photos, art, output = tmp_path / "photos", tmp_path / "art", tmp_path / "out"
    for i in range(3):
        save(str(photos / f"a{i}.png"), seed=i)
    huge_png(str(photos / "big.png"), 8000, 8000)
    assert os.path.getsize(photos / "big.png") < 200_000
    save(str(art / "s.png"), seed=5, size=(24, 24))
    huge_png(str(art / "huge.png"), 9000, 9000)

    def limit_address_space():
        resource.setrlimit(resource.RLIMIT_AS, (6 << 30, 6 << 30))

    env = dict(ENV, MALLOC_ARENA_MAX="2", OMP_NUM_THREADS="1")   # fewer per-thread arenas
    done = subprocess.run([CLI, f"--content={photos}", f"--styles={art}", f"--output={output}",
                           f"--model={ADAIN}", "--threads=1", "--progress_seconds=0"],
                          capture_output=True, text=True, timeout=300, env=env,
                          preexec_fn=limit_address_space)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "4 images: 3 ok (3 stylized now, 0 already there), 1 failed" in done.stdout
    assert "1 style file(s) left out" in done.stdout        # the 9000x9000 style
    assert rows(output)["big.png"]["error"] == ("ImageError: image big.png is 8000x8000 = "
                                                "64000000 pixels, more than max_pixels=40000000")
    assert sorted(os.listdir(output)) == ["a0.png", "a1.png", "a2.png", "manifest.jsonl",
                                          "run.json"]


def test_pixel_cap_flag(tmp_path, johnson):
    photos, output = tmp_path / "photos", tmp_path / "out"
    save(str(photos / "a.png"), size=(30, 40))              # 1200 pixels
    save(str(photos / "b.png"), size=(20, 20))              # 400
    summary = stylize_dataset(str(photos), str(output), johnson, max_pixels=1000, **QUIET)
    assert (summary.ok, summary.failed) == (1, 1)
    assert "more than max_pixels=1000" in rows(output)["a.png"]["error"]
    with pytest.raises(ConfigError, match="max_pixels must be a non-negative integer"):
        make_plan(str(photos), str(output), johnson, max_pixels=-1)


# --- Item 7: one line for each request that cannot work --------------------------------------------

def test_unusable_output_folders_and_style_weights_are_one_line(tmp_path, johnson, capsys):
    photos = tmp_path / "photos"
    save(str(photos / "a.png"))
    (tmp_path / "afile").write_text("a file, not a folder")
    one_line_error(run(f"--content={photos}", f"--output={tmp_path / 'afile' / 'out'}",
                       f"--model={johnson}"),
                   f"cannot create the output folder {tmp_path / 'afile' / 'out'}: "
                   f"{tmp_path / 'afile'} is a file")
    # The same program in this process (faster) for the others.
    pastiche = str(tmp_path / "pastiche.keras")
    random_pastiche(3, seed=2).save(pastiche)
    (tmp_path / "out" / "manifest.jsonl").mkdir(parents=True)
    cases = [([f"--output={tmp_path / 'afile'}", f"--model={johnson}"],
              f"cannot use {tmp_path / 'afile'} as the output folder: it is a file"),
             ([f"--output={tmp_path / 'out'}", f"--model={johnson}"],
              "manifest.jsonl is a folder, not a file"),
             ([f"--output={tmp_path / 'out2'}", f"--model={pastiche}", "--style_weights={0: 0.5"],
              "style_weights '{0: 0.5' is not a mixture {index: weight, ...} (SyntaxError: ")]
    for args, message in cases:
        assert cli.main(["nst-stylize-dataset", f"--content={photos}", *args]) == 1
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and message in err, err
    assert not os.path.exists(tmp_path / "out2")


@pytest.mark.slow
def test_folder_names_with_glob_characters_are_taken_literally(tmp_path, johnson):
    # "set[1]" exists: it is the content folder, not a pattern matching "set1" (nor "set]1]",
    # which its quoted form matches too); the output folder "out[1]" is listed literally too,
    # so a rerun finds its outputs.
    for folder, seed in (("set[1]", 0), ("set1", 1), ("set]1]", 4)):
        save(str(tmp_path / folder / "a.png"), seed=seed)
        save(str(tmp_path / folder / f"only_in_{folder[:3]}{seed}.png"), seed=seed + 2)
    output = tmp_path / "out[1]"
    done = run(f"--content={tmp_path / 'set[1]'}", f"--output={output}", f"--model={johnson}")
    assert (done.returncode, done.stderr) == (0, "")
    assert sorted(rows(output)) == ["a.png", "only_in_set0.png"]
    again = stylize_dataset(str(tmp_path / "set[1]"), str(output), johnson, **QUIET)
    assert (again.written, again.existing) == (0, 2)


@pytest.mark.slow
def test_ctrl_c_with_worker_processes_prints_one_line(tmp_path, johnson):
    photos, output = tmp_path / "photos", tmp_path / "out"
    for i in range(240):
        save(str(photos / f"{i:03d}.png"), seed=i, size=(32, 32))
    process = subprocess.Popen(
        [CLI, f"--content={photos}", f"--output={output}", f"--model={johnson}",
         "--batch_size=1", "--progress_seconds=0", "--", "--direct_num_workers=2",
         "--direct_running_mode=multi_processing"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV,
        start_new_session=True)
    def images_written():
        return os.path.isdir(output) and any(n.endswith(".png") for n in os.listdir(output))

    try:
        deadline = time.monotonic() + 240
        while not images_written() and process.poll() is None:
            assert time.monotonic() < deadline, "no image was written"
            time.sleep(0.05)
        os.killpg(process.pid, signal.SIGINT)               # Ctrl-C: the whole process group
        out, err = process.communicate(timeout=120)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
    assert process.returncode == 130, err
    assert err.splitlines() == ["nst-stylize-dataset: interrupted; the images written so far "
                                "stay, and the same command finishes the rest"]
    assert len([n for n in os.listdir(output) if n.endswith(".png")]) < 240


# --- Issue 24, item 7: the docs' globstar ------------------------------------------------------------

@pytest.mark.slow
def test_globstar_pattern_includes_files_directly_in_the_folder(tmp_path, johnson):
    for rel in ("top.jpg", "a/b.jpg", "a/c/d.jpg", "a/c/skip.png"):
        save(str(tmp_path / "photos" / rel), seed=len(rel))
    done = run("--content=photos/**/*.jpg", "--output=out", f"--model={johnson}",
               cwd=tmp_path)                                # as the docs write it
    assert done.returncode == 0, done.stderr
    assert sorted(rows(tmp_path / "out")) == ["a/b.jpg", "a/c/d.jpg", "top.jpg"]
    # Patterns whose variants overlap match a file once.
    summary = stylize_dataset(str(tmp_path / "photos/**/**/*.jpg"), str(tmp_path / "out2"),
                              johnson, **QUIET)
    assert (summary.total, summary.failed) == (3, 0)


# --- Temporaries of a run killed mid-write ----------------------------------------------------------

@pytest.mark.slow
def test_temporaries_left_by_a_killed_run_are_deleted_by_the_next(tmp_path, johnson):
    """kill -9 between writing an image's temporary and renaming it leaves ``.a.png.<hex>.tmp``
    (named as every writer names them, nst_tf.io.temporary_name): the next run deletes them,
    in subfolders too, and nothing else."""
    from nst_tf.io import temporary_name

    photos, output = tmp_path / "photos", tmp_path / "out"
    for i, rel in enumerate(("a.png", "sub/b.png")):
        save(str(photos / rel), seed=i)
    os.makedirs(output / "sub")
    stale = [temporary_name(str(output / "a.png")), temporary_name(str(output / "sub" / "b.png")),
             temporary_name(str(output / "manifest.jsonl"))]
    for path in stale:
        with open(path, "wb") as f:
            f.write(b"half an image")
    with open(output / ".notes.tmp", "w") as f:             # not a temporary of ours: kept
        f.write("mine")
    done = run(f"--content={photos}", f"--output={output}", f"--model={johnson}")
    assert (done.returncode, done.stderr) == (0, "")
    assert not any(os.path.exists(path) for path in stale)
    assert sorted(rows(output)) == ["a.png", "sub/b.png"]
    assert sorted(name for name in os.listdir(output) if name.startswith(".")) == [".notes.tmp"]
