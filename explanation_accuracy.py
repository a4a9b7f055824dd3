"""Explanation accuracy (Table 5), counterfactual accuracy (Table 6) and example accuracy over a folder.

    python3 explanation_accuracy.py --path_models=models/CIFAR10/encoder_memory/mobilenet/1000

For each test input the memory sample of highest weight is classified by the model (with a second,
auxiliary memory draw): it is an explanation by example when that class equals the input's
prediction, a counterfactual otherwise. Explanation accuracy = share of examples; counterfactual /
example accuracy = the model's accuracy on each group. 5 passes per model, then mean and population
std over the models; a group with no case prints n/a. Also written to
<folder>/explanation_accuracy_<pool>.json (see --json).
"""
from __future__ import annotations

from absl import app, flags

from suite.cli import reject_extra_arguments, user_errors
from suite.commands import EXPLANATION_PASSES, define_common_flags, explanation_accuracy
from suite.restore import CheckpointOptions

FLAGS = flags.FLAGS
flags.DEFINE_string("path_models", None, "Folder holding the runs <N>.pt of one memory cell (trailing / optional).")
flags.DEFINE_integer("passes", EXPLANATION_PASSES, "Passes per model, each with fresh seeded memory draws.")
flags.DEFINE_enum("memory_pool", "subset", ["subset", "full"],
                  "subset: memories from the run's own training subset (mem_examples per draw); full: the "
                  "original's choice, 100 memories from the whole training split.")
flags.DEFINE_string("json", None, "Where to write the JSON results; default <folder>/explanation_accuracy_<pool>.json, "
                                  "an empty value writes none.")
define_common_flags(None, "Test batch size; default: the training config's (500). Every batch shares one "
                          "memory draw, so this changes the numbers.")
flags.mark_flag_as_required("path_models")


@user_errors
def main(argv: list[str]) -> None:
    reject_extra_arguments(argv)
    explanation_accuracy(FLAGS.path_models, CheckpointOptions.from_flags(FLAGS), FLAGS.passes, FLAGS.memory_pool,
                         FLAGS.json)


if __name__ == "__main__":
    app.run(main)
