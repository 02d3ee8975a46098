"""The documentation's code blocks as tests: collect them, shrink them, run or check them.

Every ```` ```bash ```` and ```` ```python ```` block of ``README.md`` and ``docs/**/*.md`` is
either *run* (bash through ``bash``, with this environment's ``nst-*`` programs on the ``PATH``;
Python in one interpreter per page, like a user's session) or *checked*: a block that needs what a
test machine lacks says so on the line above its fence::

    <!-- example: needs=download; Magenta's "varied" checkpoint (Keras downloads it once) -->

The kinds are the keys of :data:`NEEDS`. A checked block's ``nst-*`` flags must be flags of that
program, its imports must import and its dotted names (``nst_tf.stylize``) must exist.

A run block runs at a tiny scale, changed by the one table :data:`SUBSTITUTIONS` (regular
expressions, applied in order, each with its reason) and :data:`APPEND` (flags added at the end of
a program's command line; absl lets the last value of a flag win). Its sample files are
:data:`FILES` (names the docs use → files of the repository), copied into the page's folder.
The blocks of one page run in order in one folder, so a block may use what an earlier one wrote.
"""

import ast
import dataclasses
import glob
import importlib
import inspect
import os
import re
import shutil

from nst_tf.cli.launch import PROGRAMS   # program name -> module under nst_tf.cli

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

#: What a block may need that a test machine lacks (the ``needs=`` of its marker).
NEEDS = {
    "download": "files from the internet (pretrained weights, data sets); CI is offline",
    "gpu": "a GPU",
    "cloud": "a cloud project (gs://, Dataflow, Vertex AI)",
    "cluster": "several machines",
    "browser": "a person at a browser (the program serves a page until stopped)",
    "install": "changes the environment (pip install of other packages)",
    "suite": "the whole test suite or docs build, which CI runs by itself",
}

#: ``(pattern, replacement, why)``: applied in order to the text of every run block (``_KW``:
#: a Python keyword argument, not the end of a ``--flag``).
_KW = r"(?<![\w-])"
SUBSTITUTIONS = [
    (r"(?<![\w-])pip install[^\n&;|#]*[^\s&;|#]", "true",
     "the package is installed already: the tests run in that environment"),
    (r"--scales=[\d,]+", "--scales=24,32", "two tiny scales (VGG needs 16 px on the short side)"),
    (_KW + r"scales=\[[\d, ]+\]", "scales=[24, 32]", "two tiny scales"),
    (r"--steps=\d+(,\d+)+", "--steps=2,1", "one step count per (tiny) scale"),
    (r"--steps=\d+", "--steps=2", "two optimizer steps"),
    (_KW + r"steps=(\[[\d, ]+\]|\d+)", "steps=2, weights='random'",
     "two optimizer steps of a random VGG (ImageNet weights are a download)"),
    (r"--size=\d+", "--size=32", "32-pixel images"),
    (_KW + r"size=\d+", "size=32", "32-pixel images"),
    (_KW + r"size=\(\d+, \d+\)", "size=(32, 64)", "32 x 64 pixels (texture networks: multiples of 32)"),
    (r"--(image|content|style_image|thumbnail)_size=\d+", r"--\1_size=32", "32-pixel images"),
    (r"--tile_size=\d+", "--tile_size=16", "tiles of a 32-pixel image"),
    (_KW + r"tile_size=\d+", "tile_size=16", "tiles of a 32-pixel image"),
    (r"--train_steps=\d+", "--train_steps=2", "two training steps"),
    (_KW + r"train_steps=\d+", "train_steps=2, batch_size=2, image_size=64, weights=None",
     "two training steps on two 64-pixel crops (6 texture scales), random VGG (ImageNet weights are a download)"),
    (r"--batch_size=\d+", "--batch_size=2", "two images per step (the diversity term compares two)"),
]

