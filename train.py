"""Train a cell of the paper's grid: `runs` seeded runs of one model, modality, dataset and size.

    python3 train.py --modality=encoder_memory [--config=config/train.yaml] [--set key=value ...]
"""
from __future__ import annotations

from absl import app, flags

import architectures
from suite.cli import INTERRUPTED_TRAINING, UserError, reject_extra_arguments, user_errors
from suite.config import TrainSettings, load_config
from suite.training import train_cell

FLAGS = flags.FLAGS
flags.DEFINE_enum("modality", None, list(architectures.MODALITIES),
                  "std (plain classifier), memory (memory-only baseline) or encoder_memory (Memory Wrap).")
flags.DEFINE_bool("continue_train", False, "Keep the finished runs of this cell and resume an interrupted one.")
flags.DEFINE_bool("overwrite", False, "Discard earlier results of this cell and start again.")
flags.DEFINE_integer("log_interval", 100, "Print a progress line every this many training steps (no terminal).")
flags.DEFINE_string("config", "config/train.yaml", "Training config (YAML).")
flags.DEFINE_multi_string("set", [], "Override a config key, e.g. --set dataset_name=CIFAR10 --set CIFAR10.num_epochs=2.")
flags.mark_flag_as_required("modality")


@user_errors(interrupted=INTERRUPTED_TRAINING)
def main(argv: list[str]) -> None:
    reject_extra_arguments(argv)
    if FLAGS.continue_train and FLAGS.overwrite:
        raise UserError("--continue_train and --overwrite exclude each other")
    settings = TrainSettings(load_config(FLAGS.config, FLAGS.set), FLAGS.modality)
    train_cell(settings, FLAGS.continue_train, FLAGS.overwrite, log_every=FLAGS.log_interval)


if __name__ == "__main__":
    app.run(main)
