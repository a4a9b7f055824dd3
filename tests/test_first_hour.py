"""A new user's first hour, driven as a user drives it: the scripts through their command lines (or the
functions they call, where a subprocess would only add start-up time), on real files, with the usual
mistakes. One test per surprise a first walk-through met (issue 25); each failed before its fix.

- a mistake beside --overwrite (or any other failing check) leaves every file as it was;
- a --set of one key of a section keeps the section's other defaults;
- figures of two runs, cells or methods never share a folder, and each command says where it wrote;
- a training size above the split says so;
- a sweep trains only what differs, and its report draws curves and a reference line;
- a log off a terminal shows loss, learning rate, speed and time left;
- a grid names the finished runs it reuses under other non-science settings;
- errors say what was given and what to do.
"""
from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from conftest import REPO, run_script, tiny_config, write_config
from suite.cli import UserError
from suite.restore import CheckpointOptions

TINY_VIT = {"patches": 4, "depth": 1, "hidden": 32, "heads": 2, "mlp_hidden": 32, "pooling": "mean"}


ONE = CheckpointOptions(device="cpu", batch_size_test=1)  # the heat-map script's defaults, on the CPU


def tree(root: Path) -> dict[str, bytes]:
    """Every file under `root` and its bytes: what "nothing was changed" compares."""
    return {str(path.relative_to(root)): path.read_bytes() for path in sorted(Path(root).rglob("*")) if path.is_file()}


def journey_config(folder: Path, dataset_dir: Path, **top_level) -> Path:
    """A tiny ViT on the tiny CIFAR10 of conftest: a run trains in about a second."""
    section = {"num_epochs": 2, "opt_milestones": [1], "mem_examples": 10, "validation_size": 20}
    config = tiny_config(folder, dataset_dir, model="vit", model_options=dict(TINY_VIT), runs=2, batch_size_train=16,
                         device="cpu", optimizer={"name": "adam", "learning_rate": 0.003, "weight_decay": 0.0},
                         CIFAR10=section, eval_passes=1) | top_level
    return write_config(folder / "journey.yaml", config)


@pytest.fixture(scope="module")
def trained_cell(tmp_path_factory, tiny_dataset_dir):
    """A user's finished cell (2 runs of encoder_memory), trained once by train.py's code."""
    from suite.config import TrainSettings, load_config
    from suite.training import train_cell

    folder = tmp_path_factory.mktemp("journey")
    path = journey_config(folder, tiny_dataset_dir)
    settings = TrainSettings(load_config(path), "encoder_memory")
    train_cell(settings, out=lambda _: None)
    return folder, path, settings


# ---- 1. nothing is lost to a typo ---------------------------------------------------------------------
def test_a_typo_beside_overwrite_deletes_nothing(trained_cell):
    """The walk-through's command: a misspelt model option with --overwrite. It fails in one line with the
    nearest option, and the cell keeps every file byte for byte."""
    folder, path, settings = trained_cell
    before = tree(settings.cell_folder)
    assert {"1.json", "1.pt", "1.metrics.csv", "2.json", "2.pt", "2.metrics.csv"} <= set(before)
    result = run_script("train.py", "--modality=encoder_memory", f"--config={path}", "--set",
                        "model_options={dpeth: 2}", "--overwrite", cwd=folder)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines()[-1] == "error: model 'vit' has no option 'dpeth'; did you mean 'depth'?"
    assert tree(settings.cell_folder) == before


PREFLIGHT_STEPS = ("require_tensorboard", "check_compile_works", "build_model", "build_run_data", "training_memory",
                   "live_locks", "check_writable")


@pytest.mark.parametrize("step", PREFLIGHT_STEPS)
def test_overwrite_deletes_nothing_until_every_check_has_passed(trained_cell, monkeypatch, step):
    """A failure planted at each check train.py makes before it writes (tensorboard, the compile
    toolchain, the model, the data, the memory size, other trainers' locks, a writable folder) leaves the
    cell byte-identical, --overwrite or not."""
    import suite.training as training
    from suite.config import TrainSettings
    from suite.data import RunData

    folder, path, settings = trained_cell
    if step == "check_compile_works":
        settings = TrainSettings(settings.config | {"compile": True}, settings.modality)
    before = tree(settings.cell_folder)

    def planted(*args, **kwargs):
        raise UserError(f"planted failure in {step}")

    if step == "training_memory":
        monkeypatch.setattr(RunData, "training_memory", planted)
    else:
        monkeypatch.setattr(training, step, planted)
    with pytest.raises(UserError, match=f"planted failure in {step}"):
        training.train_cell(settings, overwrite=True, out=lambda _: None)
    assert tree(settings.cell_folder) == before


def test_overwrite_refuses_while_another_process_trains_the_cell(trained_cell, tmp_path):
    """A live process holding a run's lock (a grid worker, another train.py): nothing is deleted."""
    from suite.run_files import RunBusy
    from suite.training import train_cell

    folder, path, settings = trained_cell
    other = subprocess.Popen([sys.executable, "-c", "import sys, time; sys.path.insert(0, sys.argv[1]); "
                              "from suite.run_files import acquire; acquire(sys.argv[2], 2); print('held', flush=True); "
                              "time.sleep(60)", str(REPO), str(settings.cell_folder)],
                             stdout=subprocess.PIPE, text=True)
    try:
        assert other.stdout.readline().strip() == "held"
        before = tree(settings.cell_folder)
        with pytest.raises(RunBusy, match=r"run 2 .* is being trained by another process .*nothing was deleted"):
            train_cell(settings, overwrite=True, out=lambda _: None)
        assert tree(settings.cell_folder) == before
    finally:
        other.kill()
        other.wait()
    (settings.cell_folder / "2.lock").unlink(missing_ok=True)


