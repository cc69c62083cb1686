"""One module per ``simclr`` sub-command.

Each module defines ``register(commands)``, which adds its parser to the ``simclr`` sub-parsers, its flags
generated from the command's settings dataclasses (:func:`simclr.settings.add_settings_flags`; no flag is
written by hand), and sets ``handler`` (a function ``(args) -> exit code``) that reads them back with
:func:`simclr.settings.settings_from_args`. :mod:`simclr.cli` lists them in ``COMMANDS``. Handlers import
heavy modules lazily so ``simclr --help`` stays fast.
"""
