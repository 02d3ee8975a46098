"""The documentation site builds with warnings as errors, and the build catches what goes stale.

* ``docs/`` builds (Sphinx, MyST pages, autodoc of every module) without a single warning: a
  renamed function that a page or a docstring refers to, a module that no longer imports, a
  docstring that is not valid reStructuredText or a cited test that no longer exists fails here.
* Every build here runs as in a virtual environment with only the ``docs`` extra: the modules
  that only the other extras install (Flask, werkzeug, Beam, SciPy, PyAV...; computed from
  ``setup.cfg`` and the installed packages' requirements) cannot be imported, so a module-level
  import of one that ``docs/conf.py`` does not mock fails the build.
* A page with one of each such problem fails the build, and every problem is named.
* Every module of the packages is in the API reference.
* A cited test renders as a numbered link (not as its name in the prose), each page lists its
  cited tests, and the tests page lists them all with links back.
* The quickstart on the first page is the README's command on the repository's images (it runs in
  ``tests/test_docs_examples.py``).
"""

import configparser
import functools
import importlib.metadata
import json
import os
import re
import shlex
import subprocess
import sys

import pytest

from conftest import ROOT

DOCS = os.path.join(ROOT, "docs")
PACKAGES = ("nst_tf", "magenta_compat", "torch_compat")

#: Run Sphinx with the modules of ``sys.argv[1]`` (JSON) made unimportable, as they are in a
#: virtual environment without them (Sphinx's own mocks still serve ``autodoc_mock_imports``).
WITHOUT_MODULES = """
import importlib.abc, json, sys
blocked = set(json.loads(sys.argv.pop(1)))
class NotInstalled(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in blocked:
            raise ModuleNotFoundError(f"No module named {name!r} (not in the docs extra)",
                                      name=name)
sys.meta_path.insert(0, NotInstalled())
if sys.argv[1:2] == ["--import"]:
    __import__(sys.argv[2])
else:
    from sphinx.cmd.build import main
    sys.exit(main(sys.argv[1:]))
"""


def _canonical(name):
    return re.sub(r"[-_.]+", "-", name).lower()


def _requirements(lines):
    """Canonical distribution names of requirement strings that apply without extras."""
    from packaging.requirements import Requirement

    names = []
    for line in lines:
        requirement = Requirement(line)
        if requirement.marker is None or requirement.marker.evaluate({"extra": ""}):
            names.append(_canonical(requirement.name))
    return names


def _closure(names):
    """``names`` and every distribution they require, transitively (installed ones)."""
    seen, todo = set(), list(names)
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        try:
            todo.extend(_requirements(importlib.metadata.requires(name) or []))
        except importlib.metadata.PackageNotFoundError:
            pass
    return seen


@functools.lru_cache(maxsize=None)
def optional_modules():
    """The top-level modules that only the extras other than ``docs`` bring (with what they
    require): absent from a virtual environment made with ``pip install -e ".[docs]"``."""
    config = configparser.ConfigParser()
    config.read(os.path.join(ROOT, "setup.cfg"))
    lines = lambda text: [line.strip() for line in text.splitlines() if line.strip()]  # noqa
    extras = config["options.extras_require"]
    docs = _closure(_requirements(lines(config["options"]["install_requires"])
                                  + lines(extras["docs"])))
    others = _closure(_requirements([line for name in extras if name != "docs"
                                     for line in lines(extras[name])])) - docs
    return frozenset(module for module, dists in importlib.metadata.packages_distributions().items()
                     if module.isidentifier() and all(_canonical(d) in others for d in dists))


def build(source, out, config_dir=DOCS, python_path=(), timeout=600):
    """Run ``sphinx-build -W -n`` (HTML) in a subprocess, without the modules of
    :func:`optional_modules`; returns ``(process, warnings text)``."""
    warnings = os.path.join(out, "warnings.txt")
    os.makedirs(out, exist_ok=True)
    command = [sys.executable, "-c", WITHOUT_MODULES, json.dumps(sorted(optional_modules())),
               "-b", "html", "-W", "--keep-going", "-n", "-q",
               "-c", config_dir, "-d", os.path.join(out, "doctrees"), "-w", warnings,
               source, os.path.join(out, "html")]
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    if python_path:
        env["PYTHONPATH"] = os.pathsep.join([*python_path, env.get("PYTHONPATH", "")])
    done = subprocess.run(command, capture_output=True, text=True, cwd=ROOT, env=env,
                          timeout=timeout)
    with open(warnings, encoding="utf-8") as f:
        return done, f.read()