def test_a_grid_that_fails_its_checks_changes_no_file(tmp_path):
    """The grid removes garbage resume files only after its checks: with a dataset missing, every file
    (a finished run's leftover resume file included) stays."""
    grid = {"base_config": str(REPO / "config" / "quickstart.yaml"), "datasets": ["DIGITS", "CIFAR10"],
            "models": ["vit"], "train_examples": [40], "modalities": ["std"], "runs": 1,
            "overrides": ["DIGITS.num_epochs=1", "CIFAR10.num_epochs=1", f"models_dir={tmp_path / 'models'}",
                          f"dataset_dir={tmp_path / 'no_datasets'}", "download=false",
                          f"model_options={json.dumps(TINY_VIT)}", "device=cpu"]}
    (tmp_path / "grid.yaml").write_text(yaml.safe_dump(grid))
    cell = tmp_path / "models" / "DIGITS" / "std" / "vit" / "40"
    cell.mkdir(parents=True)
    from suite.gridspec import load_grid

    settings = load_grid(tmp_path / "grid.yaml").cell_settings(load_grid(tmp_path / "grid.yaml").cells()[0])
    (cell / "1.json").write_text(json.dumps({"run": 1, "accuracy": 50.0, "settings": settings.comparable_json(),
                                             "config": settings.config}))
    (cell / "1.resume.pt").write_bytes(b"left by a kill between the record and its removal")
    before = tree(tmp_path / "models")
    result = run_script("grid.py", f"--grid={tmp_path / 'grid.yaml'}", cwd=tmp_path)
    assert result.returncode == 2 and "CIFAR10" in result.stderr and "Traceback" not in result.stderr
    assert tree(tmp_path / "models") == before


def test_a_report_that_fails_leaves_the_previous_report_as_it_was(tmp_path, monkeypatch):
    """Every file of a report is computed before the first is written: a failure while drawing (planted in
    the training curves, the last figure computed) leaves yesterday's report byte-identical."""
    import suite.curves as curves
    from suite.report import write_report
    from test_grid import write_tiny_grid
    from suite.gridspec import load_grid

    from suite.run_files import write_record

    grid = load_grid(write_tiny_grid(tmp_path, models=("vit",), sizes=(40,), modalities=("std",), runs=2))
    out = tmp_path / "report"
    settings = grid.cell_settings(grid.cells()[0])

    def finish(run: int, accuracy: float) -> None:
        write_record(settings.cell_folder, {"run": run, "seed": run - 1, "accuracy": accuracy, "loss": 1.0,
                                            "dataset": "DIGITS", "model": "vit", "modality": "std",
                                            "train_examples": 40, "train_subset_size": 40,
                                            "settings": settings.comparable_json(), "config": settings.config})

    finish(1, 50.0)
    write_report(grid, out)
    before = tree(out)
    assert {"table1.md", "table1.csv", "table1.tex", "accuracy_vs_size.png"} <= set(before)
    finish(2, 60.0)  # a run finishes meanwhile: the new report would differ in every table

    def planted(collected):
        raise RuntimeError("planted failure while drawing")

    monkeypatch.setattr(curves, "curve_files", planted)
    with pytest.raises(RuntimeError, match="planted"):
        write_report(grid, out)
    assert tree(out) == before


# ---- 2. a --set of one key keeps its section ----------------------------------------------------------
@pytest.fixture(scope="module")
def digits_run(tmp_path_factory):
    """The walk-through's second command, on the offline DIGITS with a small hold-out change: config/train.yaml
    (no DIGITS section), one key of DIGITS set, and a training size above what the split holds."""
    folder = tmp_path_factory.mktemp("digits")
    result = run_script("train.py", "--modality=std", f"--config={REPO / 'config' / 'train.yaml'}", "--set",
                        "dataset_name=DIGITS", "--set", "DIGITS.num_epochs=1", "--set", "DIGITS.validation_size=1257",
                        "--set", "train_examples=5000", "--set", "runs=1", "--set", "batch_size_train=8",
                        "--set", "model=vit", "--set", f"model_options={json.dumps(TINY_VIT)}", "--set", "device=cpu",
                        "--set", f"models_dir={folder / 'models'}", "--log_interval=1", cwd=folder)
    return folder, result


def test_setting_one_key_of_a_dataset_section_keeps_its_other_defaults(digits_run):
    folder, result = digits_run
    assert result.returncode == 0, result.stderr
    record = json.loads((folder / "models/DIGITS/std/vit/5000/1.json").read_text())
    section = record["config"]["DIGITS"]
    assert (section["num_epochs"], section["validation_size"]) == (1, 1257)
    assert (section["mem_examples"], section["opt_milestones"], section["lr_schedule"]) == (100, [12, 16], "multistep")


def test_a_training_size_above_the_split_says_so_in_one_line(digits_run):
    """DIGITS holds 1,297 training digits; with 1,257 held out, 40 remain: the run trains on 40, says so
    before training, keeps the asked size as the folder name, and records the real size."""
    folder, result = digits_run
    notes = [line for line in result.stdout.splitlines() if line.startswith("note: train_examples is 5000")]
    assert notes == ["note: train_examples is 5000, but DIGITS has 40 training images after its validation "
                     "hold-out: every run trains on all 40 (the cell keeps the folder name 5000; records give "
                     "train_subset_size 40)"]
    assert json.loads((folder / "models/DIGITS/std/vit/5000/1.json").read_text())["train_subset_size"] == 40
    assert f"Writing runs to '{folder / 'models/DIGITS/std/vit/5000'}'" in result.stdout


# ---- 7. a log can follow the progress ----------------------------------------------------------------
STEP_LINE = re.compile(r"^Run 1 \| epoch 1/1 \| step (\d+)/(\d+) \| loss \d+\.\d{4} \| lr [0-9.e-]+ \| \d+ img/s \| "
                       r"elapsed \d+:\d\d:\d\d \| left ~\d+:\d\d:\d\d$")


def test_a_log_shows_loss_learning_rate_speed_and_time_left(digits_run):
    """Off a terminal (captured output), --log_interval=1: a line per step with every figure a user
    follows; the last says no time is left."""
    from suite.run_files import read_metrics

    _, result = digits_run
    lines = [line for line in result.stdout.splitlines() if line.startswith("Run 1 | epoch")]
    matched = [STEP_LINE.match(line) for line in lines]
    assert lines and all(matched), lines
    steps = [int(m.group(1)) for m in matched]
    assert steps == [1, 2, 3, 4, 5] and matched[0].group(2) == "5"  # 40 digits in batches of 8
    assert lines[-1].endswith("left ~0:00:00")
    # the loss shown is the epoch's mean so far: after its last step, the epoch's loss on record
    folder, _ = digits_run
    (row,) = read_metrics(folder / "models/DIGITS/std/vit/5000/1.metrics.csv")
    assert re.search(r"\| loss (\S+) \|", lines[-1]).group(1) == f"{row['loss']:.4f}"


