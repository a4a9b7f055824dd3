"""The counterfactual figure: a few inputs, each with Memory Wrap's counterfactual and the searched one.

One row per input: the input, Memory Wrap's counterfactual (a training image from the memory), the
prototype-guided counterfactual, and where the search changed the input (|x' - x| summed over
channels, in normalised units). Titles give the classes, Memory Wrap's weight and IM1 / IM2.
"""
from __future__ import annotations

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from ..data import undo_normalization
from ..figures import to_uint8_image
from .counterfactual_quality import FigureItem

DPI = 100


def _scores(scores: dict) -> str:
    return f"IM1={scores['im1']:.2f} IM2={scores['im2']:.3f}"


def counterfactual_figure(items: list[FigureItem], classes: tuple[str, ...], spec, normalization: str) -> Figure:
    if not items:
        raise ValueError("counterfactual_figure needs at least one input")
    figure = Figure(figsize=(10, 2.9 * len(items)), dpi=DPI)
    FigureCanvasAgg(figure)  # off-screen, no pyplot state
    axes = figure.subplots(len(items), 4, squeeze=False)

    def pixels(image):
        return to_uint8_image(undo_normalization(image.unsqueeze(0), spec, normalization)[0])

    for row, item in zip(axes, items):
        change = (item.prototype - item.image).abs().sum(dim=0)
        panels = [
            (pixels(item.image), f"Input #{item.test_index}\npredicted {classes[item.prediction]}"
                                 f" (label {classes[item.label]})"),
            (pixels(item.memory_wrap), f"Memory Wrap: {classes[item.memory_wrap_class]}\n"
                                       f"w={item.memory_wrap_weight:.2f} {_scores(item.memory_wrap_scores)}"),
            (pixels(item.prototype), f"Prototype search: {classes[item.prototype_class]}\n"
                                     f"{_scores(item.prototype_scores)}"),
        ]
        for axis, (image, title) in zip(row, panels):
            axis.imshow(image, interpolation="nearest")
            axis.set_title(title, fontsize=8)
            axis.axis("off")
        heat = row[3].imshow(change.numpy(), cmap="magma", interpolation="nearest")
        row[3].set_title(f"|search - input|\nL2={item.prototype_scores['l2']:.1f}", fontsize=8)
        row[3].axis("off")
        figure.colorbar(heat, ax=row[3], fraction=0.046, pad=0.04)
    figure.tight_layout()
    return figure
