"""Figures of inputs and the memory samples the model used for them (positive weight).

    python3 generate_memory_images.py --path_model=models/SVHN/encoder_memory/mobilenet/1000/1.pt

One figure per --batch_size_test test inputs (default 3): the top row shows each input with its
predicted class, the bottom row the grid of its positive-weight memory samples, highest weight
first (4 per grid row). The inputs of a figure share one memory draw, taken from the run's own
training subset with a generator seeded by the run. Figures go to
images/mem_images/DATASET/MODALITY/MODEL/TRAIN_EXAMPLES/run<N>/<last test index in the figure>.png (the
original's file names: 2.png, 5.png, ... for 3 inputs per figure; --out_dir for another folder), 2*batch_size_test
x 4 inches at 300 dpi. The folder's figures.json says which checkpoint and options drew them: a folder of
another checkpoint is refused unless --overwrite.
"""
from __future__ import annotations

from absl import app, flags

from suite.cli import reject_extra_arguments, user_errors
from suite.commands import MEMORY_IMAGES_MAX, MEMORY_IMAGES_PER_FIGURE, define_common_flags, memory_images
from suite.restore import CheckpointOptions

FLAGS = flags.FLAGS
flags.DEFINE_string("path_model", None, "Checkpoint of a memory or encoder_memory model.")
flags.DEFINE_integer("max_images", MEMORY_IMAGES_MAX, "Test inputs to draw, rounded up to whole figures (0 = the "
                     "whole test set, as the original did).")
flags.DEFINE_string("out_dir", None, "Folder of the figures; default "
                    "images/mem_images/DATASET/MODALITY/MODEL/TRAIN_EXAMPLES/run<N>, with '_<option>=<value>' for "
                    "each option that changes the figures and differs from its default.")
flags.DEFINE_bool("overwrite", False, "Replace the figures of another checkpoint or other options in the folder "
                  "(only the files its figures.json lists); without it such a folder is refused.")
define_common_flags(MEMORY_IMAGES_PER_FIGURE, "Test inputs per figure (they share one memory draw).")
flags.mark_flag_as_required("path_model")


@user_errors
def main(argv: list[str]) -> None:
    reject_extra_arguments(argv)
    memory_images(FLAGS.path_model, CheckpointOptions.from_flags(FLAGS), FLAGS.max_images, out_dir=FLAGS.out_dir,
                  overwrite=FLAGS.overwrite)


if __name__ == "__main__":
    app.run(main)