def test_a_log_gets_a_line_at_least_once_a_minute_whatever_the_interval(monkeypatch):
    """Small-data epochs have a few steps: with the default 100-step interval a log showed one line per
    run. A step that ends a minute after the last line prints one; log_every 0 prints none at all."""
    import types

    import torch

    import suite.training as training

    clock = iter([0.0, 10.0, 50.0, 61.0, 70.0, 125.0, 130.0])
    monkeypatch.setattr(training.TrainingProgress, "now", staticmethod(lambda: next(clock)))
    monkeypatch.setattr(training, "on_terminal", lambda: False)
    state = types.SimpleNamespace(epoch=0, data=types.SimpleNamespace(train_steps=3))
    lines = []
    progress = training.TrainingProgress("Run 1", state, 2, 100, lines.append)  # started at 0 s
    for step, loss in zip((1, 2, 3, 1, 2, 3), (1.0, 2.0, 3.0, 0.5, 1.0, 1.5)):  # steps end at 10 ... 130 s
        progress.step(1 + (progress.done >= 3), step, 3, torch.tensor(loss), 8, 0.1)
    assert [line.split(" | ")[1:4] for line in lines] == [["epoch 1/2", "step 3/3", "loss 1.0000"],
                                                          ["epoch 2/2", "step 2/3", "loss 0.5000"]]  # mean so far
    assert lines[0].endswith("elapsed 0:01:01 | left ~0:01:01") and lines[1].endswith("elapsed 0:02:05 | left ~0:00:25")
    silent = []
    monkeypatch.setattr(training.TrainingProgress, "now", staticmethod(lambda: 1000.0))
    off = training.TrainingProgress("Run 1", state, 2, 0, silent.append)
    for step in (1, 2, 3):
        off.step(1, step, 3, torch.tensor(1.0), 8, 0.1)
    assert silent == []


def test_a_majority_vote_of_a_std_cell_is_refused_before_any_line(digits_run):
    """Std models draw no memory: the refusal is the only line (the MVO / MVY legend came first before)."""
    from suite.journal.majority_vote_eval import majority_vote_folder

    folder, _ = digits_run
    printed = []
    with pytest.raises(UserError, match="holds a std model, which has no memory"):
        majority_vote_folder(str(folder / "models/DIGITS/std/vit/5000"), CheckpointOptions(device="cpu"),
                             out=printed.append, note=printed.append)
    assert printed == []


# ---- 3. figures never mix -------------------------------------------------------------------------------
def test_figures_of_two_runs_methods_and_options_never_share_a_folder(trained_cell, capsys):
    """Memory images of run 1 and run 2, heat maps of two methods and of another baseline: five folders,
    each named after what drew it, each printed; a rerun replaces its own figures and nothing else."""
    from suite.commands import heatmaps, memory_images

    folder, _, settings = trained_cell
    images = folder / "images"
    cpu = CheckpointOptions(device="cpu", batch_size_test=2)
    outputs = {
        "memory run 1": memory_images(str(settings.cell_folder / "1.pt"), cpu, max_images=2, images_dir=images),
        "memory run 2": memory_images(str(settings.cell_folder / "2.pt"), cpu, max_images=2, images_dir=images),
        "ig": heatmaps(str(settings.cell_folder / "1.pt"), ONE, max_images=1, images_dir=images,
                       method_options={"n_steps": 4}),
        "saliency": heatmaps(str(settings.cell_folder / "1.pt"), ONE, max_images=1, method="saliency",
                             images_dir=images),
        "white": heatmaps(str(settings.cell_folder / "1.pt"), ONE, max_images=1, baseline="white", images_dir=images,
                          method_options={"n_steps": 4}),
    }
    folders = {name: {path.parent.relative_to(images) for path in paths} for name, paths in outputs.items()}
    cell = Path("CIFAR10/encoder_memory/vit/100")
    assert folders == {
        "memory run 1": {Path("mem_images") / cell / "run1_batch_size_test=2"},
        "memory run 2": {Path("mem_images") / cell / "run2_batch_size_test=2"},
        "ig": {Path("saliency") / cell / "run1/integrated_gradients_n_steps=4"},
        "saliency": {Path("saliency") / cell / "run1/saliency"},
        "white": {Path("saliency") / cell / "run1/integrated_gradients_baseline=white,n_steps=4"},
    }
    printed = capsys.readouterr().out
    for name, found in folders.items():
        assert f"Writing figures to {images / next(iter(found))}" in printed, name
        assert f"in {images / next(iter(found))}" in printed, name
    again = memory_images(str(settings.cell_folder / "1.pt"), cpu, max_images=2, images_dir=images)
    assert again == outputs["memory run 1"]
    assert sorted(p.name for p in again[0].parent.iterdir()) == sorted([p.name for p in again] + ["figures.json"])


def test_a_figure_folder_of_another_checkpoint_is_refused_and_overwrite_replaces_only_its_figures(trained_cell):
    from suite.commands import memory_images

    folder, _, settings = trained_cell
    out = folder / "shared_figures"
    cpu = CheckpointOptions(device="cpu", batch_size_test=2)
    first = memory_images(str(settings.cell_folder / "1.pt"), cpu, max_images=4, out_dir=out)
    (out / "my_notes.txt").write_text("a user's own file")
    before = tree(out)
    with pytest.raises(UserError, match=r"holds figures of another checkpoint \('.*1\.pt'\); pass --out_dir=another "
                                        r"folder, or --overwrite"):
        memory_images(str(settings.cell_folder / "2.pt"), cpu, max_images=2, out_dir=out)
    assert tree(out) == before
    second = memory_images(str(settings.cell_folder / "2.pt"), cpu, max_images=2, out_dir=out, overwrite=True,
                           note=lambda _: None)
    names = sorted(p.name for p in out.iterdir())
    assert names == sorted([p.name for p in second] + ["figures.json", "my_notes.txt"]) and len(first) == 2
    assert json.loads((out / "figures.json").read_text())["checkpoint"].endswith("2.pt")
    # the run trained again at the same path (train.py --overwrite): the refusal says the checkpoint changed
    manifest = json.loads((out / "figures.json").read_text())
    manifest["identity"]["checkpoint_sha256"] = "0" * 64
    (out / "figures.json").write_text(json.dumps(manifest))
    with pytest.raises(UserError, match=r"holds figures of an earlier checkpoint at '.*2\.pt' \(it has changed since "
                                        r"they were drawn\); pass --out_dir=another folder, or --overwrite"):
        memory_images(str(settings.cell_folder / "2.pt"), cpu, max_images=2, out_dir=out)


