"""Sphinx extension of the nst-tf documentation: references that the build checks.

* Re-exported names resolve: ``{func}`nst_tf.stylize``` (or ``:func:`nst_tf.stylize``` in a
  docstring) points to ``nst_tf.families.stylize``, where the API reference documents it. The
  Python object behind the name is imported and matched, by identity, against the documented
  objects with the same last name; a name that imports nothing stays unresolved, and the nitpicky
  build fails on it.
* ``{test}`tests/test_x.py::test_y``` cites the test that checks a claim. The file must exist and
  define ``test_y`` (``Class::method`` and ``[parameters]`` work too), else the build warns. A
  citation renders as a numbered superscript, like a footnote: "(T)" or "(T, T)" after a claim
  becomes the claim's number(s), "(more, T)" becomes "(more)" and its number. Each page ends with
  its list of cited tests, and every entry links to the page of all cited tests
  (``{cited-tests}``: each test with its docstring, the command that runs it and the pages that
  cite it).
* ``{repo}`benchmarks/pastiche.py``` cites a file or folder of the repository; it must exist.
* ``{exports} nst_tf`` lists a package's public names (its ``__all__``), each linked to where it
  is documented and with the first line of its docstring; an undocumented one fails the build.
  With content, one ``Group title: name name ...`` line per group (indented lines continue it),
  the names are listed by group, and every name of ``__all__`` must be in exactly one group.
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
    """``{exports} PACKAGE``: a package's ``__all__`` as a list of links with summaries; with
    content (``Title: name name ...`` per group), one list per group."""

    required_arguments = 1
    has_content = True

    def run(self):
        package = self.arguments[0]
        mocked = self.config.autodoc_mock_imports
        module = import_name(package, mocked)
        if module is _MISSING or not hasattr(module, "__all__"):
            raise self.error(f"exports: {package} is not a package with __all__")
        groups = self._groups(list(module.__all__)) if self.content else [(None, module.__all__)]
        out = []
        for title, names in groups:
            if title:
                out.append(nodes.rubric(title, title))
            items = nodes.bullet_list()
            for name in names:
                items += nodes.list_item("", self._entry(package, name, mocked))
            out.append(items)
        return out

    def _groups(self, exported):
        """``[(title, names)]`` from the content; every exported name in exactly one group."""
        groups = []
        for line in self.content:
            if not line.strip():
                continue
            if line[:1].isspace() and groups:
                groups[-1][1].extend(line.split())
                continue
            title, colon, names = line.partition(":")
            if not colon:
                raise self.error(f"exports: expected 'Group title: name name ...', got {line!r}")
            groups.append((title.strip(), names.split()))
        listed = [name for _, names in groups for name in names]
        problems = [f"{name} is not in {self.arguments[0]}.__all__"
                    for name in listed if name not in exported]
        problems += [f"{name} is listed {listed.count(name)} times"
                     for name in sorted(set(listed)) if listed.count(name) > 1]
        problems += [f"{name} is in no group" for name in exported if name not in listed]
        if problems:
            raise self.error(f"exports {self.arguments[0]}: " + "; ".join(problems)
                             + " (edit the groups of this directive)")
        return groups

    def _entry(self, package, name, mocked):
        obj = import_name(f"{package}.{name}", mocked)
        ref = pending_xref("", nodes.literal(name, name), refdomain="py", reftype="obj",
                           reftarget=f"{package}.{name}", refdoc=self.env.docname,
                           refexplicit=False, refwarn=True)
        paragraph = nodes.paragraph()
        paragraph += ref
        summary = _summary(obj)
        if summary:
            paragraph += nodes.Text(f": {summary}")
        return paragraph


def _summary(obj):
    """First sentence-line of an object's own docstring (not of its type)."""
    if not callable(obj) and not isinstance(obj, type(os)):
        return ""
    doc = (getattr(obj, "__doc__", None) or "").strip().split("\n\n", 1)[0]
    return re.sub(r":[a-z]+:`~?([^`]+)`", r"\1", " ".join(doc.split())).replace("``", "")


# --- Test citations: numbered like footnotes, listed per page and on the tests page ------------

#: The page that lists every cited test (``{cited-tests}``), if the site has one.
TESTS_PAGE = "tests"
#: Text between two citations of one group: ``T, T``, ``T; T``, ``T and T``.
_JOINER = re.compile(r"\s*(?:[,;]\s*(?:and\s+)?|and\s+)?")
_OPENS = re.compile(r"\s*\(\s*$")                      # "... (" before a citation
_TRAILING_SEPARATOR = re.compile(r"\s*[,;:]\s*(?:and\s*)?$")
_LEADING_SEPARATOR = re.compile(r"^\s*[,;:]\s*")


class test_citation(nodes.Inline, nodes.TextElement):  # docutils names nodes in lower case
    """A ``{test}`` citation; replaced by a numbered superscript when the page is resolved."""


