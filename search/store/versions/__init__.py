"""Migration steps, one module per schema version (``vNNN_<what>.py``), never edited once released.

Each module has ``VERSION`` (int), ``DESCRIPTION`` (str) and ``upgrade(conn)``; list it in
``search.store.migrations.MIGRATIONS``.
"""
