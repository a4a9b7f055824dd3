"""Integrated Gradients saliency maps of inputs, their top example and their top counterfactual.

    python generate_heatmaps.py --path_model=models/SVHN/encoder_memory/mobilenet/1000/1.pt

For each test input: draw a memory and an auxiliary memory (seeded by the run), predict with the
whole memory, keep the positive-weight memory samples, classify them with the auxiliary memory and
pick the top explanation by example (same class as the prediction) and the top counterfactual
(another class). captum's IntegratedGradients then attributes the predicted logit to the input and
to the kept memory samples together (40 steps). Each figure shows rows input / top example / top
counterfactual, each image beside its saliency map (positive attributions, blended heat map, plasma),
with the prediction and the memory weights in the titles: (4, 6) inches at 100 dpi per input, saved
as images/saliency/DATASET/MODALITY/MODEL/<test index>.png.

Baseline: --baseline=ones (default, the original's choice) is all ones in normalised space, which in
pixels is mean + std per channel: a light grey, not the "white image" the original README names.
white / black are the normalised images of pixel value 1 / 0.

--internal_batch_size (default 2, the original's) changes the result: captum then evaluates that many
interpolation steps per forward pass, and since the memory of that pass is the concatenation of the
scaled memories, each step attends over a memory that mixes several steps. 1 gives textbook IG
(attributions sum to F(input) - F(baseline)) at twice the number of forward passes.
"""
from __future__ import annotations

from absl import app, flags

from suite.cli import reject_extra_arguments, user_errors
from suite.commands import define_common_flags, heatmaps

FLAGS = flags.FLAGS
flags.DEFINE_string("path_model", None, "Checkpoint of a memory or encoder_memory model.")
flags.DEFINE_integer("max_images", 10, "Test inputs to explain (0 = the whole test set, as the original did).")
flags.DEFINE_enum("baseline", "ones", ["ones", "white", "black"],
                  "IG baseline: ones (normalised space, light grey; the original's), white or black.")
flags.DEFINE_integer("internal_batch_size", 2, "Interpolation steps per forward pass (2: the original's; "
                                               "1: textbook IG). Changes the result, see the module doc.")
flags.DEFINE_integer("n_steps", 40, "Integrated Gradients steps.")
define_common_flags(1, "Test inputs shown side by side in one figure (the original: 1).")
flags.mark_flag_as_required("path_model")


@user_errors
def main(argv: list[str]) -> None:
    reject_extra_arguments(argv)
    heatmaps(FLAGS.path_model, FLAGS.dataset, FLAGS.modality, FLAGS.dir_dataset, FLAGS.batch_size_test,
             FLAGS.max_images, FLAGS.baseline, FLAGS.n_steps, FLAGS.internal_batch_size, FLAGS.device)


if __name__ == "__main__":
    app.run(main)
