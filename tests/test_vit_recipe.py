"""The ViT recipe (config/vit.yaml) trained by the suite's one training loop."""
from __future__ import annotations

import pytest
import torch
from torchvision import transforms

import datasets
from conftest import REPO, run_script, write_config
from suite.run_files import finished_runs, load_checkpoint, metrics_path, read_metrics
from suite.config import TrainSettings, load_config
from suite.data import batch_transform
from suite.evaluation import plain_evaluate
from suite.recipe import CrossEntropy, SmoothedCrossEntropy, build_loss, build_optimizer, build_scheduler
from suite.restore import CheckpointOptions, restore_run

VIT = REPO / "config" / "vit.yaml"


def test_vit_config_holds_the_original_recipe():
    config = load_config(VIT)
    assert config["model"] == "vit" and config["model_options"] == {
        "patches": 8, "depth": 7, "hidden": 384, "heads": 12, "mlp_hidden": 384, "dropout": 0.0, "pooling": "cls"}
    assert config["optimizer"]["name"] == "adam" and config["optimizer"]["learning_rate"] == 1e-3
    assert config["optimizer"]["weight_decay"] == 5e-5 and config["optimizer"]["min_lr"] == 1e-5
    assert (config["batch_size_train"], config["train_examples"], config["normalization"]) == (128, 1000, "vit")
    for name in ("CIFAR10", "SVHN", "CINIC10"):
        assert config[name]["num_epochs"] == 200 and config[name]["mem_examples"] == 100
        assert config[name]["lr_schedule"] == "warmup_cosine"


def test_vit_per_epoch_learning_rates_equal_the_originals():
    settings = TrainSettings(load_config(VIT), "encoder_memory")
    optimizer = build_optimizer(torch.nn.Linear(1, 1), settings.config["optimizer"])
    assert isinstance(optimizer, torch.optim.Adam) and optimizer.defaults["weight_decay"] == 5e-5
    scheduler = build_scheduler(optimizer, settings)
    lrs = []
    for _ in range(200):
        lrs.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    assert lrs[:7] == pytest.approx([0.0, 2e-4, 4e-4, 6e-4, 8e-4, 1e-3, 1e-3], abs=1e-12)
    assert lrs[7] < 1e-3 and lrs[199] == pytest.approx(1.30e-5, abs=5e-8)


def test_label_smoothing_is_used_when_enabled():
    settings = TrainSettings(load_config(VIT, ["label_smoothing=0.1"]), "encoder_memory")
    loss = build_loss(settings)
    assert isinstance(loss, SmoothedCrossEntropy) and loss.smoothing == 0.1
    plain = build_loss(TrainSettings(load_config(VIT), "encoder_memory"))
    assert isinstance(plain, CrossEntropy)


@pytest.mark.parametrize("name, policy", [("CIFAR10", transforms.AutoAugmentPolicy.CIFAR10),
                                          ("SVHN", transforms.AutoAugmentPolicy.SVHN)])
def test_autoaugment_uses_the_dataset_policy_and_vit_normalisation(name, policy):
    spec = datasets.get_spec(name)
    transform = batch_transform(spec, torch.device("cpu"), train=True, normalization="vit", autoaugment=True)
    assert isinstance(transform.autoaugment, transforms.AutoAugment) and transform.autoaugment.policy == policy
    assert transform.mean.flatten().tolist() == pytest.approx(spec.vit_mean)
    assert transform.std.flatten().tolist() == pytest.approx(spec.vit_std)
    assert spec.vit_std != spec.std  # the ViT constants differ from the CNN scripts'


@pytest.mark.slow
def test_train_script_runs_the_vit_recipe_end_to_end(tmp_path, tiny_dataset_dir):
    config = load_config(VIT, [
        f"dataset_dir={tiny_dataset_dir}", "download=false", f"models_dir={tmp_path / 'models'}", "runs=1",
        "train_examples=60", "batch_size_train=16", "batch_size_test=25", "eval_passes=2", "label_smoothing=0.1",
        "model_options={patches: 8, depth: 1, hidden: 32, heads: 4, mlp_hidden: 32, dropout: 0.0, pooling: cls}",
        "CIFAR10.num_epochs=2", "CIFAR10.mem_examples=10", "CIFAR10.validation_size=20"])
    path = write_config(tmp_path / "vit.yaml", config)
    result = run_script("train.py", "--modality=encoder_memory", f"--config={path}", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    folder = tmp_path / "models/CIFAR10/encoder_memory/vit/60"
    record = list(finished_runs(folder).values())[0]
    assert record["settings"]["optimizer"]["name"] == "adam" and record["settings"]["autoaugment"] is True
    checkpoint = load_checkpoint(folder / "1.pt")
    assert checkpoint["model_state_dict"]["pos_emb"].shape == (1, 65, 32)
    # The recipe's schedule ran inside the loop: epoch 1 at lr 0 (warm-up from 0), epoch 2 at 1e-3 / 5.
    rows = read_metrics(metrics_path(folder, 1))
    assert [row["learning_rate"] for row in rows] == pytest.approx([0.0, 2e-4], abs=1e-12)
    # The recorded passes are a plain evaluation of the saved weights with the run's seeded draws.
    restored = restore_run(folder / "1.pt", CheckpointOptions(device="cpu"))
    expected = plain_evaluate(restored.model, restored.data, 2)
    assert record["pass_accuracies"] == list(expected.pass_accuracies)
    assert record["loss"] == pytest.approx(expected.loss, rel=1e-5)


def test_autoaugmented_memories_repeat_whatever_the_global_random_state(tmp_path, tiny_dataset_dir):
    """AutoAugment draws from torch's global RNG; evaluation memories must still depend only on the run,
    so that eval_dir.py repeats what train.py recorded (and the draw stream resumes exactly)."""
    config = load_config(VIT, [f"dataset_dir={tiny_dataset_dir}", "download=false", "train_examples=60",
                               "CIFAR10.mem_examples=10", "CIFAR10.validation_size=20", "device=cpu"])
    from suite.data import build_run_data

    data = build_run_data(config, seed=0)
    draws = []
    for global_seed in (1, 2):
        torch.manual_seed(global_seed)
        images, labels = data.memory_sampler("evaluation_memory").draw()
        draws.append((images, labels))
    assert torch.equal(draws[0][0], draws[1][0]) and torch.equal(draws[0][1], draws[1][1])
    plain = build_run_data(load_config(VIT, [f"dataset_dir={tiny_dataset_dir}", "download=false",
                                             "train_examples=60", "CIFAR10.mem_examples=10",
                                             "CIFAR10.validation_size=20", "autoaugment=false"]), seed=0)
    unaugmented, _ = plain.memory_sampler("evaluation_memory").draw()
    assert not torch.equal(unaugmented, draws[0][0])  # AutoAugment did change the images
