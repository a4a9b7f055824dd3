"""One run's data, resident on the training device: the training subset and the test set as uint8
tensors, batched transforms, batches and memory draws made by seeded generators on that device.

Why: a training step used to run per-image Python on the CPU (128 inputs and a 100-image memory
draw through torchvision transforms, 11 ms on a fast machine, up to half of a GPU step). Here a
batch is a gather from a resident tensor, the flip is one `torch.where`, normalisation one fused
expression, and a memory draw is a `randperm` and a gather: no per-image Python in the step.

The distributions are the original's: flips independent with p = 0.5 where the dataset flips
(CIFAR10, CINIC10), a memory is a uniform sample without replacement of `mem_examples` images of
the run's subset with the training transform (other draws: config key `memory_sampling`), training batches are a fresh permutation per epoch
(`drop_last` as the dataset's, or its config section's), test batches in order (shuffled for CINIC10, as the original).
Every random stream has its own generator derived from the run's seed (`derive_seed`), so draws
repeat, resume exactly and do not depend on what else used the global RNG. AutoAugment (ViT recipe)
runs per image through torchvision, which draws from the global RNG: it is seeded from the stream's
own generator for each batch (see `BatchTransform`).
"""
from __future__ import annotations

import hashlib
import math
import os
import random
import sys
from dataclasses import dataclass, field
from typing import Iterator

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset, random_split

from .datasets import DatasetSpec, gather_images, get_spec, open_images
from .sampling import DEFAULT as DEFAULT_SAMPLING, get_sampling
from .cli import DatasetError


@dataclass
class ResidentImages:
    """uint8 images [N, 3, H, W] and labels [N] on one device; `indices` are the dataset's own."""

    images: Tensor
    labels: Tensor
    indices: list[int]

    def __len__(self) -> int:
        return len(self.indices)


@dataclass
class BatchTransform:
    """uint8 [B, 3, H, W] -> normalised float: optional flips (one random number per image from the
    given generator), optional AutoAugment per image, then (x / 255 - mean) / std, as torchvision's
    ConvertImageDtype + Normalize compute it."""

    mean: Tensor  # [1, 3, 1, 1] on the device
    std: Tensor
    flip: bool = False
    autoaugment: torch.nn.Module | None = None
    channels_last: bool = False

    def __call__(self, images: Tensor, generator: torch.Generator | None = None) -> Tensor:
        if self.flip:
            flipped = torch.rand(images.shape[0], generator=generator, device=images.device) < 0.5
            images = torch.where(flipped.view(-1, 1, 1, 1), images.flip(-1), images)
        if self.autoaugment is not None:
            images = self._autoaugment(images, generator)
        pixels = images.float().div_(255.0).sub_(self.mean).div_(self.std)
        return pixels.contiguous(memory_format=torch.channels_last) if self.channels_last else pixels

    def _autoaugment(self, images: Tensor, generator: torch.Generator | None) -> Tensor:
        """Per image (torchvision picks one policy per call). torchvision draws from the global RNG; it
        is seeded here from the caller's generator, so AutoAugment belongs to that stream too (an
        evaluation's memories then repeat whenever the run is evaluated). Reading the seed back is a
        host sync, acceptable on this per-image path only."""
        if generator is None:
            return torch.stack([self.autoaugment(image) for image in images])
        seed = int(torch.randint(0, 2**62, (), generator=generator, device=generator.device))
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            return torch.stack([self.autoaugment(image) for image in images])


def batch_transform(spec: DatasetSpec, device: torch.device, train: bool, normalization: str = "paper",
                    autoaugment: bool = False, channels_last: bool = False) -> BatchTransform:
    """The training transform (the dataset's flip, AutoAugment on request) or the test transform."""
    mean, std = (torch.tensor(v, dtype=torch.float32, device=device).view(1, -1, 1, 1)
                 for v in spec.normalization(normalization))
    augment = None
    if train and autoaugment:
        from torchvision import transforms

        augment = transforms.AutoAugment(transforms.AutoAugmentPolicy[spec.autoaugment_policy])
    return BatchTransform(mean, std, flip=train and spec.flip, autoaugment=augment, channels_last=channels_last)


