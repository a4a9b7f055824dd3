"""Shared machinery behind the suite's scripts: config, data formats, training, evaluation, I/O."""
