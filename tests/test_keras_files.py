"""Every ``.keras`` file nst_tf writes loads in a fresh process that has imported nothing else.

Keras finds a custom layer only when the module that registers it was imported; a file holding a
layer of a family module the loader did not import fails with "could not be deserialized". The
parent process here builds one small network per family, writes it with
:func:`nst_tf.export_keras` and computes the reference output; each file is then loaded by a new
Python that imports only ``nst_tf`` (``nst_tf.stylize`` / ``nst_tf.synthesize``); plain
``keras.saving.load_model`` needs ``import nst_tf.networks`` first, which registers every layer
(checked against a scan of the source).
"""

import ast
import json
import os
import subprocess
import sys

import numpy as np
import pytest

import nst_tf
from nst_tf.export import export_keras
from nst_tf.networks import (adain_network, arbitrary_network, as_weights_network,
                             johnson_network, pastiche_network, texture_network)

from conftest import ROOT
from programs import program_env

PHOTO = np.random.default_rng(0).random((36, 40, 3)).astype(np.float32)
STYLE = np.random.default_rng(1).random((32, 32, 3)).astype(np.float32)

#: family -> (network factory, how the child process runs the file: "stylize" with the style
#: argument, or "synthesize").
FAMILIES = {
    "johnson": (lambda: johnson_network(alpha=0.25), ("stylize", None)),
    # Trained with labels, written (and run) in the mixing-weights form.
    "pastiche": (lambda: pastiche_network(3, alpha=0.25, style_input="labels"), ("stylize", 1)),
    "texture": (lambda: texture_network(num_scales=3, channels=4, seed=3), ("synthesize", None)),
    "adain": (lambda: adain_network(channel_divisor=16), ("stylize", "style")),
    "arbitrary": (lambda: arbitrary_network(alpha=0.25, depth_multiplier=0.25),
                  ("stylize", "style")),
}

_CHILD = """
import json, sys
import numpy as np
how, style, path, out = json.loads(sys.argv[1])
import nst_tf
if how == "synthesize":
    image = nst_tf.synthesize(path, (16, 24), seed=4)
else:
    style = np.load(style) if style == "style.npy" else style
    image = nst_tf.stylize(np.load("photo.npy"), style, model=path, crop=True)
np.save(out, np.asarray(image))
"""

def _run(tmp_path, name, how, style):
    arguments = [how, "style.npy" if style == "style" else style, f"{name}.keras",
                 f"{name}.out.npy"]
    return subprocess.Popen([sys.executable, "-c", _CHILD, json.dumps(arguments)],
                            cwd=tmp_path, env=program_env(), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


@pytest.mark.slow
def test_every_family_saved_model_loads_in_a_fresh_process(tmp_path):
    np.save(tmp_path / "photo.npy", PHOTO)
    np.save(tmp_path / "style.npy", STYLE)
    expected = {}
    for name, (build, (how, style)) in FAMILIES.items():
        network = build()
        export_keras(network, tmp_path / f"{name}.keras")
        if name == "pastiche":
            network = as_weights_network(network)
        if how == "synthesize":
            expected[name] = nst_tf.synthesize(network, (16, 24), seed=4)
        else:
            expected[name] = nst_tf.stylize(PHOTO, STYLE if style == "style" else style,
                                            model=network, crop=True)
    # One fresh process per file, so that no file's loading registers another's layers.
    children = {name: _run(tmp_path, name, how, style)
                for name, (_, (how, style)) in FAMILIES.items()}
    for name, child in children.items():
        _, err = child.communicate(timeout=600)
        assert child.returncode == 0, (name, err[-3000:])
        np.testing.assert_allclose(np.load(tmp_path / f"{name}.out.npy"), expected[name],
                                   atol=2e-5, err_msg=name)


def _registered_classes():
    """``{module: [class names]}`` of the classes decorated at module level with
    ``register_keras_serializable`` (directly or through an alias: ``_REGISTER``, or
    :data:`nst_tf.layers.registry.register`), read from the
    source: an independent list of what a ``.keras`` file may name."""
    found = {}
    for folder, _, files in os.walk(os.path.join(ROOT, "nst_tf")):
        for file in files:
            if not file.endswith(".py"):
                continue
            path = os.path.join(folder, file)
            with open(path, encoding="utf-8") as f:
                tree = ast.parse(f.read())
            module = os.path.relpath(path, ROOT)[:-3].replace(os.sep, ".")
            for node in tree.body:   # module level: a class defined in a function is lazy
                if isinstance(node, ast.ClassDef) and any(
                        "register_keras_serializable" in ast.unparse(d) or
                        ast.unparse(d) in ("_REGISTER", "register")
                        for d in node.decorator_list):
                    found.setdefault(module.removesuffix(".__init__"), []).append(node.name)
    return found


def test_the_loader_registers_every_keras_class_of_the_package():
    classes = _registered_classes()
    assert "nst_tf.models.adain.network" in classes       # the scan sees every family module
    assert "NoiseFill" in classes["nst_tf.layers.noise"]   # and the layer modules
    names = sorted(name for names in classes.values() for name in names)

    def missing_after(imports):
        """The class names still unregistered after ``imports``, in a fresh process."""
        code = (f"import json, sys, keras\n{imports}\n"
                "print(json.dumps([n for n in json.loads(sys.argv[1])\n"
                "                  if keras.saving.get_registered_object('nst_tf>' + n) is None]))")
        done = subprocess.run([sys.executable, "-c", code, json.dumps(names)],
                              env=program_env(), capture_output=True, text=True, timeout=300,
                              cwd=ROOT)
        assert done.returncode == 0, done.stderr[-3000:]
        return json.loads(done.stdout.strip().splitlines()[-1])

    assert missing_after("from nst_tf.families import register_keras_objects\n"
                         "register_keras_objects()") == []
    # The documented plain-Keras route: every layer a network holds (the learning-rate
    # schedule is an optimizer's, not in a network file).
    assert missing_after("import nst_tf.networks") == ["UlyanovSchedule"]
