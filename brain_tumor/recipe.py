"""The training recipe's named choices, importable without TensorFlow (the command line and the pipeline's
parameters list them; `training` acts on them)."""

AUGMENT_PLACES = ("auto", "model", "tfdata", "none")  # auto: model on a GPU, tfdata on a CPU