class cited_tests_list(nodes.General, nodes.Element):
    """Where ``{cited-tests}`` puts the list of every cited test."""


def _skip(translator, node):
    raise nodes.SkipNode


def _cited(env):
    """``{docname: [reference, ...]}``: each page's cited tests, in the order of their numbers."""
    if not hasattr(env, "nst_cited_tests"):
        env.nst_cited_tests = {}
    return env.nst_cited_tests


def _record_citations(app, doctree):
    """``doctree-read``: the page's cited tests, numbered in the order they first appear."""
    references = []
    for citation in doctree.findall(test_citation):
        if citation["reference"] not in references:
            references.append(citation["reference"])
    if references:
        _cited(app.env)[app.env.docname] = references


def test_role(name, rawtext, text, lineno, inliner, options=None, content=()):
    """``{test}`tests/test_x.py::test_y```: checked now, numbered when the page is resolved."""
    problem = _check_test(text)
    if problem:
        msg = inliner.reporter.warning(f"{{{name}}} `{text}`: {problem}", line=lineno)
        return [nodes.literal(rawtext, text)], [msg]
    return [test_citation(rawtext, "", reference=text)], []


def _tidy(before, after):
    """The text around a group of citations, once the group is a superscript: brackets that
    held only citations go, and so do the separators next to them."""
    if _OPENS.search(before) and after.startswith(")"):               # "x (T)."  -> "x¹."
        return _OPENS.sub("", before), after[1:]
    if _OPENS.search(before) and _LEADING_SEPARATOR.match(after):     # "x (T; y)" -> "x¹ (y)"
        return _OPENS.sub("", before), " (" + _LEADING_SEPARATOR.sub("", after, count=1)
    if _TRAILING_SEPARATOR.search(before) and after.startswith(")"):  # "(y, T)" -> "(y)¹"
        return _TRAILING_SEPARATOR.sub("", before) + ")", after[1:]
    if _TRAILING_SEPARATOR.search(before):                           # "terms: T; the" -> "terms¹; the"
        return _TRAILING_SEPARATOR.sub("", before), after
    return before.rstrip(), after


def _superscript(references, numbers, seen):
    """``¹,²``: links to the page's list of cited tests; the first citation of each number is
    the target of the tests page's links (``test-cited-N``)."""
    sup = nodes.superscript(classes=["test-cite"])
    shown = []
    for reference in references:
        number = numbers[reference]
        if number not in shown:
            shown.append(number)
            if len(shown) > 1:
                sup += nodes.Text(",")
            link = nodes.reference("", str(number), internal=True, refid=f"test-cite-{number}",
                                   reftitle=reference)
            if number not in seen:
                seen.add(number)
                link["ids"] = [f"test-cited-{number}"]
            sup += link
    return sup


def _render_group(parent, numbers, seen):
    """Replace the citations among ``parent``'s children by superscripts, one per group."""
    children, rendered, i = [], [], 0
    for child in parent.children:            # MyST keeps line breaks as Text nodes of their own
        if isinstance(child, nodes.Text) and children and isinstance(children[-1], nodes.Text):
            children[-1] = nodes.Text(children[-1].astext() + child.astext())
        else:
            children.append(child)
    while i < len(children):
        if not isinstance(children[i], test_citation):
            rendered.append(children[i])
            i += 1
            continue
        group, j = [children[i]], i
        while True:
            if j + 1 < len(children) and isinstance(children[j + 1], test_citation):
                j += 1
            elif (j + 2 < len(children) and isinstance(children[j + 1], nodes.Text)
                  and _JOINER.fullmatch(children[j + 1].astext())
                  and isinstance(children[j + 2], test_citation)):
                j += 2
            else:
                break
            group.append(children[j])
        has_before = bool(rendered) and isinstance(rendered[-1], nodes.Text)
        has_after = j + 1 < len(children) and isinstance(children[j + 1], nodes.Text)
        before, after = _tidy(rendered[-1].astext() if has_before else "",
                              children[j + 1].astext() if has_after else "")
        if has_before:
            rendered[-1] = nodes.Text(before)
        rendered.append(_superscript([c["reference"] for c in group], numbers, seen))
        if has_after:
            children[j + 1] = nodes.Text(after)
        i = j + 1
    parent.children = []
    parent.extend(rendered)


def _tests_page_uri(app, docname, reference=None):
    if TESTS_PAGE not in app.env.all_docs:
        return None
    uri = app.builder.get_relative_uri(docname, TESTS_PAGE)
    return uri + ("#" + _test_id(reference) if reference else "")


def _test_id(reference):
    return nodes.make_id("test " + reference)


