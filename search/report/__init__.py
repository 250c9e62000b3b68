"""Ablation reports: statistics, tables, figures and the paper's numbers for a study.

``collect`` (store -> frames), ``stats`` (intervals over runs and over per-image predictions,
``intervals``, ``image_stats``, ``image_metrics``), ``ablation``, ``paper``,
``importance`` and ``tables`` (the tables), ``header`` (what stands behind them),
``figures`` (PNGs), ``display`` and ``render`` (Markdown and self-contained HTML) and
``build`` (:func:`~search.report.build.build_report`, ``write_report``).
"""
