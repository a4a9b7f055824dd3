"""Data: split fidelity, the three format readers, the embedded set, transforms, memory draws."""
from __future__ import annotations

import json
import os
import pickle
from dataclasses import fields, replace
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torchvision import transforms

import datasets
import tiny_data
from conftest import tiny_config
from suite.config import NORMALIZATIONS, validate
from suite.data import BatchTransform, MemorySampler, ResidentImages, batch_transform, build_run_data
from suite.datasets import cifar10, cinic10, digits, svhn
from suite.datasets.registry import gather_images
from suite.cli import DatasetError
from suite.training import indices_digest

DATA = Path(__file__).parent / "data"


@pytest.mark.parametrize("case", json.loads((DATA / "reference_splits.json").read_text())["cases"].items(),
                         ids=lambda c: c[0] if isinstance(c, tuple) else str(c))
def test_split_matches_the_original(case):
    name, expected = case
    params = dict(item.split("=") for item in name.split(","))
    train, validation = datasets.split_indices(int(params["N"]), int(params["train"]), int(params["val"]),
                                               int(params["seed"]))
    assert len(train) == expected["train_len"] and len(validation) == expected["val_len"]
    assert train[:20] == expected["train_first20"] and validation[:20] == expected["val_first20"]
    assert indices_digest(train) == expected["train_sha256"]  # the digest each run record carries
    assert indices_digest(validation) == expected["val_sha256"]


def test_full_data_sizes_follow_the_validation_split():
    assert len(datasets.split_indices(73257, 100000, 6000, 0)[0]) == 67257
    assert len(datasets.split_indices(50000, 100000, 6000, 0)[0]) == 44000
    assert len(datasets.split_indices(90000, 100000, 10, 0)[0]) == 89990


# ---- readers ------------------------------------------------------------------------------------
def test_cifar_reader_returns_the_written_images(tmp_path):
    tiny_data.write_cifar10(tmp_path, per_batch=12, test=7)
    train, test = cifar10.read_cifar10(tmp_path, True), cifar10.read_cifar10(tmp_path, False)
    assert len(train) == 60 and len(test) == 7
    images, labels = tiny_data.patterned_images(12, 0)  # data_batch_1 uses seed 0
    image, label = train[3]
    assert image.dtype == torch.uint8 and image.shape == (3, 32, 32)
    assert torch.equal(image, torch.from_numpy(images[3]).permute(2, 0, 1)) and label == labels[3]


class _Exploit:
    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_cifar_reader_refuses_a_malicious_pickle(tmp_path):
    folder = tiny_data.write_cifar10(tmp_path, per_batch=4, test=4)
    marker = tmp_path / "pwned"
    with open(folder / "data_batch_2", "wb") as handle:
        pickle.dump({"data": _Exploit(marker), "labels": [0]}, handle)
    with pytest.raises(DatasetError, match="refusing to load"):
        cifar10.read_cifar10(tmp_path, True)
    assert not marker.exists()