def _cited_on_this_page(app, docname, numbers):
    """The section that ends a page: its cited tests, numbered, each linked to the tests page."""
    section = nodes.section(ids=["tests-cited-on-this-page"])
    section += nodes.title("", "Tests cited on this page")
    items = nodes.enumerated_list(enumtype="arabic", prefix="", suffix=".")
    for reference, number in numbers.items():
        item = nodes.list_item(ids=[f"test-cite-{number}"])
        paragraph = nodes.paragraph()
        uri = _tests_page_uri(app, docname, reference)
        code = nodes.literal(reference, reference)
        paragraph += nodes.reference("", "", code, refuri=uri, internal=True) if uri else code
        item += paragraph
        items += item
    section += items
    return section


def render_test_citations(app, doctree, docname):
    """``doctree-resolved``: number the page's citations, list them at its end; fill the tests
    page."""
    citations = list(doctree.findall(test_citation))
    if citations:
        numbers = {ref: n for n, ref in enumerate(_cited(app.env).get(docname, ()), start=1)}
        parents = []
        for citation in citations:
            if not any(citation.parent is p for p in parents):
                parents.append(citation.parent)
        seen = set()
        for parent in parents:
            _render_group(parent, numbers, seen)
        top = doctree.next_node(nodes.section)
        (top if top is not None else doctree).append(_cited_on_this_page(app, docname, numbers))
    for placeholder in list(doctree.findall(cited_tests_list)):
        placeholder.replace_self(_all_cited_tests(app, docname))


def _docstring_summary(path, dotted):
    """First paragraph of a test's docstring (of the module's without ``dotted``), one line."""
    with open(path, encoding="utf-8") as f:
        scope = ast.parse(f.read(), path)
    for part in [p for p in dotted.split(".") if p]:
        found = [n for n in scope.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef,
                                                         ast.ClassDef)) and n.name == part]
        if not found:
            return "", 0
        scope = found[0]
    doc = ast.get_docstring(scope) or ""
    first = " ".join(doc.split("\n\n", 1)[0].split())
    return re.sub(r"``?([^`]+)``?", r"\1", first), getattr(scope, "lineno", 0)


class CitedTests(SphinxDirective):
    """``{cited-tests}``: every test the pages cite, by file, with the pages citing it."""

    def run(self):
        return [cited_tests_list()]


def _all_cited_tests(app, docname):
    env = app.env
    pages = {}
    for page, references in _cited(env).items():
        for number, reference in enumerate(references, start=1):
            pages.setdefault(reference, []).append((page, number))
    by_file = {}
    for reference, citing in pages.items():
        path, _, name = reference.partition("::")
        by_file.setdefault(path, []).append((name, reference, sorted(citing)))
    out = []
    for path in sorted(by_file):
        header = nodes.paragraph()
        header += nodes.strong("", "", nodes.literal(path, path))
        header += nodes.Text(" — run: ")
        command = f"python -m pytest {path}"
        header += nodes.literal(command, command)
        out.append(header)
        entries = []
        for name, reference, citing in by_file[path]:
            summary, line = _docstring_summary(os.path.join(ROOT, path),
                                               name.split("[", 1)[0].replace("::", "."))
            entries.append((line, name, reference, citing, summary))
        items = nodes.bullet_list()
        for _, name, reference, citing, summary in sorted(entries):
            paragraph = nodes.paragraph()
            paragraph += nodes.literal(name or path, name or path)
            if summary:
                paragraph += nodes.Text(f": {summary}")
            paragraph += nodes.Text(" — cited on ")
            for k, (page, number) in enumerate(citing):
                if k:
                    paragraph += nodes.Text(", ")
                title = env.titles[page].astext() if page in env.titles else page
                uri = app.builder.get_relative_uri(docname, page) + f"#test-cited-{number}"
                paragraph += nodes.reference("", f"{title} [{number}]", internal=True, refuri=uri)
            items += nodes.list_item("", paragraph, ids=[_test_id(reference)])
        out.append(items)
    return out


def _purge_citations(app, env, docname):
    _cited(env).pop(docname, None)


def _merge_citations(app, env, docnames, other):
    for docname in docnames:
        if docname in _cited(other):
            _cited(env)[docname] = _cited(other)[docname]


def _tests_page_outdated(app, env, added, changed, removed):
    """The tests page lists what the other pages cite: rebuild it when any of them changed."""
    if TESTS_PAGE in env.all_docs and (added or changed or removed):
        return [TESTS_PAGE]
    return []


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
    for node in (test_citation, cited_tests_list):
        app.add_node(node, **{builder: (_skip, None) for builder in
                              ("html", "latex", "text", "man", "texinfo")})
    app.add_role("test", test_role)
    app.add_directive("cited-tests", CitedTests)
    app.connect("doctree-read", _record_citations)
    app.connect("doctree-resolved", render_test_citations)
    app.connect("env-purge-doc", _purge_citations)
    app.connect("env-merge-info", _merge_citations)
    app.connect("env-get-outdated", _tests_page_outdated)
    app.add_role("repo", _literal_role(_check_repo_path))
    app.add_directive("cli-flags", CliFlags)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
