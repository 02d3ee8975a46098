"""Sphinx extension of the nst-tf documentation: references that the build checks.

* Re-exported names resolve: ``{func}`nst_tf.stylize``` (or ``:func:`nst_tf.stylize``` in a
  docstring) points to ``nst_tf.families.stylize``, where the API reference documents it. The
  Python object behind the name is imported and matched, by identity, against the documented
  objects with the same last name; a name that imports nothing stays unresolved, and the nitpicky
  build fails on it.
* ``{test}`tests/test_x.py::test_y``` cites the test that checks a claim. The file must exist and
  define ``test_y`` (``Class::method`` and ``[parameters]`` work too), else the build warns.
* ``{repo}`benchmarks/pastiche.py``` cites a file or folder of the repository; it must exist.
* ``{exports} nst_tf`` lists a package's public names (its ``__all__``), each linked to where it
  is documented and with the first line of its docstring; an undocumented one fails the build.
* Docstrings of attributes, constants and properties are plain reStructuredText: napoleon would
  read ``#: The weights: 1e-4 on ...`` as a type ("The weights") and a description.
* ``{cli-flags} nst_tf.cli.train`` lists a program's flags (name, default, help) from the
  ``define_flags(flag_values)`` of its module (``:define:`` names another function), so the
  flag tables are never out of date.
"""

import ast
import importlib
import os
import re

from docutils import nodes
from docutils.parsers.rst import directives
from sphinx.addnodes import pending_xref
from sphinx.ext.autodoc.mock import mock
from sphinx.util import logging
from sphinx.util.docutils import SphinxDirective
from sphinx.util.nodes import make_refnode

#: Top-level packages whose names the build resolves and checks.
PACKAGES = ("nst_tf", "magenta_compat", "torch_compat")
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

logger = logging.getLogger(__name__)
_MISSING = object()


def import_name(dotted, mocked=()):
    """The object a dotted name denotes (module prefix imported, the rest by attribute), or
    ``_MISSING``. Modules named in ``mocked`` (``autodoc_mock_imports``) are mocked meanwhile."""
    with mock(list(mocked)):
        return _import_name(dotted)


def _import_name(dotted):
    parts = dotted.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        try:
            for attribute in parts[cut:]:
                obj = getattr(obj, attribute)
        except (AttributeError, ImportError):   # ImportError: a lazy export's module
            return _MISSING
        return obj
    return _MISSING


def _same(a, b):
    """Identity, seeing through bound methods (each attribute access makes a new one)."""
    return getattr(a, "__func__", a) is getattr(b, "__func__", b)


def _candidates(node):
    """Full names a Python reference may mean: in the docstring's class, in its module (a name
    the module imports, e.g. ``:func:`transfer``` in ``nst_tf/__init__.py``), or as written."""
    target = node.get("reftarget", "").lstrip(".")
    module, cls = node.get("py:module"), node.get("py:class")
    names = [f"{module}.{cls}.{target}"] if module and cls else []
    names += [f"{module}.{target}"] if module else []
    names.append(target)
    return [name for name in names if name.startswith(PACKAGES)]


def resolve_reexport(app, env, node, contnode):
    """``missing-reference`` handler: a re-exported name links to where it is documented."""
    if node.get("refdomain") != "py":
        return None
    mocked = app.config.autodoc_mock_imports
    for target in _candidates(node):
        obj = import_name(target, mocked)
        if obj is not _MISSING:
            return _link_to_definition(app, env, node, contnode, target, obj, mocked)
    return None


def _link_to_definition(app, env, node, contnode, target, obj, mocked):
    domain = env.get_domain("py")
    if node.get("reftype") == "mod" or isinstance(obj, type(os)):
        name = getattr(obj, "__name__", None)
        entry = domain.modules.get(name)
        if entry is not None:
            return make_refnode(app.builder, node["refdoc"], entry.docname, entry.node_id,
                                contnode, name)
        return None
    short = target.rsplit(".", 1)[-1]
    for name, entry in domain.objects.items():
        if name != target and name.rsplit(".", 1)[-1] == short \
                and _same(import_name(name, mocked), obj):
            return make_refnode(app.builder, node["refdoc"], entry.docname, entry.node_id,
                                contnode, name)
    return None


def _defines(path, dotted):
    """Whether the Python file at ``path`` defines ``dotted`` (``name`` or ``Class.method``)."""
    with open(path, encoding="utf-8") as f:
        scope = ast.parse(f.read(), path).body
    for part in dotted.split("."):
        found = [n for n in scope if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef,
                                                    ast.ClassDef)) and n.name == part]
        if not found:
            return False
        scope = found[0].body
    return True


