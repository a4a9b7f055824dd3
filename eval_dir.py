"""Evaluate every run of a folder written by train.py: per-run accuracy, then mean and std.

    python3 eval_dir.py --path=models/SVHN/encoder_memory/mobilenet/1000

Runs `<N>.pt` are taken in numeric order (other .pt files are skipped with a note). Each run is
evaluated exactly as train.py evaluated it after training (same subset, same seeded memory draws,
same number of passes), so on the same device the printed accuracies are the ones train.py printed.
Mean and std are over runs; the std is the population std (ddof 0), as the original. The numbers
are also written to <folder>/eval_dir.json (see --json).

    python3 eval_dir.py --majority_vote --path=models/SVHN/encoder_memory/mobilenet/1000

adds the journal's majority-vote baselines of memory models (MVO, MVY; suite/journal/majority_vote_eval.py)
beside the same accuracies, into <folder>/majority_vote.json, which `grid.py report` reads.
"""
from __future__ import annotations

from absl import app, flags

from suite.cli import reject_extra_arguments, user_errors
from suite.commands import define_common_flags, evaluate_folder
from suite.restore import CheckpointOptions

FLAGS = flags.FLAGS
flags.DEFINE_string("path", None, "Folder holding the runs <N>.pt of one cell (a trailing / is optional).")
flags.DEFINE_alias("path_model", "path")  # the name the original README used for this flag
flags.DEFINE_integer("passes", None, "Evaluation passes per memory model; default: the run's eval_passes "
                                     "(5, the original's count, unless the training config changed it).")
flags.DEFINE_string("json", None, "Where to write the JSON results; default <folder>/eval_dir.json "
                                  "(<folder>/majority_vote.json with --majority_vote), an empty value writes none.")
flags.DEFINE_bool("majority_vote", False, "Memory models only: also score the journal's majority votes of the "
                                          "positive-weight memory samples (MVO: their predicted classes, MVY: their "
                                          "labels) beside the model's accuracy, with the same passes and draws.")
define_common_flags(None, "Test batch size; default: the training config's (500). Every batch shares one "
                          "memory draw, so this changes memory-model numbers.")
flags.mark_flag_as_required("path")


@user_errors
def main(argv: list[str]) -> None:
    reject_extra_arguments(argv)
    if FLAGS.majority_vote:
        from suite.journal.majority_vote_eval import majority_vote_folder

        majority_vote_folder(FLAGS.path, CheckpointOptions.from_flags(FLAGS), FLAGS.passes, FLAGS.json)
        return
    evaluate_folder(FLAGS.path, CheckpointOptions.from_flags(FLAGS), FLAGS.passes, FLAGS.json)


if __name__ == "__main__":
    app.run(main)
