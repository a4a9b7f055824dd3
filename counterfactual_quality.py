"""Counterfactual quality (journal): Memory Wrap's own counterfactuals against prototype-guided search.

    python3 train_autoencoders.py --path_models=models/SVHN/encoder_memory/mobilenet/1000
    python3 counterfactual_quality.py --path_models=models/SVHN/encoder_memory/mobilenet/1000

Per test input: Memory Wrap's counterfactual (the highest-weight memory sample that the model predicts
as another class) and a counterfactual searched as Van Looveren & Klaise (2019) publish it, both
scored by IM1, IIM1 and IM2 with the run's autoencoders. Failed searches are counted, never scored.
Tables in <folder>/counterfactual_quality.{md,csv,json}, per-input scores in
<folder>/counterfactual_quality_inputs.csv, a figure per run in <folder>/counterfactuals_run<N>.png.
"""
from __future__ import annotations

from absl import app, flags

from suite.cli import reject_extra_arguments, user_errors, UserError
from suite.commands import define_common_flags
from suite.journal.cfproto import CFProtoOptions
from suite.journal.counterfactual_quality import TARGET_MODES, CounterfactualSettings
from suite.journal.quality_commands import COUNTERFACTUAL_BATCH, counterfactual_quality
from suite.restore import CheckpointOptions

DEFAULT = CFProtoOptions()
FLAGS = flags.FLAGS
flags.DEFINE_string("path_models", None, "Folder holding the runs <N>.pt of one memory cell.")
flags.DEFINE_integer("max_inputs", 0, "Explain the first N test inputs of each run (0: all, as the journal).")
flags.DEFINE_enum("target", "memory", list(TARGET_MODES),
                  "memory: search towards the class of Memory Wrap's counterfactual, on the inputs that have one "
                  "(the journal's choice); any: every input, towards its nearest prototype of another class.")
flags.DEFINE_float("kappa", DEFAULT.kappa, "Confidence margin of the prediction term.")
flags.DEFINE_float("beta", DEFAULT.beta, "Weight of the L1 term (and shrinkage threshold).")
flags.DEFINE_float("gamma", DEFAULT.gamma, "Weight of the optional autoencoder term (0: off, as the journal).")
flags.DEFINE_float("theta", DEFAULT.theta, "Weight of the prototype term.")
flags.DEFINE_float("c_init", DEFAULT.c_init, "Initial weight of the prediction term.")
flags.DEFINE_integer("c_steps", DEFAULT.c_steps, "Runs of the search, c updated between them.")
flags.DEFINE_integer("max_iterations", DEFAULT.max_iterations, "FISTA iterations per run.")
flags.DEFINE_float("learning_rate", DEFAULT.learning_rate, "Initial learning rate (polynomial decay to 0).")
flags.DEFINE_float("clip", DEFAULT.clip, "Element-wise gradient clip.")
flags.DEFINE_bool("l1_in_gradient", DEFAULT.l1_in_gradient, "Also differentiate beta * L1 in the gradient step, "
                  "as the journal code did (the published method: only through the shrinkage step).")
flags.DEFINE_integer("k", 0, "Latents per class averaged into a prototype, nearest first (0: the whole class).")
flags.DEFINE_bool("data_feature_range", True, "Keep counterfactuals within the min / max of the normalised "
                                             "training pixels (the journal); false: unbounded.")
flags.DEFINE_integer("figure_inputs", 4, "Inputs shown in each run's figure (0: no figure).")
define_common_flags(COUNTERFACTUAL_BATCH, "Test batch size (the journal: 64); every batch shares one memory draw.")
flags.mark_flag_as_required("path_models")


@user_errors
def main(argv: list[str]) -> None:
    reject_extra_arguments(argv)
    try:
        search = CFProtoOptions(kappa=FLAGS.kappa, beta=FLAGS.beta, gamma=FLAGS.gamma, theta=FLAGS.theta,
                                c_init=FLAGS.c_init, c_steps=FLAGS.c_steps, max_iterations=FLAGS.max_iterations,
                                learning_rate=FLAGS.learning_rate, clip=FLAGS.clip, k=FLAGS.k or None,
                                l1_in_gradient=FLAGS.l1_in_gradient)
        settings = CounterfactualSettings(search, FLAGS.target, FLAGS.max_inputs, FLAGS.data_feature_range,
                                          FLAGS.figure_inputs)
    except ValueError as error:
        raise UserError(str(error)) from None
    counterfactual_quality(FLAGS.path_models, CheckpointOptions.from_flags(FLAGS), settings)


if __name__ == "__main__":
    app.run(main)
