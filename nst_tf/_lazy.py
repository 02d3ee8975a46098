"""PEP 562 lazy exports for the ``nst_tf`` and ``magenta_compat`` packages.

Standard library only, so importing either package stays cheap: a public name is imported from
its submodule (and TensorFlow with it) on first access, then cached in the package.
"""

import importlib


def lazy_attributes(namespace, exports, submodules):
    """``(__getattr__, __dir__)`` for the package whose ``globals()`` is ``namespace``.

    ``exports`` maps each public name to the submodule defining it; names in ``submodules`` are
    returned as modules.

    Example (in a package's ``__init__.py``)::

        __getattr__, __dir__ = lazy_attributes(globals(), {"stylize": "pastiche"}, {"io"})
    """
    package = namespace["__name__"]

    def __getattr__(name):
        if name in exports:
            value = getattr(importlib.import_module(f"{package}.{exports[name]}"), name)
            namespace[name] = value
            return value
        if name in submodules:
            return importlib.import_module(f"{package}.{name}")
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    def __dir__():
        return sorted(set(namespace) | set(namespace.get("__all__", ())))

    return __getattr__, __dir__