def _check_test(reference):
    """``None`` if ``tests/x.py::name`` exists, else what is wrong with it."""
    path, _, name = reference.partition("::")
    full = os.path.join(ROOT, path)
    if not path.startswith("tests/") or not path.endswith(".py") or not os.path.isfile(full):
        return f"no test file {path}"
    if name and not _defines(full, name.split("[", 1)[0].replace("::", ".")):
        return f"{path} defines no {name.split('[', 1)[0]}"
    return None


def _literal_role(check):
    def role(name, rawtext, text, lineno, inliner, options=None, content=()):
        problem = check(text)
        if problem:
            msg = inliner.reporter.warning(f"{{{name}}} `{text}`: {problem}", line=lineno)
            return [nodes.literal(rawtext, text)], [msg]
        return [nodes.literal(rawtext, text, classes=[name])], []
    return role


def _check_repo_path(path):
    return None if os.path.exists(os.path.join(ROOT, path)) else f"no such path {path}"


class CliFlags(SphinxDirective):
    """``{cli-flags} MODULE`` (``:define: FUNCTION``): the table of a program's flags."""

    required_arguments = 1
    option_spec = {"define": directives.unchanged}

    def run(self):
        from absl import flags

        module_name = self.arguments[0]
        function = self.options.get("define", "define_flags")
        define = import_name(f"{module_name}.{function}", self.config.autodoc_mock_imports)
        if define is _MISSING:
            raise self.error(f"cli-flags: {module_name}.{function} does not exist")
        fv = flags.FlagValues()
        define(fv)
        table = nodes.table(classes=["cli-flags"])
        group = nodes.tgroup(cols=3)
        table += group
        for width in (25, 15, 60):
            group += nodes.colspec(colwidth=width)
        group += nodes.thead("", self._row(("flag", "default", "what it does")))
        body = nodes.tbody()
        for name in sorted(fv):
            flag = fv[name]
            default = "" if flag.default is None else flag.default_as_str.strip("'")
            body += self._row((f"--{name}", default, flag.help), literal=(True, True, False))
        group += body
        return [table]

    @staticmethod
    def _row(cells, literal=(False, False, False)):
        row = nodes.row()
        for text, as_code in zip(cells, literal):
            entry = nodes.entry()
            paragraph = nodes.paragraph()
            paragraph += nodes.literal(text, text) if as_code and text else nodes.Text(text)
            entry += paragraph
            row += entry
        return row


class Exports(SphinxDirective):
    """``{exports} PACKAGE``: a package's ``__all__`` as a list of links with summaries."""

    required_arguments = 1

    def run(self):
        package = self.arguments[0]
        mocked = self.config.autodoc_mock_imports
        module = import_name(package, mocked)
        if module is _MISSING or not hasattr(module, "__all__"):
            raise self.error(f"exports: {package} is not a package with __all__")
        items = nodes.bullet_list()
        for name in module.__all__:
            obj = import_name(f"{package}.{name}", mocked)
            target = f"{package}.{name}"
            ref = pending_xref("", nodes.literal(name, name), refdomain="py", reftype="obj",
                               reftarget=target, refdoc=self.env.docname, refexplicit=False,
                               refwarn=True)
            paragraph = nodes.paragraph()
            paragraph += ref
            summary = _summary(obj)
            if summary:
                paragraph += nodes.Text(f": {summary}")
            items += nodes.list_item("", paragraph)
        return [items]


def _summary(obj):
    """First sentence-line of an object's own docstring (not of its type)."""
    if not callable(obj) and not isinstance(obj, type(os)):
        return ""
    doc = (getattr(obj, "__doc__", None) or "").strip().split("\n\n", 1)[0]
    return re.sub(r":[a-z]+:`~?([^`]+)`", r"\1", " ".join(doc.split())).replace("``", "")


_ATTRIBUTE_KINDS = ("attribute", "data", "property")
_held = {}


def _hold_attribute_docstring(app, what, name, obj, options, lines):
    """Before napoleon: keep an attribute's docstring away from it (see the module docstring)."""
    if what in _ATTRIBUTE_KINDS:
        _held[name] = list(lines)
        lines[:] = []


def _restore_attribute_docstring(app, what, name, obj, options, lines):
    """After napoleon: the attribute's docstring as written."""
    if what in _ATTRIBUTE_KINDS and name in _held:
        lines[:] = _held.pop(name)


def setup(app):
    # napoleon handles autodoc-process-docstring at the default priority, 500.
    app.connect("autodoc-process-docstring", _hold_attribute_docstring, priority=400)
    app.connect("autodoc-process-docstring", _restore_attribute_docstring, priority=600)
    app.add_directive("exports", Exports)
    app.connect("missing-reference", resolve_reexport)
    app.add_role("test", _literal_role(_check_test))
    app.add_role("repo", _literal_role(_check_repo_path))
    app.add_directive("cli-flags", CliFlags)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