#: Flags added at the end of a program's command line in a run block (before ``--``).
APPEND = {
    "nst-stylize": ["--weights=random"],          # VGG's ImageNet weights are a download
    "nst-reconstruct": ["--weights=random"],
    "nst-train": ["--weights=random", "--batch_size=2", "--image_size=64", "--train_steps=2",
                  "--verbose=0"],
}

_IMAGES = os.path.join(ROOT, "examples", "images")
_PHOTO = os.path.join(_IMAGES, "coast_guard_boat.jpg")
_PAINTING = os.path.join(_IMAGES, "Theo_van_Doesburg_sq.jpg")
_OTHER = os.path.join(_IMAGES, "Camille_Mauclair.jpg")

#: Sample files: the name a page uses → the repository's file (a folder: a list of them).
FILES = {
    "photo.jpg": _PHOTO, "big.jpg": _PHOTO,
    "starry.jpg": _PAINTING, "a.jpg": _PAINTING, "la_muse.jpg": _PAINTING,
    "bricks.jpg": _PAINTING, "new_style.jpg": _PAINTING,
    "scream.jpg": _OTHER, "b.jpg": _OTHER, "sketch.png": _OTHER,
    "photos": [_PHOTO, os.path.join(ROOT, "tests", "images", "content_sq.jpg")],
    "styles": [_PAINTING, _OTHER], "art": [_PAINTING, _OTHER],
}

_FENCE = re.compile(r"^(\s*)(`{3,})(bash|python)\s*$")
_MARKER = re.compile(r"^\s*<!--\s*example:\s*(.*?)\s*-->\s*$")
#: A program's command: its name, then its words up to ``--`` (Beam's options follow), a comment,
#: ``&&``, ``|``, ``;`` or the end of the line.
_END = r"(?=\s--\s|\s--$|\s+&&|\s+\|\|?|\s*;|\s+#|$)"
_COMMAND = re.compile(r"(?<![\w-])(" + "|".join(map(re.escape, PROGRAMS)) + r")(?![\w-])(.*?)"
                      + _END)


@dataclasses.dataclass
class Block:
    """One fenced code block: ``page`` (path from the repository root), ``line`` (of its
    opening fence, 1-based), ``lang`` (bash | python), ``code``, and ``needs`` / ``why`` of its
    marker (None: the block runs)."""
    page: str
    line: int
    lang: str
    code: str
    needs: str = None
    why: str = None

    @property
    def id(self):
        return f"{self.page}:{self.line}"


def pages(root=ROOT):
    """README.md and every Markdown page of docs/ (its build folder left out), in order."""
    found = sorted(glob.glob(os.path.join(root, "docs", "**", "*.md"), recursive=True))
    found = [p for p in found if "_build" not in os.path.relpath(p, root).split(os.sep)]
    return [os.path.join(root, "README.md")] + found


def parse_marker(text):
    """``(needs, why)`` of a marker's text ``needs=download; why``.

    >>> parse_marker("needs=gpu; a CUDA device")
    ('gpu', 'a CUDA device')
    """
    match = re.fullmatch(r"needs=(\w+)\s*;\s*(\S.*)", text)
    if not match:
        raise ValueError(f"an example marker reads '<!-- example: needs=KIND; why -->', "
                         f"not {text!r}")
    if match.group(1) not in NEEDS:
        raise ValueError(f"unknown needs={match.group(1)} (kinds: {', '.join(NEEDS)})")
    return match.group(1), match.group(2)


def blocks_of(path, root=ROOT):
    """The bash and Python blocks of one Markdown file, in order."""
    with open(path, encoding="utf-8") as f:
        lines = f.read().split("\n")
    page = os.path.relpath(path, root).replace(os.sep, "/")
    found, i = [], 0
    while i < len(lines):
        fence = _FENCE.match(lines[i])
        if not fence:
            i += 1
            continue
        indent, ticks, lang = fence.groups()
        end = i + 1
        while end < len(lines) and not lines[end].strip().startswith(ticks):
            end += 1
        code = "\n".join(line[len(indent):] for line in lines[i + 1:end])
        above = next((lines[j] for j in range(i - 1, -1, -1) if lines[j].strip()), "")
        marker = _MARKER.match(above)
        needs, why = parse_marker(marker.group(1)) if marker else (None, None)
        found.append(Block(page, i + 1, lang, code, needs, why))
        i = end + 1
    return found