def test_cifar_reader_reports_a_truncated_batch(tmp_path):
    folder = tiny_data.write_cifar10(tmp_path, per_batch=4, test=4)
    content = (folder / "test_batch").read_bytes()
    (folder / "test_batch").write_bytes(content[: len(content) // 2])
    with pytest.raises(DatasetError, match="truncated or corrupted"):
        cifar10.read_cifar10(tmp_path, False)


def test_svhn_reader_maps_label_ten_to_zero_and_keeps_pixels(tmp_path):
    tiny_data.write_svhn(tmp_path, train=30, test=10)
    train = svhn.read_svhn(tmp_path / "train_32x32.mat")
    images, labels = tiny_data.patterned_images(30, 10)
    assert len(train) == 30 and torch.equal(train.labels, torch.from_numpy(labels))
    assert 0 in train.labels.tolist() and 10 not in train.labels.tolist()
    assert torch.equal(train[5][0], torch.from_numpy(images[5]).permute(2, 0, 1))


def test_svhn_reader_rejects_a_foreign_file(tmp_path):
    (tmp_path / "train_32x32.mat").write_bytes(b"not a mat file at all")
    with pytest.raises(DatasetError, match="not a readable SVHN"):
        svhn.read_svhn(tmp_path / "train_32x32.mat")


def test_cinic_reader_orders_classes_alphabetically(tmp_path):
    tiny_data.write_cinic10(tmp_path, per_class=2)
    test = cinic10.ImageFolderImages(tmp_path / "CINIC10" / "test")
    assert test.classes == sorted(tiny_data.CIFAR_CLASSES) and len(test) == 20
    path, label = test.samples[0]
    image, read_label = test[0]
    assert read_label == label == 0
    assert torch.equal(image, torch.from_numpy(np.array(Image.open(path))).permute(2, 0, 1))


def test_cinic_images_are_decoded_once_per_process_and_gathered_in_the_order_asked(tmp_path, monkeypatch):
    tiny_data.write_cinic10(tmp_path, per_class=2)
    test = cinic10.ImageFolderImages(tmp_path / "CINIC10" / "test")
    decoded = []
    read = cinic10.ImageFolderImages.__getitem__
    monkeypatch.setattr(cinic10.ImageFolderImages, "__getitem__", lambda self, i: decoded.append(i) or read(self, i))
    images, labels = gather_images(test, [7, 3, 7, 12])
    assert sorted(decoded) == [3, 7, 12]  # each image once, even when asked twice
    for position, index in enumerate([7, 3, 7, 12]):
        path, label = test.samples[index]
        assert int(labels[position]) == label
        assert torch.equal(images[position], torch.from_numpy(np.array(Image.open(path))).permute(2, 0, 1))
    again, _ = gather_images(test, range(20))  # a later run: only the images not decoded yet
    assert sorted(decoded) == sorted([3, 7, 12] + [i for i in range(20) if i not in (3, 7, 12)])
    assert torch.equal(again[[7, 3, 12]], images[[0, 1, 3]])


def test_embedded_digits_are_real_and_normalised_by_their_own_statistics():
    train, test = digits.read_digits(True), digits.read_digits(False)
    assert (len(train), len(test)) == (1297, 500)
    assert train.images.shape == (1297, 3, 32, 32) and train.images.dtype == torch.uint8
    assert sorted(set(test.labels.tolist())) == list(range(10))
    pixels = train.images.double() / 255
    spec = datasets.get_spec("DIGITS")
    assert pixels.mean().item() == pytest.approx(spec.mean[0], abs=1e-4)
    assert pixels.std(unbiased=False).item() == pytest.approx(spec.std[0], abs=1e-4)


# ---- missing files ----------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["SVHN", "CIFAR10"])
def test_missing_files_offline_are_one_clear_error(tmp_path, name):
    with pytest.raises(DatasetError, match="not found") as error:
        datasets.get_spec(name).open(tmp_path, True, False)
    assert str(tmp_path) in str(error.value) and "\n" not in str(error.value)


def test_cinic_missing_names_the_expected_layout(tmp_path):
    with pytest.raises(DatasetError, match=r"CINIC10/\{train,valid,test\}/<class>/\*\.png"):
        datasets.get_spec("CINIC10").open(tmp_path, True, True)


def test_failed_download_is_reported_and_leaves_no_partial_file(tmp_path, monkeypatch):
    import torchvision.datasets.utils as utils

    def refuse(url, root, filename=None, md5=None, **kwargs):
        (Path(root) / filename).write_bytes(b"half a download")
        raise OSError("network unreachable")

    monkeypatch.setattr(utils, "download_url", refuse)
    with pytest.raises(DatasetError, match="download failed: network unreachable"):
        datasets.get_spec("SVHN").open(tmp_path, True, True)
    assert list(tmp_path.iterdir()) == []


# ---- transforms -----------------------------------------------------------------------------
CPU = torch.device("cpu")


def _patterned(count: int, seed: int = 0) -> torch.Tensor:
    return torch.from_numpy(tiny_data.patterned_images(count, seed)[0]).permute(0, 3, 1, 2).contiguous()


def test_test_transform_equals_to_tensor_then_normalize():
    images = _patterned(3)
    spec = datasets.get_spec("CIFAR10")
    reference = transforms.Compose([transforms.ToTensor(), transforms.Normalize(spec.mean, spec.std)])
    expected = torch.stack([reference(Image.fromarray(image.permute(1, 2, 0).numpy())) for image in images])
    assert torch.equal(batch_transform(spec, CPU, train=False)(images), expected)


def test_training_flips_are_independent_with_probability_one_half():
    """CIFAR10 flips each image of a batch on its own coin (p = 0.5); SVHN never flips."""
    images = _patterned(1).expand(4000, -1, -1, -1)
    spec = datasets.get_spec("CIFAR10")
    plain = batch_transform(spec, CPU, train=False)(images[:1])[0]
    out = batch_transform(spec, CPU, train=True)(images, torch.Generator().manual_seed(0))
    flipped = torch.tensor([torch.equal(o, plain.flip(-1)) for o in out])
    kept = torch.tensor([torch.equal(o, plain) for o in out])
    assert bool((flipped | kept).all())
    assert abs(flipped.float().mean().item() - 0.5) < 0.03  # 4000 coins: 3 % is about 4 sigma
    pairs = flipped[:-1].float() * 2 + flipped[1:].float()  # neighbours independent: 4 patterns equally likely
    assert all(abs((pairs == k).float().mean().item() - 0.25) < 0.03 for k in range(4))
    svhn = batch_transform(datasets.get_spec("SVHN"), CPU, train=True)
    assert torch.equal(svhn(images[:50], torch.Generator()), batch_transform(datasets.get_spec("SVHN"), CPU,
                                                                              train=False)(images[:50]))


def test_undo_normalization_inverts_the_transform():
    images = _patterned(2, 3)
    spec = datasets.get_spec("SVHN")
    restored = datasets.undo_normalization(batch_transform(spec, CPU, train=False)(images), spec)
    assert torch.allclose(restored, images.float() / 255, atol=1e-6)


# ---- memory draws and batches ---------------------------------------------------------------
def _pool(n: int = 50) -> ResidentImages:
    """Images whose pixel value is their position, so a draw tells which images it took."""
    images = torch.arange(n, dtype=torch.uint8).view(n, 1, 1, 1).expand(n, 3, 2, 2).contiguous()
    return ResidentImages(images, torch.arange(n) % 10, list(range(1000, 1000 + n)))


IDENTITY = BatchTransform(torch.zeros(1, 3, 1, 1), torch.full((1, 3, 1, 1), 1 / 255))  # pixels come back as values


def _ids(images: torch.Tensor) -> list[int]:
    return images[:, 0, 0, 0].round().long().tolist()


def test_memory_draws_are_distinct_reproducible_and_resumable():
    sampler = MemorySampler(_pool(), 20, torch.Generator().manual_seed(1), IDENTITY)
    first, labels = sampler.draw()
    ids = _ids(first)
    assert len(set(ids)) == 20 and labels.tolist() == [i % 10 for i in ids]  # without replacement, labels follow
    state = sampler.state_dict()
    second, _ = sampler.draw()
    assert not torch.equal(first, second)  # fresh draw each call
    sampler.load_state_dict(state)
    assert torch.equal(sampler.draw()[0], second)
    again = MemorySampler(_pool(), 20, torch.Generator().manual_seed(1), IDENTITY)
    assert torch.equal(again.draw()[0], first)


def test_memory_draws_are_uniform_over_the_subset():
    sampler = MemorySampler(_pool(10), 3, torch.Generator().manual_seed(0), IDENTITY)
    counts = torch.zeros(10)
    for _ in range(2000):
        counts[_ids(sampler.draw()[0])] += 1
    assert counts.min() > 0.8 * 600 and counts.max() < 1.2 * 600


def test_memory_larger_than_subset_is_a_clear_error():
    with pytest.raises(DatasetError, match=r"mem_examples \(60\) is larger than the training subset \(50"):
        MemorySampler(_pool(), 60, torch.Generator(), IDENTITY)


def test_run_data_follows_the_protocol(tmp_path, tiny_dataset_dir):
    config = validate(tiny_config(tmp_path, tiny_dataset_dir, train_examples=20, batch_size_train=128),
                      datasets.list_datasets())
    data = build_run_data(config, seed=3)
    assert len(data.train) == 20 and data.batch_size_train == 20  # clamped to the subset
    assert data.spec.drop_last and data.train_steps == 1
    assert data.train.indices == datasets.split_indices(200, 20, 20, 3)[0]
    raw = datasets.open_images("CIFAR10", str(tiny_dataset_dir), True, False)
    assert torch.equal(data.train.images, raw.images[data.train.indices])  # the subset, not other images
    assert data.training_memory().draw()[0].shape == (10, 3, 32, 32)
    cinic = build_run_data(dict(config, dataset_name="CINIC10"), seed=0)
    assert not cinic.spec.drop_last and cinic.spec.shuffle_test
    first = [p.tolist() for p in cinic.test_index_batches(torch.Generator().manual_seed(0))]
    second = [p.tolist() for p in cinic.test_index_batches(torch.Generator().manual_seed(1))]
    assert first != second and sorted(sum(first, [])) == list(range(len(cinic.test)))  # shuffled, complete


def test_training_batches_cover_the_subset_without_repeats_and_drop_the_remainder(tmp_path, tiny_dataset_dir):
    """One epoch = a permutation of the subset cut into batches; drop_last as the dataset's, or as its
    config section says (the journal's CINIC10 loaders dropped the last batch)."""
    config = validate(tiny_config(tmp_path, tiny_dataset_dir, train_examples=70, batch_size_train=32),
                      datasets.list_datasets())
    config["CINIC10"]["validation_size"] = 3
    # CIFAR10: 70 images in batches of 32; CINIC10: 27 images in batches of 16, no drop_last by default.
    for name, chosen, steps, seen in (("CIFAR10", None, 2, 64), ("CINIC10", None, 2, 27), ("CINIC10", True, 1, 16),
                                      ("CIFAR10", False, 3, 70)):
        section = dict(config[name], drop_last=chosen)
        data = build_run_data(dict(config, dataset_name=name, batch_size_train=32 if name == "CIFAR10" else 16,
                                   **{name: section}), 0)
        data.train_transform = BatchTransform(data.train_transform.mean, data.train_transform.std)  # no flips
        by_image = {bytes(img.numpy()): i for i, img in enumerate(data.train.images)}
        epochs = []
        for _ in range(2):
            positions = [by_image[bytes(img.numpy())]
                         for inputs, _ in data.train_batches() for img in
                         datasets.undo_normalization(inputs, data.spec).mul(255).round().to(torch.uint8)]
            assert len(positions) == seen == len(set(positions)) and data.train_steps == steps
            epochs.append(positions)
        assert epochs[0] != epochs[1]  # a fresh order each epoch


AUGMENTATION = {"flip", "autoaugment"}  # what the training transform may have and the test transform may not


@pytest.mark.parametrize("dataset", ["CIFAR10", "SVHN", "CINIC10", "DIGITS"])
@pytest.mark.parametrize("normalization", NORMALIZATIONS)
@pytest.mark.parametrize("channels_last, autoaugment", [(False, False), (True, True)])
def test_training_and_test_transforms_differ_in_augmentation_only(tmp_path, tiny_dataset_dir, dataset, normalization,
                                                                  channels_last, autoaugment):
    """Every option that shapes the test transform reaches it as it reaches the training transform; the
    training transform adds the dataset's flips and, when asked, AutoAugment; nothing else differs."""
    raw = tiny_config(tmp_path, tiny_dataset_dir, dataset_name=dataset, normalization=normalization,
                      channels_last=channels_last, autoaugment=autoaugment, train_examples=10)
    raw[dataset] = dict(raw["CIFAR10"], validation_size=20 if dataset != "CINIC10" else 10, mem_examples=5)
    data = build_run_data(validate(raw, datasets.list_datasets()), seed=0)
    train, test = data.train_transform, data.test_transform
    spec = datasets.get_spec(dataset)
    for field in fields(train):
        a, b = getattr(train, field.name), getattr(test, field.name)
        if field.name not in AUGMENTATION:
            assert (torch.equal(a, b) if isinstance(a, torch.Tensor) else a == b), field.name
    assert (train.flip, test.flip) == (spec.flip, False)
    assert (train.autoaugment is not None, test.autoaugment) == (autoaugment, None)
    mean, std = spec.normalization(normalization)
    assert torch.equal(test.mean.flatten(), torch.tensor(mean)) and torch.equal(test.std.flatten(), torch.tensor(std))
    images = data.test.images[:4]
    plain = replace(train, flip=False, autoaugment=None)(images)
    tested = test(images)
    assert torch.equal(plain, tested) and tested.is_contiguous(
        memory_format=torch.channels_last if channels_last else torch.contiguous_format)


def test_memory_above_subset_size_fails_when_building_a_run(tmp_path, tiny_dataset_dir):
    config = validate(tiny_config(tmp_path, tiny_dataset_dir, train_examples=5), datasets.list_datasets())
    with pytest.raises(DatasetError, match="larger than the training subset"):
        build_run_data(config, seed=0).training_memory()