def undo_normalization(images: Tensor, spec: DatasetSpec, normalization: str = "paper") -> Tensor:
    """Back to [0, 1] pixel space (clipped), for figures."""
    mean, std = (torch.tensor(v, dtype=images.dtype, device=images.device).view(-1, 1, 1)
                 for v in spec.normalization(normalization))
    return (images * std + mean).clamp(0.0, 1.0)


class MemorySampler:
    """A fresh draw of `size` images of `pool` (without replacement) at every call, by the registered
    `sampling` strategy (suite/sampling/; uniform: the original's), with the training transform:
    `draw()` -> (images [size, 3, H, W] normalised, labels [size])."""

    def __init__(self, pool: ResidentImages, size: int, generator: torch.Generator, transform: BatchTransform,
                 sampling: str = DEFAULT_SAMPLING):
        if size > len(pool):
            raise DatasetError(f"mem_examples ({size}) is larger than the training subset ({len(pool)} images)")
        self.pool, self.size, self.generator, self.transform = pool, size, generator, transform
        self.strategy = get_sampling(sampling)(pool.labels, size)

    def draw_indices(self) -> Tensor:
        """Positions in the pool of one draw."""
        return self.strategy.draw(self.generator)

    def draw(self) -> tuple[Tensor, Tensor]:
        chosen = self.draw_indices()
        return self.transform(self.pool.images[chosen], self.generator), self.pool.labels[chosen]

    def state_dict(self) -> dict:
        return {"generator": self.generator.get_state()}

    def load_state_dict(self, state: dict) -> None:
        self.generator.set_state(state["generator"].cpu())  # a state is a CPU ByteTensor, whatever the device


def generator(seed: int, stream: str, device: torch.device) -> torch.Generator:
    """A generator of the named stream of run `seed`, living on `device` (CPU and CUDA streams differ)."""
    if device.type == "cpu":
        return seeded_generator(seed, stream)
    return torch.Generator(device=device).manual_seed(derive_seed(seed, stream))


