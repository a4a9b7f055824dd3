"""The two figure layouts of the explanation scripts (docs/protocol.md, figures), drawn off-screen (Agg).

Figures are built with matplotlib's object API (no pyplot state, no display needed) and returned
as PNG bytes by `figure_png`. Images arrive de-normalised and clipped to [0, 1]; attributions arrive as computed
(normalised space), as in the original.
"""
from __future__ import annotations

import io
import textwrap
import warnings
from dataclasses import dataclass

import numpy as np
import torch
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from mpl_toolkits.axes_grid1 import make_axes_locatable
from torch import Tensor


MODALITY_COLORS = {"std": "#1f77b4", "memory": "#7f7f7f", "encoder_memory": "#d62728"}  # every report figure
MEMORY_FIGURE_DPI = 300  # memory images: (2 * inputs, 4) inches at 300 dpi, as the original
SALIENCY_FIGURE_DPI = 100  # heatmaps: (4, 6) inches per input at matplotlib's default 100 dpi
MEMORY_GRID_COLUMNS = 4  # make_grid(nrow=4): memory samples per grid row


def to_uint8_image(image: Tensor) -> np.ndarray:
    """[C, H, W] in [0, 1] (clipped again here) -> uint8 [H, W, C]."""
    return (image.detach().float().clamp(0.0, 1.0) * 255).round().to(torch.uint8).permute(1, 2, 0).cpu().numpy()


def _new_figure(size: tuple[float, float], dpi: int) -> Figure:
    figure = Figure(figsize=size, dpi=dpi)
    FigureCanvasAgg(figure)
    return figure


def figure_png(figure: Figure) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=figure.dpi)
    return buffer.getvalue()


def wrapped(text: str, width: Figure | float, fontsize: float) -> str:
    """`text` broken into lines that fit `width` (a figure's, or inches): a title never runs past the edges
    (an average character of matplotlib's default font is at most about 0.65 em wide in these titles; 10 % is kept
    free). Existing line breaks are kept; a comma is a place to break."""
    inches = width.get_figwidth() if isinstance(width, Figure) else width
    characters = max(12, int(inches * 72 * 0.9 / (0.65 * fontsize)))
    return "\n".join(textwrap.fill(line.replace(",", ", "), width=characters).replace(", ", ",")
                     for line in text.splitlines())


def _tight_layout(figure: Figure) -> None:
    with warnings.catch_warnings():  # colorbar axes made by axes_grid1 trigger a harmless notice
        warnings.simplefilter("ignore", UserWarning)
        figure.tight_layout()


# ---- memory images --------------------------------------------------------------------------------
def memory_grid(images: Tensor) -> Tensor:
    """The positive-weight memories [k, C, H, W] as one image: 4 per row, 2-pixel black padding.
    A single sample is shown alone, without padding (as torchvision's make_grid does)."""
    from torchvision.utils import make_grid

    if images.shape[0] == 1:
        return images[0]
    return make_grid(images, nrow=MEMORY_GRID_COLUMNS, padding=2, pad_value=0.0)


def memory_figure(inputs: Tensor, titles: list[str], used_memories: list[Tensor], columns: int) -> Figure:
    """Top row: each input titled with its prediction; bottom row: its positive-weight memories.

    inputs [n, C, H, W] and each used_memories[i] [k_i, C, H, W] are in [0, 1], memories in
    descending weight order. The figure has `columns` columns (n <= columns); unused ones stay blank
    so every figure of a run has the same size.
    """
    if not 0 < len(inputs) <= columns or len(titles) != len(inputs) or len(used_memories) != len(inputs):
        raise ValueError("memory_figure: inputs, titles and memories must agree and fit in the columns")
    figure = _new_figure((2 * columns, 4), MEMORY_FIGURE_DPI)
    axes = figure.subplots(2, columns, squeeze=False)
    for column in range(columns):
        top, bottom = axes[0, column], axes[1, column]
        top.axis("off")
        bottom.axis("off")
        if column >= len(inputs):
            continue
        top.imshow(to_uint8_image(inputs[column]), interpolation="nearest", aspect="equal")
        top.set_title(titles[column])
        if len(used_memories[column]):
            bottom.imshow(to_uint8_image(memory_grid(used_memories[column])), interpolation="nearest", aspect="equal")
        bottom.set_title("Used Samples")
    _tight_layout(figure)
    return figure


