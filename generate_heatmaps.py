"""Heat maps of inputs, their top example and their top counterfactual (Integrated Gradients by default).

    python3 generate_heatmaps.py --path_model=models/SVHN/encoder_memory/mobilenet/1000/1.pt [--method=saliency]

For each test input: draw a memory and an auxiliary memory (seeded by the run), predict with the
whole memory, keep the positive-weight memory samples, classify them with the auxiliary memory and
pick the top explanation by example (same class as the prediction) and the top counterfactual
(another class). The attribution method (captum; --method, default integrated_gradients as the
original, 40 steps) then attributes the predicted logit to the input and to the kept memory samples
together. Each figure shows rows input / top example / top counterfactual, each image beside its
heat map (positive attributions, blended, plasma), with the prediction and the memory weights in
the titles and the method's name above each heat map: (4, 6) inches at 100 dpi per input, saved as
images/saliency/DATASET/MODALITY/MODEL/TRAIN_EXAMPLES/run<N>/<method>/<test index>.png (options that change
the figures and differ from their defaults are added to the method's folder name, e.g.
integrated_gradients_baseline=white; --out_dir for another folder). The folder's figures.json says which
checkpoint and options drew them: a folder of another checkpoint is refused unless --overwrite.

Baseline: --baseline=ones (default, the original's choice) is all ones in normalised space, which in
pixels is mean + std per channel: a light grey, not the "white image" the original README names.
white / black are the normalised images of pixel value 1 / 0.

--internal_batch_size (Integrated Gradients; default 2, the original's) changes the result: captum
then evaluates that many interpolation steps per forward pass, and since the memory of that pass is
the concatenation of the scaled memories, each step attends over a memory that mixes several steps.
1 gives textbook IG (attributions sum to F(input) - F(baseline)) at twice the forward passes.
"""
from __future__ import annotations

from absl import app, flags

from suite.attribution import DEFAULT_METHOD, get_method, list_methods
from suite.cli import reject_extra_arguments, user_errors
from suite.commands import HEATMAPS_MAX, HEATMAPS_PER_FIGURE, define_common_flags, heatmaps
from suite.restore import CheckpointOptions

FLAGS = flags.FLAGS
IG = get_method("integrated_gradients").options
flags.DEFINE_string("path_model", None, "Checkpoint of a memory or encoder_memory model.")
flags.DEFINE_integer("max_images", HEATMAPS_MAX, "Test inputs to explain (0 = the whole test set, as the original did).")
flags.DEFINE_enum("method", DEFAULT_METHOD, list_methods(), "Attribution method (captum).")
flags.DEFINE_enum("baseline", "ones", ["ones", "white", "black"],
                  "Attribution baseline: ones (normalised space, light grey; the original's), white or black.")
flags.DEFINE_integer("internal_batch_size", IG["internal_batch_size"],
                     "integrated_gradients: interpolation steps per forward pass (2: the original's; 1: textbook "
                     "IG). Changes the result, see the module doc.")
flags.DEFINE_integer("n_steps", IG["n_steps"], "integrated_gradients: interpolation steps.")
flags.DEFINE_integer("n_samples", get_method("gradient_shap").options["n_samples"],
                     "gradient_shap: random points per input.")
flags.DEFINE_string("out_dir", None, "Folder of the figures; default "
                    "images/saliency/DATASET/MODALITY/MODEL/TRAIN_EXAMPLES/run<N>/<method>, with "
                    "'_<option>=<value>' for each option that changes the figures and differs from its default.")
flags.DEFINE_bool("overwrite", False, "Replace the figures of another checkpoint or other options in the folder "
                  "(only the files its figures.json lists); without it such a folder is refused.")
define_common_flags(HEATMAPS_PER_FIGURE, "Test inputs shown side by side in one figure (the original: 1).")
flags.mark_flag_as_required("path_model")


def method_options() -> dict:
    """The chosen method's options that are flags; given explicitly for another method, they are refused."""
    accepted = get_method(FLAGS.method).options
    options = {name: FLAGS[name].value for name in accepted if name in FLAGS}
    for name in ("internal_batch_size", "n_steps", "n_samples"):
        if name not in accepted and FLAGS[name].present:
            options[name] = FLAGS[name].value  # refused with a one-line error by `heatmaps`
    return options


@user_errors
def main(argv: list[str]) -> None:
    reject_extra_arguments(argv)
    heatmaps(FLAGS.path_model, CheckpointOptions.from_flags(FLAGS), FLAGS.max_images, FLAGS.baseline, FLAGS.method,
             method_options(), out_dir=FLAGS.out_dir, overwrite=FLAGS.overwrite)


if __name__ == "__main__":
    app.run(main)