def test_heat_maps_are_titled_with_the_method_that_drew_them(trained_cell, monkeypatch):
    import suite.figures as figures
    from suite.commands import heatmaps

    folder, _, settings = trained_cell
    made = []
    drawn = figures.saliency_figure

    def recording(blocks, title):
        made.append(drawn(blocks, title))
        return made[-1]

    monkeypatch.setattr(figures, "saliency_figure", recording)
    for method, expected, options in (("integrated_gradients", "Integrated Gradients", {"n_steps": 2}),
                                      ("saliency", "Saliency", {}), ("gradient_shap", "GradientSHAP", {"n_samples": 2})):
        heatmaps(str(settings.cell_folder / "1.pt"), ONE, max_images=1, method=method, method_options=options,
                 images_dir=folder / "titled", out=lambda _: None)
        titles = [axis.get_title() for axis in made[-1].axes if axis.get_title()]
        heat_map_titles = [title for title in titles if not title.startswith(("Input", "Example", "Counterfactual"))]
        assert heat_map_titles and all(title.split(" (")[0] == expected for title in heat_map_titles), titles


def test_the_heat_map_script_reports_each_image(trained_cell, capsys):
    from suite.commands import heatmaps

    folder, _, settings = trained_cell
    heatmaps(str(settings.cell_folder / "1.pt"), ONE, max_images=3, images_dir=folder / "progress", method="saliency")
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("heat maps")]
    assert [line.split(" | ")[1] for line in lines] == ["1/3", "2/3", "3/3"]
    assert all(re.search(r"elapsed \d+:\d\d:\d\d \| left ~\d+:\d\d:\d\d$", line) for line in lines)


# ---- 9. errors and outputs that say what to do --------------------------------------------------------------
def test_a_folder_a_file_and_a_record_given_in_the_wrong_place_say_what_they_are(trained_cell):
    folder, _, settings = trained_cell
    cell = settings.cell_folder
    cases = [("eval.py", f"--path_model={cell}", f"error: '{cell}' is a folder, not a checkpoint file: give one run's "
                                                  f"checkpoint, such as '{cell / '1.pt'}'"),
             ("eval_dir.py", f"--path={cell / '1.pt'}", f"error: '{cell / '1.pt'}' is a file, not a cell's folder: give "
                                                         f"the folder of the runs, such as '{cell}'"),
             ("eval.py", f"--path_model={cell / '1.json'}", f"error: '{cell / '1.json'}' is not a PyTorch checkpoint "
                                                             "(it holds JSON text); a run's checkpoint is its <N>.pt")]
    for script, flag, message in cases:
        result = run_script(script, flag, "--device=cpu", cwd=folder)
        assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
        assert result.stderr.strip().startswith(message), result.stderr


def test_resuming_with_other_settings_names_each_key_and_both_values(trained_cell):
    from suite.cli import CheckpointError
    from suite.config import TrainSettings
    from suite.training import check_cell

    _, _, settings = trained_cell
    changed = TrainSettings(settings.config | {"CIFAR10": settings.config["CIFAR10"] | {"num_epochs": 5},
                                               "batch_size_train": 8}, settings.modality)
    with pytest.raises(CheckpointError) as error:
        check_cell(changed, continue_train=True, overwrite=False)
    assert ("differs in: CIFAR10.num_epochs: 2 recorded, 5 now; batch_size_train: 16 recorded, 8 now)"
            in str(error.value))


def test_folder_commands_say_where_they_wrote_and_what_their_columns_mean(trained_cell):
    from suite.commands import evaluate_folder, explanation_accuracy
    from suite.journal.majority_vote_eval import majority_vote_folder

    _, _, settings = trained_cell
    cell, cpu = settings.cell_folder, CheckpointOptions(device="cpu")
    for command, name in ((lambda out: evaluate_folder(str(cell), cpu, out=out, note=out), "eval_dir.json"),
                          (lambda out: evaluate_folder(str(cell), cpu, passes=2, out=out, note=out),
                           "eval_dir_passes=2.json"),
                          (lambda out: explanation_accuracy(str(cell), cpu, passes=1, out=out, note=out),
                           "explanation_accuracy_subset_passes=1.json"),
                          (lambda out: majority_vote_folder(str(cell), cpu, out=out, note=out), "majority_vote.json")):
        printed = []
        command(printed.append)
        assert printed[-1] == f"Saved {cell / name}" and (cell / name).is_file()
        if name == "majority_vote.json":
            first = next(i for i, line in enumerate(printed) if line.startswith("MVO: "))
            assert printed[first].startswith("MVO: majority vote of the classes the model predicts for the memory "
                                             "samples of positive weight; MVY: majority vote of those samples' true "
                                             "labels")
            assert "On a Run line, Accuracy is that run's; Mean Accuracy, MVO and MVY Accuracy and their Std Dev " \
                   "are over the runs so far" in printed[first] and printed[first].splitlines()[1].startswith("Run:1 ")


# ---- 5, 6, 8. grids: sweeps, reuse, dry runs, reports ---------------------------------------------------
def test_a_dry_run_prints_a_line_per_cell_and_runs_only_on_request():
    """config/table1.yaml is 3,780 runs in 252 cells: the dry run has a line per cell with its hours."""
    result = run_script("grid.py", "--grid=config/table1.yaml", "--dry_run")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    cells = [line for line in lines if re.match(r"^  \w+/\w+/\w+/\d+ +\d+ finished, \d+ to train, [\d,.]+ h$", line)]
    assert len(cells) == 252 and len(lines) < 252 + 12
    assert cells[0].split()[0] == "SVHN/std/mobilenet/1000" and "0 finished, 15 to train" in cells[0]
    assert lines[-1] == "(--list_runs: a line per run)"