def test_the_docs_builds_run_without_the_other_extras():
    """What :func:`build` blocks: the optional extras' modules (what the preference app, Beam
    and video need), never what the ``docs`` extra installs; and blocked means unimportable."""
    blocked = optional_modules()
    assert {"flask", "werkzeug", "apache_beam", "scipy", "av", "cv2", "pytest"} <= blocked
    assert not {"sphinx", "myst_parser", "docutils", "tensorflow", "keras", "numpy", "PIL",
                "absl"} & blocked
    for module, importable in (("werkzeug", False), ("docutils", True)):
        done = subprocess.run([sys.executable, "-c", WITHOUT_MODULES,
                               json.dumps(sorted(blocked)), "--import", module],
                              capture_output=True, text=True, timeout=120)
        assert (done.returncode == 0) == importable, done.stderr[-2000:]


@pytest.mark.slow
def test_docs_build_without_warnings(tmp_path):
    done, warnings = build(DOCS, str(tmp_path))
    assert warnings == "", warnings
    assert done.returncode == 0, done.stderr[-3000:]
    html = tmp_path / "html"
    for page in ("index", "benchmarks", "cli", "api/index", "families/pastiche", "tasks/training"):
        assert (html / f"{page}.html").is_file(), page
    # The API reference holds the objects (autodoc ran), the public namespace links to them, and
    # the flag tables come from the programs.
    networks = (html / "api" / "networks.html").read_text(encoding="utf-8")
    assert 'id="nst_tf.families.stylize"' in networks
    assert 'href="networks.html#nst_tf.families.stylize"' in \
        (html / "api" / "index.html").read_text(encoding="utf-8")
    cli = (html / "cli.html").read_text(encoding="utf-8")
    assert "--which_styles" in cli and "--export_magenta" in cli
    # The API index opens with the entry points, linked to their definitions, then the groups.
    api = (html / "api" / "index.html").read_text(encoding="utf-8")
    groups = re.findall(r'<p class="rubric">([^<]+)</p>\s*<ul class="simple">(.*?)</ul>', api, re.S)
    assert groups[0][0] == "Entry points" and len(groups) > 5, groups
    entry = re.findall(r'href="[^"]+" title="([^"]+)"><code[^>]*><span class="pre">(\w+)</span>',
                       groups[0][1])
    assert [name for _, name in entry] == ["stylize", "transfer", "synthesize", "train"]
    assert all(target.endswith("." + name) for target, name in entry), entry
    # Cited tests are numbers in the prose, listed at the end of the page and on the tests page.
    index = (html / "index.html").read_text(encoding="utf-8")
    prose = index.split('id="tests-cited-on-this-page"')[0]
    assert "test_network_objects_resolve_to_their_family" not in _text(prose)
    cite = re.search(r'<sup class="test-cite"><a class="reference internal" href="#test-cite-(\d+)"'
                     r' id="test-cited-(\d+)" title="tests/test_families.py::'
                     r'test_network_objects_resolve_to_their_family">(\d+)</a></sup>', index)
    assert cite and len(set(cite.groups())) == 1, "the citation is not a numbered link"
    tests = (html / "tests.html").read_text(encoding="utf-8")
    assert f'href="index.html#test-cited-{cite.group(1)}"' in tests
    assert 'id="test-tests-test-families-py-test-network-objects-resolve-to-their-family"' in tests


def _text(html):
    """The visible text of an HTML fragment (tags dropped, attributes with them)."""
    return re.sub(r"<[^>]+>", "", html)


CITATIONS_PAGE = """# Citations

A claim (T_A). Two claims (T_A, T_B); a claim with more (see above, T_C). A list: (T_B;
more words). In a sentence: checked by T_A and T_C.

```{toctree}
tests
```
"""

TESTS_PAGE = """# Tests

```{cited-tests}
```
"""


