"""nst-adain (nst_tf.cli.adain): test.py-like flags, output names, pixels, one-line errors."""

import os

import numpy as np
from PIL import Image

import nst_tf
from nst_tf import images
from nst_tf.cli import adain as cli

FIXTURE = os.path.join(os.path.dirname(__file__), "fixtures", "adain")
FILES = [f"--vgg={FIXTURE}/vgg_normalised.pth", f"--decoder={FIXTURE}/decoder.pth"]


def test_outputs_and_names(tmp_path, capsys):
    data = np.load(os.path.join(FIXTURE, "expected.npz"))
    content, a, b = (str(tmp_path / n) for n in ("photo.png", "a.png", "b.png"))
    for path, key in ((content, "content"), (a, "style_a"), (b, "style_b")):
        images.save_image(path, data[key])
    out = tmp_path / "out"
    assert cli.main(["nst-adain", f"--content={content}", f"--style={a},{b}", f"--output={out}",
                     "--style_size=0", "--alpha=0.7", *FILES]) == 0
    assert sorted(os.listdir(out)) == ["photo_stylized_a.png", "photo_stylized_b.png"]
    net = nst_tf.load_adain(f"{FIXTURE}/vgg_normalised.pth", f"{FIXTURE}/decoder.pth")
    expected = nst_tf.stylize(content, [a, b], model=net, strength=0.7, style_size=None,
                              crop=True)
    written = np.asarray(Image.open(out / "photo_stylized_b.png"))
    assert written.shape == (37, 45, 3)
    np.testing.assert_array_equal(written, images.float_to_uint8(expected[1]))
    assert cli.main(["nst-adain", f"--content={content}", f"--style={a},{b}", f"--output={out}",
                     "--style_interpolation_weights=1,3", *FILES]) == 0
    assert os.path.exists(out / "photo_interpolation.png")
    capsys.readouterr()
    assert cli.main(["nst-adain", f"--content={content}", f"--style={a}", f"--output={out}",
                     "--alpha=2", *FILES]) == 1
    err = capsys.readouterr().err
    assert err.startswith("nst-adain: error: strength") and err.count("\n") == 1
    # Image tools replace their outputs (unlike nst-video, whose outputs can be hours of work).
    before = (out / "photo_stylized_a.png").read_bytes()
    assert cli.main(["nst-adain", f"--content={content}", f"--style={a}", f"--output={out}",
                     "--style_size=0", "--alpha=0.3", *FILES]) == 0
    assert (out / "photo_stylized_a.png").read_bytes() != before
