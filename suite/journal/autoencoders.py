"""The autoencoders that score counterfactuals: one per class and one on all classes, per run.

The journal's recipe (architectures/autoencoder.py, MSE, Adam with lr 1e-3, 4 epochs, batch 32,
shuffled) on the journal's data: the whole training split of the run's split seed (every training
image but the validation hold-out, not only the run's training subset), normalised as the model
sees test images (no flips):
- `class_<c>.pt` learns the split's images labelled c; `full.pt` learns the whole split.
  (The journal's full autoencoder used this split; its class autoencoders used the wrong index
  space: raw training images with an index below the split size, whatever the run's seed,
  validation images included. Here both kinds see exactly the run's split.)
- each is evaluated by its mean squared error per pixel on the test images of its class (all test
  images for `full`), recorded in its file.

They are saved beside the run, `<cell folder>/autoencoders/run_<N>/`, one file per autoencoder,
written atomically when it is trained: an interrupted job resumes at the first missing file. Every
file records the split it was trained on (dataset, seed, size, a hash of the image indices) and the
training settings; loading checks the split against the run, so autoencoders never score another run's data.
Initialisation and batch order come from generators seeded by the run and the autoencoder's name.
"""
from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

import torch
from torch import Tensor, nn

from architectures.autoencoder import ConvAutoencoder
from ..run_files import load_torch_file, save_torch_file
from ..data import WHOLE_SPLIT, RunData, generator, training_indices, training_subset, derive_seed
from ..cli import CheckpointError, UserError, track

FORMAT = 1
FULL = "full"
FOLDER = "autoencoders"
ENCODE_BATCH = 500  # images per forward when encoding or scoring whole sets (memory use only)


@dataclass(frozen=True)
class AutoencoderTraining:
    epochs: int = 4
    batch_size: int = 32
    learning_rate: float = 1e-3

    def __post_init__(self) -> None:
        if self.epochs < 1 or self.batch_size < 1 or not self.learning_rate > 0:
            raise UserError(f"autoencoder training needs epochs >= 1, batch size >= 1 and a positive learning rate, "
                            f"got {self.text()}")

    def text(self) -> str:
        """`--epochs=4 --batch_size=32 --learning_rate=0.001`: the settings as the flags that give them."""
        return " ".join(f"--{key}={value}" for key, value in asdict(self).items())


def autoencoder_names(num_classes: int) -> list[str]:
    return [f"class_{c}" for c in range(num_classes)] + [FULL]


def autoencoder_folder(checkpoint: str | Path) -> Path:
    """`<cell>/autoencoders/run_<N>/` for the run checkpoint `<cell>/<N>.pt`."""
    checkpoint = Path(checkpoint)
    return checkpoint.parent / FOLDER / f"run_{checkpoint.stem}"


def split_identity(restored) -> dict:
    """What makes two runs' autoencoder data the same: dataset, seed, size, image indices, normalisation."""
    indices = training_indices(restored.settings.config, restored.seed, WHOLE_SPLIT)
    digest = hashlib.sha256(",".join(map(str, indices)).encode()).hexdigest()
    return {"dataset": restored.settings.dataset_name, "seed": restored.seed, "train_examples": len(indices),
            "num_classes": restored.settings.num_classes, "indices_sha256": digest,
            "normalization": restored.settings.config["normalization"]}


def normalised(data: RunData, images: Tensor) -> Tensor:
    """uint8 images -> the model's test-time input (normalised, no augmentation), in float32 NCHW."""
    return data.test_transform(images).contiguous()


def _class_positions(labels: Tensor, name: str) -> Tensor:
    if name == FULL:
        return torch.arange(len(labels), device=labels.device)
    return (labels == int(name.removeprefix("class_"))).nonzero().flatten()


def mean_squared_error(model: nn.Module, data: RunData, images: Tensor) -> float:
    """Mean squared error per pixel of `model` on uint8 `images` (normalised first)."""
    total, count = 0.0, 0
    with torch.no_grad():
        for start in range(0, len(images), ENCODE_BATCH):
            x = normalised(data, images[start:start + ENCODE_BATCH])
            total += float((model(x) - x).pow(2).sum())
            count += x.numel()
    return total / count if count else float("nan")


def train_autoencoder(data: RunData, images: Tensor, training: AutoencoderTraining, seed: int, name: str,
                      description: str = "autoencoder") -> tuple[ConvAutoencoder, list[float]]:
    """Train one autoencoder on uint8 `images` of the run; returns it (eval mode) and the mean loss per epoch."""
    device = data.device
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        torch.manual_seed(derive_seed(seed, f"autoencoder_init_{name}"))
        model = ConvAutoencoder(channels=images.shape[1]).to(device)
    order_generator = generator(seed, f"autoencoder_order_{name}", device)
    optimizer = torch.optim.Adam(model.parameters(), lr=training.learning_rate)
    criterion = nn.MSELoss()
    losses = []
    model.train()
    for epoch in track(range(training.epochs), description, total=training.epochs):
        order = torch.randperm(len(images), generator=order_generator, device=device)
        running, batches = 0.0, 0
        for start in range(0, len(images), training.batch_size):
            x = normalised(data, images[order[start:start + training.batch_size]])
            loss = criterion(model(x), x)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            running += float(loss.detach())
            batches += 1
        losses.append(running / batches)
    return model.eval(), losses


