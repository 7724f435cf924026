"""Brain-tumour MRI classification: the core ML library (data, models, training, evaluation).

This package never imports clearml: the ClearML adapters live in the top-level `steps/` and `pipelines/`.
"""

__version__ = "0.2.0"
