"""Models: the registry of architectures and checkpoints (``models.build``: ``build_model``,
``load_model_file``, ...), saved pruned structures and the recipe's ``ModelSpec``
(``models.spec``). Importing the package loads no torch, so a recipe validates without it."""