# ---- saliency maps --------------------------------------------------------------------------------
@dataclass(frozen=True)
class SaliencyRow:
    image: Tensor  # [C, H, W] in [0, 1]
    attribution: Tensor  # [C, H, W], as computed
    title: str


def _plain_axis(axis) -> None:
    axis.xaxis.set_ticks_position("none")
    axis.yaxis.set_ticks_position("none")
    axis.set_xticklabels([])
    axis.set_yticklabels([])
    axis.grid(visible=False)
    axis.set_box_aspect(1)


def _draw_image(figure: Figure, axis, image: Tensor, title: str) -> None:
    """The image itself; an empty colour-bar slot keeps it aligned with its heat map."""
    axis.imshow(to_uint8_image(image))
    _plain_axis(axis)
    axis.set_title(title)
    make_axes_locatable(axis).append_axes("bottom", size="5%", pad=0.1).axis("off")


def _draw_heat_map(figure: Figure, axis, image: Tensor, attribution: Tensor, title: str) -> None:
    """captum's blended heat map of the positive attributions (channel sum, 20% outlier clip, plasma)."""
    from captum.attr import visualization

    attr = attribution.detach().float().permute(1, 2, 0).cpu().numpy()
    picture = image.detach().float().clamp(0, 1).permute(1, 2, 0).cpu().numpy()
    _plain_axis(axis)
    if np.max(attr.sum(axis=2)) <= 0:  # nothing positive: captum cannot scale by a zero threshold
        axis.imshow(np.mean(picture * 255, axis=2).astype(np.uint8), cmap="gray")
        heat = axis.imshow(np.zeros(attr.shape[:2]), cmap="plasma", vmin=0, vmax=1, alpha=0.4)
        figure.colorbar(heat, orientation="horizontal",
                        cax=make_axes_locatable(axis).append_axes("bottom", size="5%", pad=0.1))
        axis.set_title(f"{title} (none positive)")
        return
    with warnings.catch_warnings():  # "normalize by value approximately 0" for tiny attributions
        warnings.simplefilter("ignore", UserWarning)
        visualization.visualize_image_attr(attr, picture, method="blended_heat_map", sign="positive",
                                           plt_fig_axis=(figure, axis), outlier_perc=20, cmap="plasma",
                                           alpha_overlay=0.4, show_colorbar=True, title=title,
                                           use_pyplot=False)


def saliency_figure(blocks: list[list[SaliencyRow]], title: str) -> Figure:
    """One block of two columns per input: rows input / top example / top counterfactual (those that
    exist), each image beside its heat map titled `title`, the name of the attribution method that drew
    it (the original titled every heat map "Saliency", whatever drew it). (4, 6) inches per block at 100 dpi."""
    if not blocks or any(not block for block in blocks):
        raise ValueError("saliency_figure needs at least one row per input")
    rows = max(len(block) for block in blocks)
    figure = _new_figure((4 * len(blocks), 6), SALIENCY_FIGURE_DPI)
    axes = figure.subplots(rows, 2 * len(blocks), squeeze=False)
    for b, block in enumerate(blocks):
        for r in range(rows):
            left, right = axes[r, 2 * b], axes[r, 2 * b + 1]
            if r >= len(block):
                left.axis("off")
                right.axis("off")
                continue
            _draw_image(figure, left, block[r].image, block[r].title)
            _draw_heat_map(figure, right, block[r].image, block[r].attribution, title)
    _tight_layout(figure)
    return figure
