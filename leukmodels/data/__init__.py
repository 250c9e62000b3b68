"""Data for one trial: datasets, splits, pre-processing, augmentation, decode cache, loaders.

Entry points (import them from their modules; this package imports nothing heavy):

- :func:`leukmodels.data.prepare.prepare_data` and ``make_loaders``, ``test_noise_sets``,
  ``make_eval_loader``: what the training loop calls;
- :func:`leukmodels.data.registry.resolve_dataset`: registry names, folders, manifests,
  ``synthetic`` (:mod:`leukmodels.data.synthetic`);
- :func:`leukmodels.data.splits.make_split`;
- :func:`leukmodels.data.augment.build_augment` / ``validate_augment``;
- :mod:`leukmodels.data.preprocess`, :mod:`~leukmodels.data.nucleus`,
  :mod:`~leukmodels.data.balance`, :mod:`~leukmodels.data.noise`: the pixel operations;
- :func:`leukmodels.data.cache.load_or_decode`: the per-machine decode cache.
"""
