"""Extending the suite: an encoder, a dataset and an attribution method are each one registration,
and the whole pipeline (training, checkpoints, evaluation, heat maps) then takes them.

These are the worked examples of docs/extending.md, run for real.
"""
from __future__ import annotations

import inspect
import json
import shutil

import pytest
import torch
from conftest import REPO, run_script
from torch import Tensor, nn

import architectures
from architectures import MemoryWrapNet, base as model_registry
from suite import attribution, commands
from suite.config import TrainSettings, validate
from suite.datasets import DatasetSpec, list_datasets, registry as dataset_registry
from suite.datasets import TensorImages
from suite.evaluation import evaluate
from suite.restore import CheckpointOptions, restore_run
from suite.training import train_run


# ---- what a user writes (each block would be one new file) -------------------------------------------
class TinyConvNet(MemoryWrapNet):
    """A new encoder: layers, `forward_encoder`, `build_head()` last."""

    def __init__(self, modality: str, num_classes: int, width: int = 8):
        super().__init__(modality, num_classes)
        self.conv = nn.Conv2d(3, width, 3, padding=1)
        self.feature_dim = 3 * width
        self.build_head()

    def forward_encoder(self, x: Tensor) -> Tensor:
        """Average over three horizontal bands: where a stripe is survives the pooling."""
        return nn.functional.adaptive_avg_pool2d(torch.relu(self.conv(x)), (3, 1)).flatten(1)


def tiny_conv_net(modality: str, num_classes: int, width: int = 8) -> MemoryWrapNet:
    return TinyConvNet(modality, num_classes, width)


def open_stripes(root, train: bool, download: bool) -> TensorImages:
    """A new dataset: three classes of 16x16 images, a bright stripe whose row depends on the class."""
    generator = torch.Generator().manual_seed(0 if train else 1)
    count = 90 if train else 30
    labels = torch.arange(count) % 3
    images = torch.randint(0, 40, (count, 3, 16, 16), generator=generator, dtype=torch.uint8)
    for i, label in enumerate(labels.tolist()):
        images[i, :, 5 * label: 5 * label + 3, :] = 250
    return TensorImages(images, labels)


STRIPES = DatasetSpec("STRIPES", ("top", "middle", "bottom"), (0.3, 0.3, 0.3), (0.3, 0.3, 0.3), validation_size=10,
                      flip=True, drop_last=True, shuffle_test=False, autoaugment_policy="CIFAR10", open=open_stripes,
                      default_section={"num_epochs": 4, "opt_milestones": [], "mem_examples": 12,
                                       "lr_schedule": "multistep"})


def gradient_times_input(forward, inputs, baselines, target, *, scale: float = 1.0):
    """A new attribution method: captum's InputXGradient, scaled."""
    from captum.attr import InputXGradient

    return tuple(scale * a for a in InputXGradient(forward).attribute(inputs, target=int(target)))


# ---- registering them ----------------------------------------------------------------------------------
@pytest.fixture
def extended(monkeypatch):
    """The three registrations (what the decorators / register_dataset do in a new file), undone after."""
    monkeypatch.setitem(model_registry._MODELS, "tiny_conv", tiny_conv_net)
    monkeypatch.setitem(model_registry._DISPLAY_NAMES, "tiny_conv", "TinyConv")
    monkeypatch.setitem(dataset_registry._REGISTRY, "STRIPES", STRIPES)
    monkeypatch.setitem(attribution._METHODS, "gradient_x_input",
                        attribution.AttributionMethod("gradient_x_input", "Gradient x input", gradient_times_input))


def test_a_new_encoder_dataset_and_attribution_go_through_the_whole_pipeline(extended, tmp_path):
    assert "tiny_conv" in architectures.list_models() and "STRIPES" in list_datasets()
    raw = {"model": "tiny_conv", "model_options": {"width": 12}, "train_examples": 80, "runs": 1,
           "batch_size_train": 16, "batch_size_test": 10, "dataset_name": "STRIPES", "device": "cpu",
           "models_dir": str(tmp_path / "models"), "eval_passes": 2,
           "optimizer": {"name": "sgd", "learning_rate": 0.05, "momentum": 0.9}}
    settings = TrainSettings(validate(raw, list_datasets()), "encoder_memory")  # no STRIPES section: defaults
    assert settings.num_classes == 3 and settings.num_epochs == 4 and settings.mem_examples == 12
    record = train_run(settings, 1).record
    assert record["train_subset_size"] == 80 and record["accuracy"] > 60.0  # 3 classes: chance is 33 %

    restored = restore_run(settings.cell_folder / "1.pt", CheckpointOptions(device="cpu"))
    assert isinstance(restored.model, TinyConvNet) and restored.model.conv.out_channels == 12
    assert evaluate(restored.model, restored.data, 2).pass_accuracies == tuple(record["pass_accuracies"])

    figures = commands.heatmaps(str(settings.cell_folder / "1.pt"), CheckpointOptions(batch_size_test=1, device="cpu"),
                                max_images=1, method="gradient_x_input", method_options={"scale": 2.0},
                                images_dir=tmp_path / "images", out=lambda _: None)
    assert [p.name for p in figures] == ["0.png"]
    assert figures[0].parent == (tmp_path / "images" / "saliency" / "STRIPES" / "encoder_memory" / "tiny_conv" / "80"
                                 / "run1" / "gradient_x_input_scale=2.0")  # the new method's own options name it
    with pytest.raises(Exception, match="--n_steps does not apply to --method=gradient_x_input"):
        commands.heatmaps(str(settings.cell_folder / "1.pt"), CheckpointOptions(device="cpu"),
                          method="gradient_x_input", method_options={"n_steps": 3}, images_dir=tmp_path)


