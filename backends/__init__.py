"""Framework backends, one subpackage per framework (installed as ``dlbench.backends``).

Every subpackage has the same modules, in the manner of Keras 3's ``keras/src/backend``:

- ``backend.py``: the :class:`~dlbench.model.backend.Backend` and :class:`~dlbench.model.backend.Model`
  classes; imports its framework at the top, so it is loaded only when used;
- ``ops.py``: one function per ModelSpec op (see :mod:`dlbench.model.ops`).

Shared, framework-free helpers live in ``common/``. Importing this package imports no framework.
"""