def test_a_dry_run_names_the_runs_it_cannot_estimate_on_every_line(tmp_path):
    """A new encoder has no step times: the totals count the runs they estimate ("2 of 4 runs"), its cells
    say n/a instead of 0.00 h, and a plan none of whose encoders has a measured grid factor leaves nothing
    blank in the line."""
    from suite.grid import dry_run_lines, make_plan
    from suite.gridspec import load_grid
    from test_grid import write_tiny_grid

    grid = load_grid(write_tiny_grid(tmp_path, models=("shufflenet", "vit"), sizes=(40,), modalities=("std",)))
    profile = {"measured": "today", "models": {"vit": {"train_step": 1.0}},
               "grid": {"densenet": {"workers": 16, "mps": True, "throughput": 4.0}}}
    lines = dry_run_lines(make_plan(grid), {"profiles": {"Test GPU": profile}})
    total = next(line for line in lines if "device-hours for" in line)
    assert " device-hours for 2 of 4 runs on Test GPU one run at a time; " in total
    assert "with several workers per GPU (assumed 4.00x, the lowest measured, for vit);" in total
    assert "; without shufflenet (not in the profile)" in total and "measured: ;" not in total and "()" not in total
    cells = {line.split()[0]: line for line in lines if " finished, " in line}
    assert cells["DIGITS/std/shufflenet/40"].endswith("2 to train, n/a (shufflenet not in the profile)")
    assert re.search(r"DIGITS/std/vit/40 +0 finished, 2 to train, [\d.]+ h$", cells["DIGITS/std/vit/40"])


def test_a_sweep_trains_std_once_and_the_report_draws_it_as_a_reference(tmp_path):
    """A sweep of the memory size and sampling: Std reads neither, so it is one cell (not one per value);
    the report's sweep table names it once, its figure draws a reference line, the curves exist for every
    swept combination, and no title of the report runs past its figure's edges (one, two, three keys)."""
    from suite.grid import make_plan
    from suite.gridspec import load_grid
    from suite.report import write_report
    from suite.sweeps import sweep_figure
    from suite.training import train_run
    from test_grid import write_tiny_grid

    sweep = {"DIGITS.mem_examples": [5, 10], "memory_sampling": ["uniform", "class_balanced"]}
    grid = load_grid(write_tiny_grid(tmp_path, models=("vit",), sizes=(40,), modalities=("std", "memory"), runs=1,
                                     sweep=sweep))
    plan = make_plan(grid)
    labels = sorted(task.cell.label for task in plan.todo)
    assert labels == sorted(["DIGITS/std/vit/40"] + [f"DIGITS/memory/vit/40@DIGITS.mem_examples={m},memory_sampling={s}"
                                                     for m in (5, 10) for s in ("uniform", "class_balanced")])
    for task in plan.todo:
        train_run(task.settings, task.run)
    collected, paths = write_report(grid, tmp_path / "report")
    table = paths["sweep_DIGITS_mem_examples_md"].read_text()
    std = collected.stats[grid.cell("DIGITS", "vit", 40, "std")]
    assert table.count(f"Std reads no `DIGITS.mem_examples`: one cell for every value, {std.summary.text(1)}.") == 2
    figure = sweep_figure(collected, "DIGITS.mem_examples", (5, 10))
    reference = [line for axis in figure.axes for line in axis.lines if line.get_label().startswith("Std")]
    assert len(reference) == 2 and all(set(line.get_ydata()) == {std.summary.mean} for line in reference)
    # one legend under the panels (a legend inside a panel covered the Std line), naming every modality once
    assert not any(axis.get_legend() for axis in figure.axes) and len(figure.legends) == 1
    assert [text.get_text() for text in figure.legends[0].get_texts()] == [
        "Std (reads no DIGITS.mem_examples)", "Only Memory"]
    assert sorted(p.name for p in paths["curves"]) == sorted(
        f"DIGITS_vit_40@DIGITS.mem_examples={m},memory_sampling={s}.png" for m in (5, 10)
        for s in ("uniform", "class_balanced"))
    assert_titles_fit(figure)


def assert_titles_fit(figure) -> None:
    """Everything a figure draws lies inside it (a cut title is the symptom): each panel with its title,
    tick labels and legend, and the figure's own title and legend."""
    renderer = figure.canvas.get_renderer()
    figure.draw(renderer)
    width, height = figure.bbox.width, figure.bbox.height
    boxes = [(axis.get_title() or "a panel", axis.get_tightbbox(renderer)) for axis in figure.axes if axis.get_visible()]
    boxes += [(text.get_text(), text.get_window_extent(renderer)) for text in figure.texts if text.get_text()]
    boxes += [("the legend", legend.get_window_extent(renderer)) for legend in figure.legends]
    for name, box in boxes:
        assert box.x0 >= -1 and box.x1 <= width + 1 and box.y0 >= -1 and box.y1 <= height + 1, (name, box, width)


@pytest.mark.parametrize("keys", [1, 2, 3])
def test_no_title_of_a_sweep_report_is_cut(tmp_path, keys):
    """Sweep figures, Table 1's figure and training curves with one, two and three swept keys (hand-made
    records: no training)."""
    from suite.curves import curves_figure
    from suite.gridspec import load_grid
    from suite.report import accuracy_figure, collect
    from suite.sweeps import sweep_figure
    from test_grid import write_tiny_grid

    sweep = dict(list({"DIGITS.mem_examples": [5, 10], "memory_sampling": ["uniform", "class_balanced"],
                       "optimizer.learning_rate": [0.01, 0.02]}.items())[:keys])
    grid = load_grid(write_tiny_grid(tmp_path, models=("vit",), sizes=(40,), modalities=("std", "encoder_memory"),
                                     runs=1, sweep=sweep))
    collected = collect(grid)
    for key, values in grid.sweep:
        assert_titles_fit(sweep_figure(collected, key, values))
    assert_titles_fit(accuracy_figure(collected))
    rows = {1: [{"epoch": 1, "loss": 1.0, "train_accuracy": 50.0, "test_accuracy": None, "learning_rate": 0.1,
                 "seconds": 1.0}]}
    assert_titles_fit(curves_figure("DIGITS · ViT · 40 training images · " + ",".join(f"{k}=x" for k in sweep),
                                    {"std": rows}, str, {}, {"std": "trained with eval_every 0"}))


