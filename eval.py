"""Evaluate one checkpoint on its test set (Table 1 numbers for a single run).

    python3 eval.py --path_model=models/SVHN/encoder_memory/mobilenet/1000/1.pt [--dataset=SVHN]

Std models: one pass. Memory models: --passes passes (default 10, as the original), each drawing a
fresh memory per test batch from the run's own training subset with a generator seeded by the run;
the mean accuracy and the loss of the last pass are printed. The first passes are the ones train.py
made, so --passes=5 (the training default) gives train.py's numbers.

Checkpoints of the original suite carry no seed: `<k>.pt` is taken as run k (seed k - 1, the subset
it was trained on), any other name gets seed 42 (the original eval.py's split).
"""
from __future__ import annotations

from absl import app, flags

from suite.cli import reject_extra_arguments, user_errors
from suite.commands import EVAL_PASSES, define_common_flags, evaluate_checkpoint
from suite.restore import CheckpointOptions

FLAGS = flags.FLAGS
flags.DEFINE_string("path_model", None, "Checkpoint written by train.py (or by the original suite).")
flags.DEFINE_integer("passes", EVAL_PASSES, "Evaluation passes of memory models (std models always get one).")
flags.DEFINE_string("json", None, "Also write the result as JSON to this file.")
define_common_flags(None, "Test batch size; default: the training config's (500). Every batch shares one "
                          "memory draw, so this changes memory-model numbers.")
flags.mark_flag_as_required("path_model")


@user_errors
def main(argv: list[str]) -> None:
    reject_extra_arguments(argv)
    evaluate_checkpoint(FLAGS.path_model, CheckpointOptions.from_flags(FLAGS), FLAGS.passes, FLAGS.json)


if __name__ == "__main__":
    app.run(main)
