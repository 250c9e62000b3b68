"""leukmodels: one training run of a leukaemia / white-blood-cell image classifier.

Data, model, loss, optimiser, metrics. No Ray, Optuna or database imports live here:
a trial runs from a :class:`leukmodels.config.TrialConfig` alone.
"""

__version__ = "0.1.0"