def test_a_grid_names_the_runs_it_reuses_under_other_non_science_settings(tmp_path):
    """Runs trained with eval_every 0 count for a grid that asks eval_every 1 (the numbers are the same),
    with a line saying so, and the curves' test panel says why a modality has no test curve."""
    from suite.curves import curves_figure, why_test_accuracy_missing
    from suite.grid import make_plan
    from suite.gridspec import load_grid
    from suite.training import train_run
    from test_grid import write_tiny_grid

    plain = load_grid(write_tiny_grid(tmp_path, models=("vit",), sizes=(40,), modalities=("std",), runs=2))
    for task in make_plan(plain).todo:
        train_run(task.settings, task.run)
    asking = load_grid(write_tiny_grid(tmp_path, name="asking", models=("vit",), sizes=(40,), modalities=("std",),
                                       runs=2, extra=("eval_every=1",)))
    plan = make_plan(asking)
    assert not plan.todo and len(plan.done) == 2
    assert plan.reuse_notes() == ["note: 2 finished run(s) trained with eval_every 0 are reused as they are (this "
                                  "grid: eval_every 1); their metrics hold test accuracies as those runs were asked "
                                  "(the curves say so)"]
    records = {task.run: record for task, record in plan.done}
    assert why_test_accuracy_missing(records) == "trained with eval_every 0"
    rows = {run: [{"epoch": 1, "loss": 1.0, "train_accuracy": 50.0, "test_accuracy": None, "learning_rate": 0.1,
                   "seconds": 1.0}] for run in records}
    with_test = {1: [dict(rows[1][0], test_accuracy=60.0)]}
    figure = curves_figure("t", {"std": rows, "encoder_memory": with_test}, str, {},
                           {"std": why_test_accuracy_missing(records)})
    texts = [text.get_text() for axis in figure.axes for text in axis.texts]
    assert texts == ["not logged: std (trained with eval_every 0)"]


def test_the_table_has_a_paper_line_only_beside_paper_numbers(tmp_path):
    from suite.gridspec import load_grid
    from suite.report import collect, markdown
    from test_grid import write_tiny_grid

    collected = collect(load_grid(write_tiny_grid(tmp_path, models=("vit",), sizes=(40,), modalities=("std",))))
    assert "Paper:" not in markdown(collected)


