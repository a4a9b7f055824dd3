"""Outputs never collide (issue 26, class 5): two invocations that differ in a setting that changes the
result write different files, and the defaults keep the plain names other commands read.

The scripts that write results and their result-changing options, enumerated here:
- eval_dir.py: --passes, --batch_size_test; --majority_vote (its own file, same two options);
- explanation_accuracy.py: --memory_pool, --passes, --batch_size_test;
- explanation_quality.py: --passes, --batch_size_test;
- counterfactual_quality.py: --target, --max_inputs, --data_feature_range, every option of the search,
  --batch_size_test (every field of its settings but the figure's size);
- generate_memory_images.py: the checkpoint (cell, run), --batch_size_test;
- generate_heatmaps.py: the checkpoint, --method, --baseline, every option of each method, --batch_size_test;
- eval.py writes only where --json says; train.py and the grid write a cell's folder, whose other settings
  are refused (tests/test_training.py, tests/test_grid.py); train_autoencoders.py refuses autoencoders of
  other training settings (tests/test_explanation_quality.py); the report writes where --out says.
"""
from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import pytest

from suite.restore import CheckpointOptions
from trained_runs import trained_runs


def quiet(_: str) -> None:
    pass


@pytest.fixture(scope="module")
def cell(tmp_path_factory, tiny_dataset_dir) -> Path:
    """A private copy (links) of the shared encoder_memory cell: results written beside it stay here."""
    runs = trained_runs(tmp_path_factory, tiny_dataset_dir)
    folder = tmp_path_factory.mktemp("results") / "cell"
    folder.mkdir()
    for run in (1, 2):
        os.symlink(runs.checkpoint("encoder_memory", run), folder / f"{run}.pt")
    return folder


def written(files: list) -> frozenset[str]:
    return frozenset(str(path) for path in files)


def assert_all_distinct(outputs: dict[str, frozenset[str]]) -> None:
    """No two invocations share a file."""
    seen: dict[str, str] = {}
    for name, files in outputs.items():
        assert files, f"{name} wrote nothing"
        for path in files:
            assert path not in seen, f"{name} and {seen.get(path)} both wrote {path}"
            seen[path] = name


def test_each_folder_command_and_option_writes_its_own_files(cell):
    from suite.commands import evaluate_folder, explanation_accuracy
    from suite.journal.majority_vote_eval import majority_vote_folder
    from suite.journal.quality_commands import EXAMPLE_BATCH, explanation_quality

    cpu = CheckpointOptions(device="cpu")
    small = CheckpointOptions(device="cpu", batch_size_test=10)

    def files(payload: dict) -> frozenset[str]:
        return written(payload["files"])

    outputs = {
        "eval_dir": files(evaluate_folder(str(cell), cpu, out=quiet, note=quiet)),
        "eval_dir passes": files(evaluate_folder(str(cell), cpu, passes=1, out=quiet, note=quiet)),
        "eval_dir batch": files(evaluate_folder(str(cell), small, out=quiet, note=quiet)),
        "majority vote": files(majority_vote_folder(str(cell), cpu, out=quiet, note=quiet)),
        "majority vote passes": files(majority_vote_folder(str(cell), cpu, passes=1, out=quiet, note=quiet)),
        "majority vote batch": files(majority_vote_folder(str(cell), small, out=quiet, note=quiet)),
        "explanation": files(explanation_accuracy(str(cell), cpu, out=quiet, note=quiet)),
        "explanation full pool": files(explanation_accuracy(str(cell), cpu, memory_pool="full", out=quiet, note=quiet)),
        "explanation passes": files(explanation_accuracy(str(cell), cpu, passes=1, out=quiet, note=quiet)),
        "explanation batch": files(explanation_accuracy(str(cell), small, out=quiet, note=quiet)),
        "examples": files(explanation_quality(str(cell), CheckpointOptions(device="cpu", batch_size_test=EXAMPLE_BATCH),
                                              out=quiet, note=quiet)),
        "examples passes": files(explanation_quality(str(cell), CheckpointOptions(device="cpu", batch_size_test=EXAMPLE_BATCH),
                                                     passes=2, out=quiet, note=quiet)),
        "examples batch": files(explanation_quality(str(cell), small, out=quiet, note=quiet)),
    }
    assert_all_distinct(outputs)
    # the defaults keep the plain names (the report reads eval_dir.json's neighbour majority_vote.json)
    assert {Path(p).name for p in outputs["eval_dir"]} == {"eval_dir.json"}
    assert {Path(p).name for p in outputs["majority vote"]} == {"majority_vote.json"}
    assert {Path(p).name for p in outputs["explanation"]} == {"explanation_accuracy_subset.json"}
    assert {Path(p).name for p in outputs["examples"]} == {f"example_quality.{k}" for k in ("md", "csv", "json")}
    assert {Path(p).name for p in outputs["eval_dir passes"]} == {"eval_dir_passes=1.json"}
    # the trained values given explicitly are the defaults: the same file
    trained = files(evaluate_folder(str(cell), CheckpointOptions(device="cpu", batch_size_test=25), passes=3,
                                    out=quiet, note=quiet))
    assert trained == outputs["eval_dir"]


