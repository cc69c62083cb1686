"""One module per ``simclr`` sub-command.

Each module defines ``register(commands)``, which adds its parser to the ``simclr`` sub-parsers and
sets ``handler`` (a function ``(args) -> exit code``). :mod:`simclr.cli` lists them in ``COMMANDS``.
Handlers import heavy modules lazily so ``simclr --help`` stays fast.
"""