def test_grid_workers_say_which_run_and_epoch_they_are_in(tmp_path):
    """Off a terminal a grid worker names the run it starts and, every --log_interval steps, the run, its
    epoch and the rest of a training progress line."""
    from test_grid import grid_cli, write_tiny_grid

    path = write_tiny_grid(tmp_path, models=("vit",), sizes=(40,), modalities=("std",), runs=1, epochs=2)
    result = grid_cli(f"--grid={path}", "--log_interval=1", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    lines = result.stdout.splitlines()
    assert "worker 0: starting DIGITS/std/vit/40 run 1" in lines
    assert f"Run files: {tmp_path / 'models'}/DATASET/MODALITY/MODEL/TRAIN_EXAMPLES/ (see the cells' labels)" in lines
    progress = [line for line in lines if line.startswith("DIGITS/std/vit/40 run 1 [worker 0")]
    epochs = [re.search(r"\] \| epoch (\d)/2 \| step \d+/\d+ \| loss \d+\.\d{4} \| lr \S+ \| \d+ img/s \| elapsed "
                        r"\S+ \| left ~\S+$", line) for line in progress]
    assert progress and all(epochs) and {m.group(1) for m in epochs} == {"1", "2"}, progress


def test_the_report_modules_import_one_way():
    """report.py draws on sweeps.py, curves.py and the journal comparison; none of them imports the report."""
    import ast

    for module in ("sweeps", "curves", "journal/comparison"):
        tree_ = ast.parse((REPO / "suite" / f"{module}.py").read_text())
        imported = {node.module for node in ast.walk(tree_) if isinstance(node, ast.ImportFrom) and node.module}
        assert not {name for name in imported if name.split(".")[-1] == "report"}, (module, imported)


# ---- what the walk-through from outside found (issue 25, its closing practice) -------------------------
def test_overwrite_also_drops_the_results_computed_from_the_runs_it_deletes(tmp_path, tiny_dataset_dir):
    """eval_dir.json, the explanation and quality results of the old runs go with them (they would describe
    runs that are gone); the autoencoders stay (they depend on the split, not the model); nothing else."""
    from suite.config import TrainSettings, load_config
    from suite.training import train_cell

    settings = TrainSettings(load_config(journey_config(tmp_path, tiny_dataset_dir, runs=1)), "encoder_memory")
    train_cell(settings, out=lambda _: None)
    cell = settings.cell_folder
    results = ["eval_dir.json", "eval_dir_passes=2.json", "majority_vote.json", "explanation_accuracy_subset.json",
               "example_quality.md", "counterfactual_quality_beta=0.2.csv", "counterfactuals_run1.png"]
    for name in results + ["notes.txt"]:
        (cell / name).write_text("from the old runs")
    (cell / "autoencoders" / "run_1").mkdir(parents=True)
    (cell / "autoencoders" / "run_1" / "full.pt").write_text("an autoencoder")
    printed = []
    train_cell(settings, overwrite=True, out=printed.append)
    assert not any((cell / name).exists() for name in results)
    assert (cell / "notes.txt").exists() and (cell / "autoencoders" / "run_1" / "full.pt").exists()
    line = next(line for line in printed if line.startswith("--overwrite: deleted"))
    assert line.endswith(f"and {len(results)} result file(s) computed from them ({', '.join(sorted(results))})")


def test_a_report_keeps_its_folder_one_reports_files_and_never_replaces_a_report_with_an_empty_one(tmp_path):
    """Nothing finished: an error, nothing written (an all-missing table says nothing). A report's own stale
    files go, a user's file stays, and an empty models folder never replaces a report."""
    from suite.gridspec import load_grid
    from suite.report import write_report
    from suite.training import train_run
    from test_grid import write_tiny_grid

    grid = load_grid(write_tiny_grid(tmp_path, models=("vit",), sizes=(40,), modalities=("std",), runs=1))
    out = tmp_path / "report"
    with pytest.raises(UserError, match=r"no run records under '.*models': nothing to report \(check the grid's "
                                        r"models_dir, or --models_dir; `grid.py --dry_run` lists the cells\)$"):
        write_report(grid, out)
    assert not out.exists()
    train_run(grid.cell_settings(grid.cells()[0]), 1)
    other = load_grid(write_tiny_grid(tmp_path, name="other", models=("vit",), sizes=(60,), modalities=("std",), runs=1))
    with pytest.raises(UserError, match=r"^1 run record\(s\) under '.*models', none of this grid's cells: nothing to "
                                        r"report \(check"):
        write_report(other, tmp_path / "other_report")
    assert not (tmp_path / "other_report").exists()
    write_report(grid, out)
    (out / "curves" / "DIGITS_vit_99.png").write_bytes(b"a curve of an earlier report")
    manifest = json.loads((out / "report.json").read_text())
    manifest["files"].append("curves/DIGITS_vit_99.png")
    (out / "report.json").write_text(json.dumps(manifest))
    (out / "mine.txt").write_text("a user's file")
    before = tree(out)
    with pytest.raises(UserError, match=r"no run records under '.*nowhere': nothing to report; the report in "
                                        r"'.*report' is kept"):
        write_report(grid, out, tmp_path / "nowhere")
    assert tree(out) == before
    write_report(grid, out)
    assert not (out / "curves" / "DIGITS_vit_99.png").exists() and (out / "mine.txt").exists()
    assert (out / "curves" / "DIGITS_vit_40.png").exists()


def test_majority_votes_of_checkpoints_the_records_no_longer_hold_are_left_out(tmp_path):
    from suite.journal.comparison import read_votes

    expected = {"model": "vit"}
    votes = {"runs": [{"run": run, "mvo_accuracy": 50.0, "mvy_accuracy": 60.0, "settings": expected,
                       "recorded_accuracy": accuracy} for run, accuracy in ((1, 81.5), (2, 70.0), (3, 90.0))]}
    (tmp_path / "majority_vote.json").write_text(json.dumps(votes))
    kept, notes = read_votes(tmp_path / "majority_vote.json", 3, expected, {1: 81.5, 2: 72.25})
    assert sorted(kept) == [1]  # run 2 was trained again (another recorded accuracy), run 3 is gone
    assert notes == [f"'{tmp_path / 'majority_vote.json'}': run(s) 2, 3 left out: voted with a checkpoint that the "
                     "cell's records no longer hold (trained again, or deleted); recompute with python3 eval_dir.py "
                     f"--majority_vote --path={tmp_path}"]


def test_a_config_that_leaves_optional_keys_out_describes_the_same_run(tmp_path):
    """A DIGITS section giving only its epochs and quickstart.yaml's full one are the same run: no
    'differs in num_classes: 10 recorded, null now'."""
    from suite.config import TrainSettings, load_config

    (tmp_path / "mine.yaml").write_text("model: shufflenet\ntrain_examples: 1000\nruns: 1\ndataset_name: DIGITS\n"
                                        "download: false\nDIGITS:\n  num_epochs: 20\n")
    mine = TrainSettings(load_config(tmp_path / "mine.yaml"), "encoder_memory")
    quickstart = TrainSettings(load_config(REPO / "config" / "quickstart.yaml"), "encoder_memory")
    assert mine.comparable_json() == quickstart.comparable_json()


def test_a_std_run_is_the_same_run_whatever_memory_settings_are_given(tmp_path):
    """Std reads no memory size, memory sampling or evaluation passes: they do not make another std
    run (train.py --continue_train, or a grid given --set memory_sampling=...), but they do for a memory model."""
    from suite.config import TrainSettings, load_config

    base = load_config(REPO / "config" / "quickstart.yaml")
    other = load_config(REPO / "config" / "quickstart.yaml", ["DIGITS.mem_examples=20", "memory_sampling=class_balanced",
                                                               "eval_passes=3", "SVHN.num_epochs=1"])
    assert TrainSettings(base, "std").comparable_json() == TrainSettings(other, "std").comparable_json()
    for memory in ("memory", "encoder_memory", "matching", "protonet"):
        changed = {key.split(".")[0] for key in _differences(TrainSettings(base, memory), TrainSettings(other, memory))}
        assert changed == {"DIGITS", "memory_sampling", "eval_passes"}, memory  # another dataset's section: none


def _differences(a, b) -> list[str]:
    from suite.config import settings_difference

    return settings_difference(a.comparable_json(), b.comparable_json())


@pytest.mark.parametrize("override, message", [
    ("label_smoothing=2", "config key 'label_smoothing' must be a number from 0 to 1 (excluded), got 2"),
    ("optimizer.momentum=5", "config key 'optimizer.momentum' must be a number from 0 to 1, got 5"),
    ("optimizer.learning_rate=0", "config key 'optimizer.learning_rate' must be a number above 0, got 0"),
])
def test_values_a_typo_puts_out_of_range_are_refused(override, message):
    from suite.cli import ConfigError
    from suite.config import load_config

    with pytest.raises(ConfigError, match=re.escape(message)):
        load_config(REPO / "config" / "quickstart.yaml", [override])


def test_continue_train_says_what_it_keeps_and_what_it_goes_on_with(trained_cell, tmp_path):
    """--continue_train names the finished runs it keeps, those beyond `runs`, a run resumed under another
    eval_every, and milestones the epochs never reach."""
    from suite.config import TrainSettings
    from suite.training import train_cell, train_run

    import shutil

    folder, _, shared = trained_cell
    shutil.copytree(shared.cell_folder, tmp_path / "models" / shared.cell_folder.relative_to(folder / "models"))
    settings = TrainSettings(shared.config | {"models_dir": str(tmp_path / "models")}, shared.modality)
    one = TrainSettings(settings.config | {"runs": 1, "eval_every": 1}, settings.modality)
    printed = []
    train_cell(one, continue_train=True, out=printed.append)
    assert "Keeping finished run(s) 1 of 1; nothing left to train" in printed
    assert ("note: the cell also holds finished run(s) 2, beyond runs=1: they are kept but not counted here"
            in printed)
    assert ("note: 1 finished run(s) were trained with eval_every 0 (now 1); their metrics hold test accuracies as "
            "those runs were asked (the curves say so)") in printed
    four = TrainSettings(settings.config | {"runs": 3, "CIFAR10": settings.config["CIFAR10"] | {"num_epochs": 2}},
                         settings.modality)

    def stop(stats, state):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train_run(four, 3, epoch_callbacks=[stop])  # run 3 interrupted after its first epoch, eval_every 0
    lines = []
    import suite.training as training

    original = training.print_line
    training.print_line = lines.append
    try:
        train_run(TrainSettings(four.config | {"eval_every": 2}, four.modality), 3)
    finally:
        training.print_line = original
    assert [line for line in lines if "3.resume.pt" in line] == [
        f"Resuming from '{settings.cell_folder / '3.resume.pt'}': epochs 1-1 of 2 done, going on with epoch 2",
        f"note: '{settings.cell_folder / '3.resume.pt'}' (epoch 1) was trained with eval_every 0, it goes on with "
        "eval_every 2; their metrics hold test accuracies as those runs were asked (the curves say so)"]


def test_output_paths_of_the_wrong_kind_are_refused_before_any_work(trained_cell, tmp_path):
    from suite.commands import evaluate_checkpoint, memory_images
    from suite.config import TrainSettings
    from suite.training import check_cell

    _, _, settings = trained_cell
    with pytest.raises(UserError, match=r"--json='.*' is a folder; --json takes a file name"):
        evaluate_checkpoint(str(settings.cell_folder / "1.pt"), ONE, json_path=str(tmp_path))
    (tmp_path / "e.json").write_text("{}")
    with pytest.raises(UserError, match=r"--out_dir: '.*e.json' is a file, not a folder"):
        memory_images(str(settings.cell_folder / "1.pt"), ONE, out_dir=tmp_path / "e.json", out=lambda _: None)
    with pytest.raises(UserError, match=r"models_dir: '.*e.json' is a file, not a folder \(in the path of"):
        check_cell(TrainSettings(settings.config | {"models_dir": str(tmp_path / "e.json")}, settings.modality),
                   False, False)


def test_interrupted_scripts_say_what_is_kept_and_how_to_go_on(capsys):
    from suite.cli import INTERRUPTED, INTERRUPTED_TRAINING, user_errors

    def interrupted(argv):
        raise KeyboardInterrupt

    for wrapped, expected in ((user_errors(interrupted), INTERRUPTED),
                              (user_errors(interrupted=INTERRUPTED_TRAINING)(interrupted), INTERRUPTED_TRAINING)):
        with pytest.raises(SystemExit) as exit_code:
            wrapped(["script"])
        assert exit_code.value.code == 130 and capsys.readouterr().err.strip() == expected
    assert "--continue_train" not in INTERRUPTED


def test_a_resume_file_given_as_a_checkpoint_says_what_it_is(tmp_path):
    import torch

    from suite.restore import folder_runs
    from suite.run_files import load_checkpoint

    torch.save({"settings": {}, "state": {}, "epochs": []}, tmp_path / "1.resume.pt")
    with pytest.raises(UserError, match=r"1.resume.pt' is the resume file of an interrupted run .*train.py "
                                        r"--continue_train"):
        load_checkpoint(tmp_path / "1.resume.pt")
    with pytest.raises(UserError, match=r"holds no run checkpoints \(<N>.pt\); it holds interrupted run\(s\) "
                                        r"\(1.resume.pt\): finish them with train.py --continue_train"):
        folder_runs(tmp_path, note=lambda _: None)


def test_a_method_without_a_baseline_refuses_the_flag(trained_cell):
    from suite.commands import heatmaps

    _, _, settings = trained_cell
    with pytest.raises(UserError, match="--baseline does not apply to --method=saliency, which uses no baseline"):
        heatmaps(str(settings.cell_folder / "1.pt"), ONE, method="saliency", baseline="white", out=lambda _: None)


def test_a_grid_run_from_another_folder_says_why_its_configs_are_not_found(tmp_path, monkeypatch):
    from suite.cli import ConfigError
    from suite.grid import make_plan
    from suite.gridspec import load_grid

    grid = load_grid(REPO / "config" / "ablation_memory.yaml", ["DIGITS.mem_examples=20"])
    assert grid.override_notes() == ["note: DIGITS.mem_examples is swept by the grid: the sweep's values apply, not "
                                     "the override's"]
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError, match=rf"config file 'config/quickstart.yaml' not found in the current folder, "
                                          rf"'{tmp_path}' \(a grid file's relative paths are read from the current "
                                          r"folder: run grid.py from the folder they are relative to"):
        make_plan(grid)