@pytest.mark.slow
def test_cited_tests_are_numbered_and_listed(tmp_path):
    """The real configuration on a page of citations: each group of citations becomes one
    superscript of numbers (brackets and separators that held only citations go), the page ends
    with its numbered list, and the tests page lists each test and links back to its citation."""
    source = tmp_path / "src"
    source.mkdir()
    page = CITATIONS_PAGE
    for key, test in (("T_A", "tests/test_families.py::test_errors_name_the_problem"),
                      ("T_B", "tests/test_docs.py::test_cited_tests_are_numbered_and_listed"),
                      ("T_C", "tests/test_docs.py")):
        page = page.replace(key, "{test}`" + test + "`")
    (source / "index.md").write_text(page, encoding="utf-8")
    (source / "tests.md").write_text(TESTS_PAGE, encoding="utf-8")
    done, warnings = build(str(source), str(tmp_path / "out"))
    assert warnings == "" and done.returncode == 0, warnings + done.stderr[-2000:]
    html = tmp_path / "out" / "html"
    body, cited = (html / "index.html").read_text(encoding="utf-8").split(
        'id="tests-cited-on-this-page"')
    text = " ".join(_text(body).split())
    for expected in ("A claim1.", "Two claims1,2; a claim with more (see above)3.",
                     "A list:2 (more words).", "In a sentence: checked by1,3."):
        assert expected in text, text
    assert "tests/test_" not in _text(body)
    listed = re.findall(r'<li id="test-cite-(\d)"><p><a class="reference internal" '
                        r'href="tests.html#([^"]+)"><code[^>]*><span class="pre">([^<]+)</span>',
                        cited)
    assert [(n, ref) for n, _, ref in listed] == [
        ("1", "tests/test_families.py::test_errors_name_the_problem"),
        ("2", "tests/test_docs.py::test_cited_tests_are_numbered_and_listed"),
        ("3", "tests/test_docs.py")]
    # The tests page: by file, the command that runs it, the docstring's first line, and for
    # each test a link to where it is first cited.
    tests = (html / "tests.html").read_text(encoding="utf-8")
    assert all(f'id="{anchor}"' in tests for _, anchor, _ in listed)
    assert "python -m pytest tests/test_docs.py" in _text(tests)
    assert "each group of citations becomes one superscript" in " ".join(_text(tests).split())
    for n in ("1", "2", "3"):
        assert f'href="index.html#test-cited-{n}"' in tests
        assert f'id="test-cited-{n}"' in body


BROKEN_PAGE = """# Broken

Resolves: {class}`nst_tf.NSTError`, {test}`tests/test_families.py::test_errors_name_the_problem`,
{repo}`benchmarks/pastiche.py`.

A renamed function: {func}`nst_tf.stylize_everything`; a missing class:
{class}`nst_tf.families.NoSuchFamily`; a missing module: {mod}`nst_tf.no_such_module`.

A test that is gone: {test}`tests/test_families.py::test_no_such_behaviour`, a test file that is
gone: {test}`tests/test_no_such_file.py::test_x`, a benchmark that is gone:
{repo}`benchmarks/no_such_benchmark.py`, a link to a page that is gone: [x](no_such_page.md).

```{eval-rst}
.. autoclass:: nst_tf.errors.NSTError

.. autofunction:: nst_tf.gatys.no_such_function

.. automodule:: stale_docstring
```
"""

#: A module whose docstring names a function that is gone (relatively, as docstrings do) and has
#: a malformed inline literal.
STALE_MODULE = '''"""Uses :func:`transfer_everything` and ``a literal.
"""
'''


@pytest.mark.slow
def test_broken_references_fail_the_build(tmp_path):
    """The real configuration and extension (``-c docs``) on a page with one problem of each kind,
    plus a page that no table of contents lists."""
    source = tmp_path / "src"
    source.mkdir()
    (source / "index.md").write_text(BROKEN_PAGE, encoding="utf-8")
    (source / "orphan.md").write_text("# Not in any toctree\n", encoding="utf-8")
    (tmp_path / "stale_docstring.py").write_text(STALE_MODULE, encoding="utf-8")
    done, warnings = build(str(source), str(tmp_path / "out"), python_path=[str(tmp_path)])
    assert done.returncode != 0
    for problem in ("nst_tf.stylize_everything", "nst_tf.families.NoSuchFamily",
                    "nst_tf.no_such_module", "test_no_such_behaviour",
                    "tests/test_no_such_file.py", "benchmarks/no_such_benchmark.py",
                    "no_such_page", "'no_such_function' from module 'nst_tf.gatys'", "orphan",
                    "transfer_everything", "Inline literal start-string without end-string"):
        assert problem in warnings, f"{problem} not reported:\n{warnings}"
    # What exists is not reported: a re-exported name resolves to where it is documented, cited
    # tests and files that exist pass.
    for fine in ("NSTError", "test_errors_name_the_problem",
                 "benchmarks/pastiche.py"):
        assert fine not in warnings, warnings
    assert warnings.count("WARNING:") == 11, warnings