def _changed(value):
    """Another valid value of an option, of its type."""
    if isinstance(value, bool):
        return not value
    if isinstance(value, (int, float)):
        return value * 2 + 1
    if value is None:
        return 3
    raise TypeError(value)


def test_every_option_of_the_counterfactual_search_names_its_results():
    """Each field of the counterfactual settings, of the search (but the figure's size, and the range the
    data option sets) and of the autoencoders' training changed alone gives its own suffix, and the
    defaults none: a new option must be named too."""
    from suite.journal.autoencoders import AutoencoderTraining
    from suite.journal.counterfactual_quality import CounterfactualSettings
    from suite.journal.quality_commands import COUNTERFACTUAL_BATCH, counterfactual_options
    from suite.commands import result_name

    default = CounterfactualSettings()
    baseline = counterfactual_options(default, None)
    assert result_name("", baseline, baseline) == ""
    suffixes = {}
    for field in dataclasses.fields(default.search):
        if field.name == "feature_range":  # set from data_feature_range, which is named
            continue
        search = dataclasses.replace(default.search, **{field.name: _changed(getattr(default.search, field.name))})
        suffixes[field.name] = result_name("", counterfactual_options(dataclasses.replace(default, search=search), None),
                                           baseline)
    for name, value in (("target", "any"), ("max_inputs", 5), ("data_feature_range", False)):
        suffixes[name] = result_name("", counterfactual_options(dataclasses.replace(default, **{name: value}), None),
                                     baseline)
    suffixes["batch_size_test"] = result_name("", counterfactual_options(default, COUNTERFACTUAL_BATCH + 1), baseline)
    for field in dataclasses.fields(AutoencoderTraining):  # the autoencoders the scores are computed with
        trained = dataclasses.asdict(AutoencoderTraining()) | {field.name: _changed(getattr(AutoencoderTraining(),
                                                                                          field.name))}
        suffixes[f"autoencoder {field.name}"] = result_name("", counterfactual_options(default, None, trained), baseline)
    suffixes["figure_inputs"] = result_name("", counterfactual_options(dataclasses.replace(default, figure_inputs=1),
                                                                       None), baseline)
    assert suffixes.pop("figure_inputs") == ""  # the figure's size changes no number
    assert all(suffix.startswith("_") for suffix in suffixes.values()), suffixes
    assert len(set(suffixes.values())) == len(suffixes), suffixes
    assert set(suffixes) == {f.name for f in dataclasses.fields(default.search)} - {"feature_range"} | {
        "target", "max_inputs", "data_feature_range", "batch_size_test"} | {
        f"autoencoder {f.name}" for f in dataclasses.fields(AutoencoderTraining)}


def test_each_figure_option_and_checkpoint_draws_into_its_own_folder(cell, tmp_path):
    """Memory images of two runs and two batch sizes; heat maps of every method with its defaults and with
    each of its options changed, of another baseline and batch size: every invocation its own folder."""
    from suite.attribution import get_method, list_methods
    from suite.commands import HEATMAPS_PER_FIGURE, MEMORY_IMAGES_PER_FIGURE, heatmaps, memory_images

    images = tmp_path / "images"

    def folders(paths: list[Path]) -> frozenset[str]:
        return frozenset(str(path.parent) for path in paths)

    def memory(run: int, batch: int = MEMORY_IMAGES_PER_FIGURE):
        return folders(memory_images(str(cell / f"{run}.pt"), CheckpointOptions(device="cpu", batch_size_test=batch),
                                     max_images=batch, images_dir=images, out=quiet))

    def heat(method: str, batch: int = HEATMAPS_PER_FIGURE, baseline: str = "ones", **options):
        small = {"n_steps": 2, "n_samples": 2} | options  # every run fast; changed options are named below
        small = {k: v for k, v in small.items() if k in get_method(method).options}
        return folders(heatmaps(str(cell / "1.pt"), CheckpointOptions(device="cpu", batch_size_test=batch), max_images=1,
                                baseline=baseline, method=method, method_options=small, images_dir=images, out=quiet))

    outputs = {"memory run 1": memory(1), "memory run 2": memory(2), "memory batch": memory(1, 2)}
    for method in list_methods():
        outputs[f"{method}"] = heat(method)
        for option, value in get_method(method).options.items():
            base = {"n_steps": 2, "n_samples": 2}.get(option, value)
            outputs[f"{method} {option}"] = heat(method, **{option: _changed(base)})
    outputs["baseline white"] = heat("integrated_gradients", baseline="white")  # saliency uses no baseline
    outputs["heat-map batch"] = heat("saliency", batch=2)
    assert_all_distinct(outputs)
    assert len(outputs) == 3 + len(list_methods()) + sum(len(get_method(m).options) for m in list_methods()) + 2
