"""Training and fine-tuning: the loop (``training.loop``: ``train``, ``evaluate_top1``,
objectives, checkpoints) and its settings (``training.spec.TrainSpec``). Importing the package
loads no torch, so a recipe validates without it."""
