"""The README's two set-up commands work from the clone alone, and CI runs the test command.

* The main command runs as written (plus ``--weights=random`` and a small size, since ImageNet
  weights cannot be downloaded here) with the sample images the repository carries, and prints
  its own output only, not TensorFlow's native start-up log.
* ``.ci/run`` contains the README's test command verbatim.
* Every package a test module imports is installed by that command (the ``test`` extra, its
  dependencies, or a package the command names), so a fresh virtual environment runs the suite.
"""

import ast
import importlib.metadata as metadata
import os
import re
import shlex
import subprocess
import sys

from packaging.requirements import Requirement

from conftest import ROOT


def _readme_commands():
    """The two commands of the README's set-up section: (main, tests)."""
    with open(os.path.join(ROOT, "README.md"), encoding="utf-8") as f:
        text = f.read()
    section = text.split("## Set-up on a fresh machine", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```bash\n(.*?)\n```", section, re.S)
    assert len(blocks) == 2, f"expected two bash commands in the set-up section, got {blocks}"
    return blocks[0].strip(), blocks[1].strip()


def test_main_command_runs_from_the_clone(tmp_path):
    main, _ = _readme_commands()
    steps = [part.strip() for part in main.split("&&")]
    assert steps[0] == "pip install -e ."
    argv = shlex.split(steps[1])
    assert argv[0] == "nst-stylize"
    inputs = [a.split("=", 1)[1] for a in argv if a.startswith(("--content=", "--style="))]
    for path in inputs:  # inside the repository, not ../shared
        assert not os.path.isabs(path) and not path.startswith(".."), path
        assert os.path.isfile(os.path.join(ROOT, path)), f"{path} is not in the repository"
    assert os.path.isfile(os.path.join(ROOT, "examples", "images", "PROVENANCE.md"))

    console = os.path.join(os.path.dirname(sys.executable), "nst-stylize")
    program = [console] if os.path.exists(console) else \
        [sys.executable, os.path.join(ROOT, "scripts", "stylize.py")]
    out = tmp_path / "stylized.png"
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    done = subprocess.run(program + argv[1:] + ["--weights=random", "--size=48", "--steps=2",
                                                f"--output={out}"],
                          cwd=ROOT, capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr
    assert f"saved {out}" in done.stdout and out.stat().st_size > 0
    # TensorFlow's native log ("I0000 ... port.cc] oneDNN custom operations are on", "failed
    # call to cuInit", ...) is filtered; the progress bar and results remain.
    for noise in ("I0000", "oneDNN custom operations", "cuInit", "cuda drivers",
                  "absl::InitializeLog"):
        assert noise not in done.stderr + done.stdout, done.stderr
    assert "2/2" in done.stdout


def test_native_log_comes_back_on_request(tmp_path):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="0")
    code = ("from nst_tf.cli import quiet; quiet.filter_native_log(); "
            "import os; os.write(2, b'I0000 00:00:17.5  42 port.cc:153] oneDNN ...\\n'); "
            "os.write(2, b'I0000 00:00:17.5  42 cpu_feature_guard.cc:227] This binary ...\\n"
            "To enable the following instructions: AVX2, rebuild TensorFlow\\n')")
    shown = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                           cwd=ROOT, timeout=60)
    assert "port.cc:153] oneDNN" in shown.stderr
    env["TF_CPP_MIN_LOG_LEVEL"] = "2"
    hidden = subprocess.run([sys.executable, "-c", code + "; os.write(2, b'kept\\n')"],
                            capture_output=True, text=True, env=env, cwd=ROOT, timeout=60)
    assert hidden.stderr == "kept\n"


def test_ci_runs_the_readme_test_command_in_a_fresh_venv():
    _, tests = _readme_commands()
    with open(os.path.join(ROOT, ".ci", "run"), encoding="utf-8") as f:
        lines = [line.strip() for line in f]
    assert tests in lines, f".ci/run does not run the README's test command {tests!r}"
    assert any(line.startswith("python3 -m venv") for line in lines)
    assert not any("system-site-packages" in line for line in lines)


# --- Every import of a test module comes from the test command -----------------------------------

def _required_distributions():
    """Distributions the README's test command installs: nst-tf with its ``test`` extra and their
    dependencies (transitively), plus packages the command names (``magenta``, no dependencies)."""
    _, tests = _readme_commands()
    wanted = {"nst-tf[test]"}
    for step in tests.split("&&"):
        words = shlex.split(step)
        if words[:2] == ["pip", "install"]:
            wanted |= {w for w in words[2:] if not w.startswith("-") and w not in (".", ".[test]")}
    seen, todo, no_deps = set(), [Requirement(w) for w in wanted], {"magenta"}
    while todo:
        req = todo.pop()
        name = req.name.lower().replace("_", "-")
        if name in seen:
            continue
        seen.add(name)
        if name in no_deps:
            continue
        try:
            requires = metadata.requires(req.name) or []
        except metadata.PackageNotFoundError:
            continue  # optional dependency not installed: its modules cannot be imported anyway
        for line in requires:
            dep = Requirement(line)
            extras = req.extras or {""}
            if dep.marker is None or any(dep.marker.evaluate({"extra": e}) for e in extras):
                todo.append(dep)
    return seen


def _guarded_imports(tree):
    """ids of import nodes inside ``try:`` blocks that handle ImportError (optional imports
    with a fallback, which run without the package)."""
    guarded = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Try) and any(
                isinstance(h.type, ast.Name) and h.type.id in ("ImportError", "ModuleNotFoundError")
                for h in node.handlers):
            guarded |= {id(n) for stmt in node.body for n in ast.walk(stmt)
                        if isinstance(n, (ast.Import, ast.ImportFrom))}
    return guarded


def _test_imports():
    """``{top-level module: [test files importing it]}`` for every test module."""
    found = {}
    folder = os.path.join(ROOT, "tests")
    for name in sorted(os.listdir(folder)):
        if not name.endswith(".py"):
            continue
        with open(os.path.join(folder, name), encoding="utf-8") as f:
            tree = ast.parse(f.read(), name)
        guarded = _guarded_imports(tree)
        for node in ast.walk(tree):
            if id(node) in guarded:
                continue
            modules = []
            if isinstance(node, ast.Import):
                modules = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                modules = [node.module]
            elif (isinstance(node, ast.Call) and getattr(node.func, "attr", "") == "importorskip"
                  and node.args and isinstance(node.args[0], ast.Constant)):
                modules = [node.args[0].value]
            for module in modules:
                found.setdefault(module.split(".")[0], set()).add(name)
    return found


def test_every_test_import_is_installed_by_the_test_command():
    local = {os.path.splitext(n)[0] for n in os.listdir(os.path.join(ROOT, "tests"))}
    local |= {"nst_tf", "magenta_compat", "torch_compat", "tests"}
    providers = metadata.packages_distributions()
    allowed = _required_distributions()
    missing = []
    for module, files in sorted(_test_imports().items()):
        if module in sys.stdlib_module_names or module in local:
            continue
        dists = {d.lower().replace("_", "-") for d in providers.get(module, [])}
        if not dists & allowed:
            missing.append(f"{module} (imported by {', '.join(sorted(files))}; "
                           f"provided by {', '.join(sorted(dists)) or 'nothing installed'})")
    assert not missing, ("test modules import packages that the README's test command does not "
                         "install; add them to the 'test' extra in setup.cfg: " + "; ".join(missing))