@dataclass
class TrainedAutoencoder:
    name: str
    path: Path
    trained_now: bool
    train_images: int
    test_images: int
    test_mse: float
    train_losses: list[float]


def train_run_autoencoders(restored, training: AutoencoderTraining = AutoencoderTraining(), overwrite: bool = False,
                           on_done: Callable[[TrainedAutoencoder], None] = lambda _: None) -> list[TrainedAutoencoder]:
    """The class autoencoders and the full one of a restored run, skipping those already saved with the
    same split and training settings (resume); a saved one with other ones is an error unless
    `overwrite`."""
    data, identity = restored.data, split_identity(restored)
    split = training_subset(restored.settings.config, restored.seed, data.device, WHOLE_SPLIT)
    folder = autoencoder_folder(restored.path)
    names = autoencoder_names(restored.settings.num_classes)
    for name in names[:-1]:
        if not len(_class_positions(split.labels, name)):
            raise UserError(f"run '{restored.path}' has no training image of class {name.removeprefix('class_')} "
                            "to train its autoencoder on")
    done = []
    for name in names:
        path = folder / f"{name}.pt"
        if path.exists() and not overwrite:
            saved = load_torch_file(path, map_location="cpu")
            if saved.get("split") != identity or saved.get("training") != asdict(training):
                before = saved.get("training")
                readable = isinstance(before, dict) and set(before) == set(asdict(training))
                what = (["another split"] if saved.get("split") != identity else []) + (
                    [f"other training settings ({AutoencoderTraining(**before).text() if readable else 'unknown'}, "
                     f"not {training.text()})"] if before != asdict(training) else [])
                raise UserError(f"'{path}' was trained with {' and '.join(what)}; pass --overwrite to retrain")
            item = TrainedAutoencoder(name, path, False, saved["train_images"], saved["test_images"],
                                      saved["test_mse"], list(saved["train_losses"]))
        else:
            train_images = split.images[_class_positions(split.labels, name)]
            test_images = data.test.images[_class_positions(data.test.labels, name)]
            model, losses = train_autoencoder(data, train_images, training, restored.seed, name, f"autoencoder {name}")
            test_mse = mean_squared_error(model, data, test_images)
            save_torch_file({"format": FORMAT, "name": name, "state_dict": {k: v.cpu() for k, v in
                                                                               model.state_dict().items()},
                               "channels": model.channels, "split": identity, "training": asdict(training),
                               "train_images": len(train_images), "test_images": len(test_images),
                               "test_mse": test_mse, "train_losses": losses}, path)
            item = TrainedAutoencoder(name, path, True, len(train_images), len(test_images), test_mse, losses)
        done.append(item)
        on_done(item)
    return done


@dataclass
class RunAutoencoders:
    """The autoencoders of one run, in eval mode on the run's device, gradients off."""

    classes: list[ConvAutoencoder]  # index c: trained on class c
    full: ConvAutoencoder
    folder: Path


def load_run_autoencoders(restored) -> RunAutoencoders:
    """Load and check the autoencoders saved beside a run; one-line errors when missing or foreign."""
    folder = autoencoder_folder(restored.path)
    identity = split_identity(restored)
    models = {}
    for name in autoencoder_names(restored.settings.num_classes):
        path = folder / f"{name}.pt"
        if not path.exists():
            raise UserError(f"autoencoder '{path}' not found; train the run's autoencoders first: "
                            f"python3 train_autoencoders.py --path_models={restored.path.parent}")
        saved = load_torch_file(path, map_location=restored.device)
        if saved.get("format") != FORMAT or "state_dict" not in saved:
            raise CheckpointError(f"'{path}' is not an autoencoder file of this suite")
        if saved.get("split") != identity:
            theirs = saved.get("split") or {}
            raise UserError(f"autoencoder '{path}' was trained on another split ({theirs.get('dataset')}, seed "
                            f"{theirs.get('seed')}, {theirs.get('train_examples')} images) than run "
                            f"'{restored.path}' ({identity['dataset']}, seed {identity['seed']}, "
                            f"{identity['train_examples']} images); retrain with train_autoencoders.py --overwrite")
        model = ConvAutoencoder(channels=saved["channels"])
        model.load_state_dict(saved["state_dict"])
        models[name] = model.to(restored.device).eval().requires_grad_(False)
    return RunAutoencoders([models[f"class_{c}"] for c in range(restored.settings.num_classes)], models[FULL], folder)
