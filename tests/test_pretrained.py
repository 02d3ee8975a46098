"""magenta_compat.pretrained: preset registry, cache location, download, offline errors, checks.

No test touches the internet: downloads go to ``file://`` URLs or to a closed local port, and
the Keras cache is redirected to a temporary folder through ``$KERAS_HOME``.
"""

import dataclasses
import os
import subprocess
import sys

import numpy as np
import pytest

from magenta_compat import pretrained
from magenta_compat.checkpoint import write_checkpoint
from nst_tf.errors import CheckpointError, WeightsUnavailableError
from nst_tf.networks import pastiche_network
from nst_tf.models.pastiche.family import stylize
from pastiche_helpers import random_pastiche

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture
def keras_home(tmp_path, monkeypatch):
    home = tmp_path / "keras_home"
    home.mkdir()
    monkeypatch.setenv("KERAS_HOME", str(home))
    return home


def point_preset(monkeypatch, name, url):
    monkeypatch.setitem(pretrained.PRESETS, name, dataclasses.replace(pretrained.PRESETS[name],
                                                                       url=url))


def test_registry():
    assert set(pretrained.PRESETS) == {"varied", "monet"}
    varied, monet = pretrained.get_preset("varied"), pretrained.get_preset("monet")
    assert (varied.num_styles, monet.num_styles) == (32, 10)
    assert varied.url == ("http://download.magenta.tensorflow.org/models/"
                          "multistyle-pastiche-generator-varied.ckpt")
    assert monet.filename == "multistyle-pastiche-generator-monet.ckpt"
    with pytest.raises(CheckpointError, match="unknown pretrained model 'vangogh'.*monet, varied"):
        pretrained.get_preset("vangogh")


def test_cache_path_follows_keras_home(keras_home):
    assert pretrained.cache_path("varied") == os.path.join(
        str(keras_home), "models", "magenta", "multistyle-pastiche-generator-varied.ckpt")


def test_offline_error_names_url_and_cache_path(keras_home, monkeypatch):
    url = "http://127.0.0.1:9/multistyle-pastiche-generator-monet.ckpt"   # closed port
    point_preset(monkeypatch, "monet", url)
    target = pretrained.cache_path("monet")
    with pytest.raises(WeightsUnavailableError) as info:
        pretrained.resolve("monet")
    message = str(info.value)
    assert url in message and target in message and "checkpoint file" in message
    assert not os.path.exists(target)                    # no partial file left behind
    with pytest.raises(WeightsUnavailableError, match="download=False"):
        pretrained.resolve("monet", download=False)


def test_download_verify_and_use(keras_home, tmp_path, monkeypatch, rng):
    served = tmp_path / "served"
    served.mkdir()
    source = str(served / "multistyle-pastiche-generator-monet.ckpt")
    network = random_pastiche(10, alpha=1.0, seed=3)   # its styles give different images
    write_checkpoint(network, source, version="V1", update_state=False)
    point_preset(monkeypatch, "monet", "file://" + source)
    path = pretrained.resolve("monet")
    assert path == pretrained.cache_path("monet") and os.path.getsize(path) > 0
    os.remove(source)                                    # second call: from the cache only
    assert pretrained.resolve("monet") == path
    image = rng.random((12, 12, 3)).astype(np.float32)
    for style in (3, 7, {2: 0.5, 9: 0.5}):
        np.testing.assert_array_equal(stylize(image, style, model="monet"),
                                      stylize(image, style, model=network))
    assert np.abs(stylize(image, 3, model="monet") - stylize(image, 7, model="monet")).mean() \
        > 0.05


def test_cached_file_with_wrong_styles_or_empty_is_rejected(keras_home):
    target = pretrained.cache_path("varied")
    os.makedirs(os.path.dirname(target))
    write_checkpoint(pastiche_network(3, alpha=0.25), target, version="V1", update_state=False)
    with pytest.raises(CheckpointError, match="num_styles=3.*'varied' preset has num_styles=32"):
        pretrained.resolve("varied", download=False)
    open(target, "wb").close()
    with pytest.raises(CheckpointError, match="empty"):
        pretrained.resolve("varied", download=False)
    with open(target, "wb") as f:
        f.write(b"not a checkpoint at all")
    with pytest.raises(CheckpointError, match="cannot read"):
        pretrained.resolve("varied", download=False)


def test_import_downloads_nothing_and_loads_no_tensorflow():
    code = ("import sys, magenta_compat.pretrained as p; "
            "assert 'tensorflow' not in sys.modules and 'keras' not in sys.modules; "
            "print(sorted(p.PRESETS))")
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "['monet', 'varied']"