def all_blocks(root=ROOT):
    return [block for path in pages(root) for block in blocks_of(path, root)]


# ------------------------------------------------------------------------- shrinking a run block

def substitute(code):
    """``code`` with every :data:`SUBSTITUTIONS` entry applied."""
    for pattern, replacement, _ in SUBSTITUTIONS:
        code = re.sub(pattern, replacement, code)
    return code


def logical_lines(code):
    """Shell lines with backslash continuations joined; comments and blank lines dropped."""
    joined = re.sub(r"\s*\\\n\s*", " ", code)
    return [line for line in joined.split("\n") if line.strip() and not line.lstrip().startswith("#")]


def strip_comment(line):
    """A shell line without its ``# comment`` (a ``#`` inside quotes or a word stays).

    >>> strip_comment("nst-train --style='a#1'  # trains")
    "nst-train --style='a#1'"
    """
    quote = None
    for i, char in enumerate(line):
        if quote:
            quote = None if char == quote else quote
        elif char in "'\"":
            quote = char
        elif char == "#" and (i == 0 or line[i - 1].isspace()):
            return line[:i].rstrip()
    return line


def shrink_bash(code):
    """A bash block as the test runs it: :func:`substitute`, continuation lines joined, then
    :data:`APPEND` (each program's extra flags at the end of its command: before ``--``, a
    comment, ``&&``, ``|`` or ``;``)."""
    lines = logical_lines(substitute(code))
    for program, extra in APPEND.items():
        command = re.compile(rf"(?<![\w-]){re.escape(program)}(?![\w-])(.*?)" + _END)
        lines = [command.sub(lambda m: m.group(0) + " " + " ".join(extra), line)
                 for line in lines]
    return "\n".join(lines)


def shrink_python(code):
    """A Python block as the test runs it (:func:`substitute`)."""
    return substitute(code)


def make_files(folder, text):
    """Copy into ``folder`` the :data:`FILES` that ``text`` mentions."""
    for name, source in FILES.items():
        if not re.search(rf"(?<![\w./-]){re.escape(name)}(?![\w-])", text):
            continue
        target = os.path.join(folder, name)
        if isinstance(source, list):
            os.makedirs(target, exist_ok=True)
            for path in source:
                shutil.copy(path, os.path.join(target, os.path.basename(path)))
        elif not os.path.exists(target):
            shutil.copy(source, target)


# ------------------------------------------------------------------------- checking a block

def program_flags(program, subcommand=None):
    """The flag names ``program`` (an ``nst-*`` name) defines, ``subcommand``'s for nst-prefer."""
    from absl import flags

    module = importlib.import_module(f"nst_tf.cli.{PROGRAMS[program]}")
    define = getattr(module, "define_flags", None)
    if define is None:   # nst-prefer: define_serve_flags, define_export_flags, ...
        define = getattr(module, f"define_{subcommand or 'serve'}_flags")
    fv = flags.FlagValues()
    define(fv)
    names = set(fv)
    for name in list(names):
        if isinstance(fv[name], flags.BooleanFlag):
            names.add("no" + name)
    return names | {"help", "helpfull", "helpshort"}