@dataclass
class RunData:
    """Everything one run reads: its training subset and the test set on `device`, their transforms,
    batch sizes and the training-time random streams (whose states the run state saves)."""

    spec: DatasetSpec
    device: torch.device
    seed: int
    train: ResidentImages
    test: ResidentImages
    train_transform: BatchTransform
    test_transform: BatchTransform
    batch_size_train: int
    batch_size_test: int
    drop_last: bool  # of the training batches (see `drop_last`)
    mem_examples: int
    generators: dict[str, torch.Generator] = field(default_factory=dict)
    memory_sampling: str = DEFAULT_SAMPLING  # how memories are drawn (config key memory_sampling)

    # ---- training ---------------------------------------------------------------------------
    @property
    def train_steps(self) -> int:
        """Batches per epoch: the loader's `len`."""
        return steps_per_epoch(len(self.train), self.batch_size_train, self.drop_last)

    def train_batches(self) -> Iterator[tuple[Tensor, Tensor]]:
        """One epoch: a fresh permutation of the subset, cut into batches; flips per image."""
        order = torch.randperm(len(self.train), generator=self.generators["train_order"], device=self.device)
        size = self.batch_size_train
        for step in range(self.train_steps):
            chosen = order[step * size:(step + 1) * size]
            yield (self.train_transform(self.train.images[chosen], self.generators["train_flips"]),
                   self.train.labels[chosen])

    def training_memory(self) -> MemorySampler:
        """The sampler of training-time memories (its generator is saved with the run state)."""
        return MemorySampler(self.train, self.mem_examples, self.generators["train_memory"], self.train_transform,
                             self.memory_sampling)

    # ---- evaluation -------------------------------------------------------------------------
    def memory_sampler(self, stream: str, pool: ResidentImages | None = None, size: int | None = None) -> MemorySampler:
        """An independent sampler seeded by the run and `stream` alone (evaluation, explanations):
        the same checkpoint gets the same draws whenever it is evaluated."""
        return MemorySampler(pool if pool is not None else self.train, size or self.mem_examples,
                             generator(self.seed, stream, self.device), self.train_transform, self.memory_sampling)

    def test_index_batches(self, order: torch.Generator | None = None) -> Iterator[Tensor]:
        """Positions in the test set of each test batch: in order, or a permutation drawn from
        `order` for datasets whose original test loader shuffled (CINIC10)."""
        n = len(self.test)
        if self.spec.shuffle_test:
            if order is None:
                raise ValueError(f"{self.spec.name}'s test batches are shuffled: pass a generator")
            positions = torch.randperm(n, generator=order, device=self.device)
        else:
            positions = torch.arange(n, device=self.device)
        for start in range(0, n, self.batch_size_test):
            yield positions[start:start + self.batch_size_test]

    def test_inputs(self, positions: Tensor) -> Tensor:
        return self.test_transform(self.test.images[positions])

    @property
    def test_batches_count(self) -> int:
        return math.ceil(len(self.test) / self.batch_size_test)

    # ---- run state --------------------------------------------------------------------------
    def state_dict(self) -> dict:
        return {name: gen.get_state() for name, gen in self.generators.items()}

    def load_state_dict(self, state: dict) -> None:
        for name, gen in self.generators.items():
            gen.set_state(state[name].cpu())  # resume files load with map_location=device


TRAINING_STREAMS = ("train_order", "train_flips", "train_memory")


def resident(raw: Dataset, indices: list[int] | range, device: torch.device) -> ResidentImages:
    """The images `indices` of an opened dataset, as uint8 tensors on `device`."""
    images, labels = gather_images(raw, indices)
    return ResidentImages(images.to(device), labels.to(device), list(indices))


def validation_size(config: dict) -> int:
    spec = get_spec(config["dataset_name"])
    size = config[spec.name].get("validation_size")
    return spec.validation_size if size is None else size


def drop_last(config: dict) -> bool:
    """Whether an epoch drops its last, short training batch: the config's dataset section, else the
    dataset's own (the conference loaders: true, CINIC10 false; the journal's CINIC10 loaders: true)."""
    spec = get_spec(config["dataset_name"])
    chosen = config[spec.name].get("drop_last")
    return spec.drop_last if chosen is None else chosen


WHOLE_SPLIT = sys.maxsize  # as train_examples: every training image but the validation hold-out


def training_indices(config: dict, seed: int, train_examples: int | None = None) -> list[int]:
    """Dataset indices of the training images of split seed `seed`: `train_examples` of them (the
    config's by default; WHOLE_SPLIT for the whole training split, as the original's explanation
    accuracy and the journal's autoencoders used)."""
    train_raw = open_images(config["dataset_name"], config["dataset_dir"], True, config["download"])
    size = config["train_examples"] if train_examples is None else train_examples
    return split_indices(len(train_raw), size, validation_size(config), seed)[0]


def training_subset(config: dict, seed: int, device: torch.device | str = "cpu",
                    train_examples: int | None = None) -> ResidentImages:
    """The images of `training_indices`, resident on `device`."""
    train_raw = open_images(config["dataset_name"], config["dataset_dir"], True, config["download"])
    return resident(train_raw, training_indices(config, seed, train_examples), torch.device(device))


