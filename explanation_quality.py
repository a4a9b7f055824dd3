"""Explanation-by-example quality (journal): is the example Memory Wrap shows representative?

    python3 explanation_quality.py --path_models=models/SVHN/encoder_memory/mobilenet/1000

For each test input, the explanation is the first memory sample of the input's predicted class in a
ranking of the memory: by Memory Wrap's weight, by contribution-weighted hidden features (CHP), by
hidden features (KNN*), or random. Each is scored by prediction non-representativeness (cross-entropy
of the example's own output against the prediction) and input non-representativeness (mean absolute
logit difference); lower is better. Per run, then mean and population std over the cell's runs,
written to <folder>/example_quality.{md,csv,json}.
"""
from __future__ import annotations

from absl import app, flags

from suite.cli import reject_extra_arguments, user_errors
from suite.commands import define_common_flags
from suite.journal.quality_commands import EXAMPLE_BATCH, explanation_quality
from suite.restore import CheckpointOptions

FLAGS = flags.FLAGS
flags.DEFINE_string("path_models", None, "Folder holding the runs <N>.pt of one Memory Wrap cell (memory or "
                                         "encoder_memory).")
flags.DEFINE_integer("passes", 1, "Passes over the test set per run, each with fresh seeded memory draws "
                                  "(the journal: 1).")
define_common_flags(EXAMPLE_BATCH, "Test batch size (the journal: 256); every batch shares one memory draw.")
flags.mark_flag_as_required("path_models")


@user_errors
def main(argv: list[str]) -> None:
    reject_extra_arguments(argv)
    explanation_quality(FLAGS.path_models, CheckpointOptions.from_flags(FLAGS), FLAGS.passes)


if __name__ == "__main__":
    app.run(main)