def bash_flag_errors(code):
    """Flags of ``nst-*`` command lines in ``code`` that their program does not define (also
    inside quotes, as in ``bash -c '... nst-train ...'``, and in ``[--optional]`` brackets)."""
    errors = []
    for line in logical_lines(code):
        for match in _COMMAND.finditer(strip_comment(line)):
            name, args = match.group(1), match.group(2).split()
            subcommand = None
            if name == "nst-prefer" and args and re.fullmatch(r"\w+", args[0]):
                subcommand, args = args[0], args[1:]
            known = program_flags(name, subcommand)
            for arg in args:
                flag = re.match(r"^\[?--?([A-Za-z_]\w*)", arg)
                if flag and flag.group(1) not in known:
                    errors.append(f"{name}{' ' + subcommand if subcommand else ''}: "
                                  f"no flag --{flag.group(1)} (in {match.group(0)!r})")
    return errors


def python_name_errors(code):
    """Imports of ``code`` that fail, dotted names under them that do not exist, and keyword
    arguments that a called function (without ``**kwargs``) does not take."""
    tree = ast.parse(code)
    scope, errors = {}, []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                try:
                    module = importlib.import_module(alias.name)
                except ImportError as e:
                    errors.append(f"import {alias.name}: {e}")
                    continue
                if alias.asname:
                    scope[alias.asname] = module
                else:
                    scope[alias.name.split(".")[0]] = importlib.import_module(
                        alias.name.split(".")[0])
        elif isinstance(node, ast.ImportFrom) and node.module:
            try:
                module = importlib.import_module(node.module)
            except ImportError as e:
                errors.append(f"from {node.module} import ...: {e}")
                continue
            for alias in node.names:
                if not hasattr(module, alias.name):
                    errors.append(f"from {node.module} import {alias.name}: no such name")
                else:
                    scope[alias.asname or alias.name] = getattr(module, alias.name)
    for node in ast.walk(tree):
        target = node.func if isinstance(node, ast.Call) else node
        if not isinstance(target, ast.Attribute):
            continue
        parts, base = [], target
        while isinstance(base, ast.Attribute):
            parts.insert(0, base.attr)
            base = base.value
        if not (isinstance(base, ast.Name) and base.id in scope and inspect.ismodule(scope[base.id])):
            continue
        obj, dotted = scope[base.id], base.id
        for part in parts:
            dotted += "." + part
            if not inspect.ismodule(obj):
                break   # an attribute of a result (out.shape): not checked
            try:
                obj = getattr(obj, part)
            except AttributeError:
                errors.append(f"{dotted}: no such name")
                obj = None
                break
        if obj is not None and isinstance(node, ast.Call):
            errors += _keyword_errors(obj, node, dotted)
    for node in ast.walk(tree):
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
                and node.func.id in scope):
            errors += _keyword_errors(scope[node.func.id], node, node.func.id)
    return list(dict.fromkeys(errors))   # a call and its function name are both visited


def bound_names(code):
    """Names a Python block binds (assignments, imports, definitions, loop and ``with``
    targets, arguments)."""
    names = set()
    for node in ast.walk(ast.parse(code)):
        if isinstance(node, ast.Name) and isinstance(node.ctx, (ast.Store, ast.Del)):
            names.add(node.id)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            names |= {(a.asname or a.name).split(".")[0] for a in node.names}
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, ast.arg):
            names.add(node.arg)
    return names


def undefined_names(code, known=()):
    """Names a Python block reads that neither it, ``known`` (what the page's earlier blocks
    bound) nor the builtins define: a reader pasting the page's blocks would get a NameError.

    >>> undefined_names("w = f(W)", known={"f"})
    ['W']
    """
    import builtins

    defined = bound_names(code) | set(known) | set(dir(builtins))
    used = [n.id for n in ast.walk(ast.parse(code))
            if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)]
    return sorted({name for name in used if name not in defined})


def _keyword_errors(function, call, name):
    try:
        parameters = inspect.signature(function).parameters
    except (TypeError, ValueError):
        return []
    if any(p.kind is p.VAR_KEYWORD for p in parameters.values()):
        return []
    return [f"{name}() takes no keyword {k.arg}=" for k in call.keywords
            if k.arg is not None and k.arg not in parameters]
