"""Train the autoencoders that score counterfactuals: one per class and one on all classes, per run.

    python3 train_autoencoders.py --path_models=models/SVHN/encoder_memory/mobilenet/1000

The journal's small convolutional autoencoder and training (MSE, Adam lr 1e-3, 4 epochs, batch 32) on
the whole training split of each run's split seed (the journal's data: all training images but the
validation hold-out, not only the run's subset), saved in <folder>/autoencoders/run_<N>/. Autoencoders already saved
with the same split and training are kept, so an interrupted job resumes where it stopped.
"""
from __future__ import annotations

from absl import app, flags

from suite.cli import reject_extra_arguments, user_errors
from suite.commands import define_common_flags
from suite.journal.autoencoders import AutoencoderTraining
from suite.journal.quality_commands import train_autoencoders
from suite.restore import CheckpointOptions

DEFAULT = AutoencoderTraining()
FLAGS = flags.FLAGS
flags.DEFINE_string("path_models", None, "Folder holding the runs <N>.pt of one memory cell.")
flags.DEFINE_integer("epochs", DEFAULT.epochs, "Epochs per autoencoder (the journal: 4).")
flags.DEFINE_integer("batch_size", DEFAULT.batch_size, "Training batch size (the journal: 32).")
flags.DEFINE_float("learning_rate", DEFAULT.learning_rate, "Adam learning rate (the journal: 1e-3).")
flags.DEFINE_bool("overwrite", False, "Retrain autoencoders that are already saved.")
define_common_flags(None, "Unused here (kept for the shared checkpoint flags).")
flags.mark_flag_as_required("path_models")


@user_errors(interrupted="interrupted; the autoencoders trained so far are kept: run the same command to train the others")
def main(argv: list[str]) -> None:
    reject_extra_arguments(argv)
    training = AutoencoderTraining(FLAGS.epochs, FLAGS.batch_size, FLAGS.learning_rate)
    train_autoencoders(FLAGS.path_models, CheckpointOptions.from_flags(FLAGS), training, FLAGS.overwrite)


if __name__ == "__main__":
    app.run(main)