def build_run_data(config: dict, seed: int, device: torch.device | str = "cpu") -> RunData:
    """Split, resident images, transforms and generators of run `seed`, from a validated config."""
    device = torch.device(device)
    spec = get_spec(config["dataset_name"])
    section = config[spec.name]
    train = training_subset(config, seed, device)
    test_raw = open_images(spec.name, config["dataset_dir"], False, config["download"])
    test = resident(test_raw, range(len(test_raw)), device)
    channels_last = config.get("channels_last", False)
    return RunData(
        spec=spec, device=device, seed=seed, train=train, test=test,
        train_transform=batch_transform(spec, device, True, config["normalization"], config["autoaugment"],
                                        channels_last),
        test_transform=batch_transform(spec, device, False, config["normalization"], channels_last=channels_last),
        batch_size_train=min(config["batch_size_train"], len(train)), batch_size_test=config["batch_size_test"],
        drop_last=drop_last(config), mem_examples=section["mem_examples"],
        generators={stream: generator(seed, stream, device) for stream in TRAINING_STREAMS},
        memory_sampling=config.get("memory_sampling", DEFAULT_SAMPLING))


# ---- the original's split ----------------------------------------------------------------------------
def split_indices(n: int, train_examples: int, validation_size: int, seed: int) -> tuple[list[int], list[int]]:
    """(train, validation) indices exactly as the original `split_dataset`: a first split with a fresh
    generator seeded by `seed` holds out the validation images, a second one (same seed, fresh
    generator) keeps `train_examples` of the rest. Verified against tests/data/reference_splits.json."""
    if validation_size >= n:
        raise DatasetError(f"the dataset has {n} images, not more than its validation split of {validation_size}")
    rest, validation = random_split(range(n), [n - validation_size, validation_size],
                                    generator=torch.Generator().manual_seed(seed))
    kept = min(len(rest), train_examples)
    train, _ = random_split(rest, [kept, len(rest) - kept], generator=torch.Generator().manual_seed(seed))
    return [rest.indices[i] for i in train.indices], list(validation.indices)


def steps_per_epoch(n: int, batch_size: int, drop_last: bool) -> int:
    """Training batches per epoch of `n` images, as the original loader's `len`: the training loop and
    the device-hour estimates (suite/estimate.py) both use this, so they cannot count differently."""
    return n // batch_size if drop_last else math.ceil(n / batch_size)


# ---- seeds and random-number state -------------------------------------------------------------------
def set_seed(seed: int) -> None:
    """The original `aux.set_seed`: cudnn deterministic, every global RNG seeded with `seed`."""
    torch.backends.cudnn.deterministic = True
    torch.backends.cudnn.benchmark = False
    torch.manual_seed(seed)
    np.random.seed(seed % 2**32)
    torch.cuda.manual_seed(seed)
    random.seed(seed)
    os.environ["CUBLAS_WORKSPACE_CONFIG"] = ":4096:8"


def derive_seed(seed: int, stream: str) -> int:
    """An independent 63-bit seed for a named random stream of a run (memory draws, shuffling...)."""
    digest = hashlib.sha256(f"{seed}:{stream}".encode()).digest()
    return int.from_bytes(digest[:8], "little") >> 1


def seeded_generator(seed: int, stream: str) -> torch.Generator:
    return torch.Generator().manual_seed(derive_seed(seed, stream))


def global_rng_state() -> dict:
    """Every global RNG state, in types that `torch.load(weights_only=True)` accepts."""
    kind, keys, position, has_gauss, cached = np.random.get_state()
    state = {
        "torch": torch.get_rng_state(),
        "numpy": [kind, torch.from_numpy(keys.astype(np.int64)), position, has_gauss, cached],
        "python": list(random.getstate()[1]),
        "python_gauss": random.getstate()[2],
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_global_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"].cpu())  # resume files load with map_location=device
    kind, keys, position, has_gauss, cached = state["numpy"]
    np.random.set_state((kind, keys.cpu().numpy().astype(np.uint32), position, has_gauss, cached))
    random.setstate((3, tuple(state["python"]), state["python_gauss"]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([s.cpu() for s in state["cuda"]])