# ---- the same three as files dropped into a copy of the repository --------------------------------------
ENCODER_FILE = ("from __future__ import annotations\n\nimport torch\nfrom torch import Tensor, nn\n\n"
                "from .base import MemoryWrapNet, register_model\n\n\n"
                + inspect.getsource(TinyConvNet) + "\n\n@register_model(\"tiny_conv\", display_name=\"TinyConv\")\n"
                + inspect.getsource(tiny_conv_net))
DATASET_FILE = ("from __future__ import annotations\n\nimport torch\n\n"
                "from .registry import DatasetSpec, TensorImages, register_dataset\n\n\n"
                + inspect.getsource(open_stripes)
                + "\n\nregister_dataset(DatasetSpec(\"STRIPES\", (\"top\", \"middle\", \"bottom\"), (0.3, 0.3, 0.3), "
                  "(0.3, 0.3, 0.3), validation_size=10, flip=True, drop_last=True, shuffle_test=False, "
                  "autoaugment_policy=\"CIFAR10\", open=open_stripes, default_section={\"num_epochs\": 4, "
                  "\"opt_milestones\": [], \"mem_examples\": 12, \"lr_schedule\": \"multistep\"}))\n")
ATTRIBUTION_FILE = ("from __future__ import annotations\n\nfrom . import register_attribution\n\n\n"
                    "@register_attribution(\"gradient_x_input\", title=\"Gradient x input\")\n"
                    + inspect.getsource(gradient_times_input))


@pytest.mark.slow
def test_each_extension_is_one_new_file(tmp_path):
    """Three files added to a copy of the repository, nothing else edited: the scripts train the new
    encoder on the new dataset and draw heat maps with the new method."""
    repo = tmp_path / "repo"
    for package in ("architectures", "suite"):  # the code, not the run outputs or caches beside it
        shutil.copytree(REPO / package, repo / package, ignore=shutil.ignore_patterns("__pycache__"))
    for script in REPO.glob("*.py"):
        shutil.copy(script, repo / script.name)
    (repo / "architectures" / "tiny_conv.py").write_text(ENCODER_FILE)
    (repo / "suite" / "datasets" / "stripes.py").write_text(DATASET_FILE)
    (repo / "suite" / "attribution" / "gradient_x_input.py").write_text(ATTRIBUTION_FILE)
    config = {"model": "tiny_conv", "model_options": {"width": 12}, "train_examples": 80, "runs": 1,
              "batch_size_train": 16, "batch_size_test": 10, "dataset_name": "STRIPES", "device": "cpu",
              "models_dir": str(tmp_path / "models"), "eval_passes": 2,
              "optimizer": {"name": "sgd", "learning_rate": 0.05, "momentum": 0.9}}
    (tmp_path / "stripes.yaml").write_text(json.dumps(config))  # JSON is YAML
    environment = {"PYTHONPATH": str(repo)}

    def script(name: str, *args: str):
        result = run_script(name, *args, cwd=tmp_path, env=environment, repo=repo)
        assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
        return result

    trained = script("train.py", "--modality=encoder_memory", f"--config={tmp_path / 'stripes.yaml'}")
    accuracy = float(trained.stdout.split("| Accuracy ")[1].split(" ")[0])
    assert accuracy > 60.0  # 3 classes: chance is 33 %
    checkpoint = tmp_path / "models" / "STRIPES" / "encoder_memory" / "tiny_conv" / "80" / "1.pt"
    script("generate_heatmaps.py", f"--path_model={checkpoint}", "--method=gradient_x_input", "--max_images=1",
           "--device=cpu")
    assert (tmp_path / "images" / "saliency" / "STRIPES" / "encoder_memory" / "tiny_conv" / "80" / "run1"
            / "gradient_x_input" / "0.png").stat().st_size