@pytest.mark.slow
def test_exports_groups_must_hold_every_name_once(tmp_path):
    """The grouped ``{exports}`` list of the API index: a name left out, listed twice or not
    exported fails the build, each named."""
    source = tmp_path / "src"
    source.mkdir()
    (source / "index.md").write_text(
        "# Groups\n\n```{exports} nst_tf\nErrors: NSTError NSTError no_such_name\n```\n",
        encoding="utf-8")
    done, warnings = build(str(source), str(tmp_path / "out"))
    assert done.returncode != 0
    for problem in ("NSTError is listed 2 times", "no_such_name is not in nst_tf.__all__",
                    "stylize is in no group"):
        assert problem in warnings, warnings


def _modules():
    """Every public module of the packages, from the files (``a/b.py`` -> ``a.b``)."""
    found = set()
    for package in PACKAGES:
        for folder, dirs, files in os.walk(os.path.join(ROOT, package)):
            dirs[:] = [d for d in dirs if not d.startswith(("_", "."))]
            parts = os.path.relpath(folder, ROOT).split(os.sep)
            for name in files:
                if name == "__init__.py":
                    found.add(".".join(parts))
                elif name.endswith(".py") and not name.startswith("_"):
                    found.add(".".join(parts + [name[:-3]]))
    return found


def test_every_module_is_in_the_api_reference():
    documented = set()
    for folder, _, files in os.walk(DOCS):
        for name in files:
            if name.endswith(".md"):
                with open(os.path.join(folder, name), encoding="utf-8") as f:
                    documented |= set(re.findall(r"^\.\. automodule:: (\S+)$", f.read(), re.M))
    modules = _modules()
    assert "nst_tf.models.pastiche.family" in modules and "nst_tf.cli.train" in modules
    assert not modules - documented, f"not in the API reference: {sorted(modules - documented)}"
    assert not documented - modules, f"documented but gone: {sorted(documented - modules)}"


def test_readme_points_to_the_docs_and_their_build():
    with open(os.path.join(ROOT, "README.md"), encoding="utf-8") as f:
        readme = f.read()
    for link in re.findall(r"\]\((docs/[^)#]+)", readme):
        assert os.path.isfile(os.path.join(ROOT, link)), link
    assert "](docs/index.md)" in readme
    commands = re.findall(r"sphinx-build [^\n`#]*", readme)
    assert commands, "the README gives no command that builds the docs"
    for command in commands:
        words = command.split()
        assert "-W" in words and "-n" in words and "docs" in words, command


def _quickstart():
    """The commands of the first page's quickstart."""
    with open(os.path.join(DOCS, "index.md"), encoding="utf-8") as f:
        section = f.read().split("## Quickstart", 1)[1].split("\n## ", 1)[0]
    block = re.findall(r"```bash\n(.*?)\n```", section, re.S)[0]
    return [line for line in block.splitlines() if line.strip()]


def test_quickstart_is_the_readme_command_on_the_repository_images():
    """Three lines: the install, the README's main command and a Python line, naming only images
    of the repository. tests/test_docs_examples.py runs them (a tiny size, random weights)."""
    install, command, python = _quickstart()
    assert install == "pip install -e ."
    with open(os.path.join(ROOT, "README.md"), encoding="utf-8") as f:
        readme = f.read()
    assert f"&& {command}\n" in readme, "the quickstart's command is not the README's main command"
    argv = shlex.split(python)
    assert argv[:2] == ["python", "-c"]
    named = re.findall(r"'(examples/[^']+)'", argv[2]) + \
        [a.split("=", 1)[1] for a in shlex.split(command) if a.startswith(("--content=", "--style="))]
    assert len(named) == 5
    for path in named:
        assert os.path.isfile(os.path.join(ROOT, path)), f"{path} is not in the repository"