def test_a_grid_stopped_with_ctrl_c_leaves_no_lock_behind(tmp_path):
    """Ctrl-C stops the grid's workers; each releases its run's lock on the way out (a stale lock would
    only be broken later), keeps its finished epochs, and the grid says how to go on."""
    import signal
    import time

    from test_grid import grid_env, write_tiny_grid

    path = write_tiny_grid(tmp_path, models=("vit",), sizes=(40,), modalities=("std",), runs=2, epochs=100000)
    process = subprocess.Popen([sys.executable, str(REPO / "grid.py"), f"--grid={path}", "--workers=2"],
                               cwd=tmp_path, env=grid_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    models = tmp_path / "models"
    deadline = time.monotonic() + 600  # generous: a loaded machine starts workers slowly
    while len(list(models.rglob("*.resume.pt"))) < 2:  # both workers have finished an epoch
        assert process.poll() is None and time.monotonic() < deadline, process.communicate()
        time.sleep(0.1)
    assert len(list(models.rglob("*.lock"))) == 2
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=300)
    assert process.returncode == 130 and "rerun the same command to resume" in stderr
    assert not list(models.rglob("*.lock")) and len(list(models.rglob("*.resume.pt"))) == 2


def test_the_report_reads_each_cell_from_its_own_folder_only(tmp_path):
    """A backup copy of a cell folder (with an edited record) and another models folder inside this one
    hold records of the grid's cells: the report leaves them out and says where they are, instead of
    letting the copy replace a run."""
    import shutil

    from suite.grid import make_plan
    from suite.gridspec import load_grid
    from suite.report import collect
    from suite.training import train_run
    from test_grid import write_tiny_grid

    grid = load_grid(write_tiny_grid(tmp_path, models=("vit",), sizes=(40,), modalities=("std",), runs=1))
    for task in make_plan(grid).todo:
        train_run(task.settings, task.run)
    models = tmp_path / "models"
    cell = models / "DIGITS" / "std" / "vit" / "40"
    real = json.loads((cell / "1.json").read_text())["accuracy"]
    backup = cell.parent / "40_backup"
    shutil.copytree(cell, backup)
    record = json.loads((backup / "1.json").read_text())
    (backup / "1.json").write_text(json.dumps(record | {"accuracy": 55.0}))
    shutil.copytree(models / "DIGITS", models / "old" / "DIGITS")
    collected = collect(grid)
    assert collected.stats[grid.cell("DIGITS", "vit", 40, "std")].accuracies == (real,)
    note = next(n for n in collected.notes if "outside their cell's folder" in n)
    assert note.startswith("3 record(s)") and str(backup) in note and str(models / "old") in note
