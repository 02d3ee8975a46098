"""The public API: every exported name resolves, is documented, and `import nst_tf` is cheap."""

import subprocess
import sys

import nst_tf


def test_every_export_resolves_and_has_a_docstring():
    for name in nst_tf.__all__:
        value = getattr(nst_tf, name)
        assert getattr(value, "__doc__", None), f"nst_tf.{name} has no docstring"


def test_function_names_are_not_shadowed_by_modules():
    # Importing the defining modules first must not replace the functions on the package.
    import nst_tf.gatys  # noqa: F401
    import nst_tf.models.pastiche.family  # noqa: F401
    import nst_tf.reconstruction  # noqa: F401

    assert callable(nst_tf.transfer) and nst_tf.transfer.__module__ == "nst_tf.gatys"
    assert callable(nst_tf.stylize) and nst_tf.stylize.__module__ == "nst_tf.families"
    assert callable(nst_tf.reconstruct) and nst_tf.reconstruct.__module__ == "nst_tf.reconstruction"


def test_import_does_not_load_tensorflow_or_download():
    code = ("import sys, nst_tf; "
            "print(sorted(m for m in ('tensorflow', 'cv2', 'av') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_unknown_attribute_is_an_attribute_error():
    try:
        nst_tf.no_such_thing  # noqa: B018
    except AttributeError as e:
        assert "no_such_thing" in str(e)
    else:
        raise AssertionError("expected AttributeError")
