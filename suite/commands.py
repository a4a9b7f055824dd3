"""The bodies of the five evaluation and explanation scripts, callable in-process.

eval.py, eval_dir.py, explanation_accuracy.py, generate_memory_images.py and generate_heatmaps.py
only parse flags and call one function here. Every function prints through `out` (stdout by
default) and notes through `note` (stderr), and returns what it printed in machine-readable form.
"""
from __future__ import annotations

import hashlib
import itertools
import json
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

import torch

from .run_files import check_output_file, check_output_folder, check_writable, write_output
from .data import undo_normalization
from .cli import UserError, track
from .evaluation import evaluate
from .config import TrainSettings, cell_folder
from .restore import CheckpointOptions, RestoredRun, folder_runs, read_checkpoint, restore_run
from .stats import Summary, mean_and_std, summarize

Printer = Callable[[str], None]
DEFAULTS = CheckpointOptions()

# Defaults of the scripts' own flags, defined once (the flags and these functions read them here).
EVAL_PASSES = 10  # eval.py, as the original
EXPLANATION_PASSES = 5  # explanation_accuracy.py, as the original
MEMORY_IMAGES_PER_FIGURE, MEMORY_IMAGES_MAX = 3, 30
HEATMAPS_PER_FIGURE, HEATMAPS_MAX = 1, 10


def stderr(message: str) -> None:
    print(message, file=sys.stderr)


def write_json(path: str | Path, payload: dict) -> Path:
    """Strict JSON (a NaN is refused: missing values are null), atomically."""
    return write_output(path, (json.dumps(payload, indent=2, sort_keys=True, allow_nan=False) + "\n").encode())


def _describe(restored: RestoredRun) -> str:
    run = f"run {restored.run}, " if restored.run is not None else ""
    s = restored.settings
    return (f"Checkpoint:{restored.path} ({s.dataset_name} {s.modality} {s.model}, {s.train_examples} training images, "
            f"{run}seed {restored.seed})")


def _cell(checkpoint: dict) -> tuple:
    return (checkpoint["dataset_name"], checkpoint["modality"], checkpoint["model_name"], checkpoint["train_examples"])


def check_folder(runs: list[tuple[int, Path]], options: CheckpointOptions,
                 require_memory: bool = False) -> list[tuple[int, Path]]:
    """Read every run of a folder first: wrong flags, std models, mixed cells or two files holding the
    same run fail before any work. Returns (the run each file holds, its path), in run order."""
    from .restore import held_run, require_memory_model

    cells, runs_held = {}, []
    for _, path in runs:
        checkpoint = read_checkpoint(path, options)
        if require_memory:
            require_memory_model(checkpoint, path)
        cells.setdefault(_cell(checkpoint), path)
        runs_held.append((held_run(checkpoint, path), path))
    if len(cells) > 1:
        (a, first), (b, second) = list(cells.items())[:2]
        raise UserError(f"the folder mixes runs of different cells ('{first}' is {'/'.join(map(str, a))}, "
                        f"'{second}' is {'/'.join(map(str, b))}); point it at one cell's folder")
    held: dict[int, Path] = {}
    for run, path in runs_held:
        if run in held:
            raise UserError(f"'{held[run]}' and '{path}' hold the same run {run} (copies?); a folder's mean and "
                            "std count each run once: keep one of them")
        held[run] = path
    return sorted(held.items())


STD_KIND = "population (ddof=0) over runs"


@dataclass
class FolderResults:
    """What `each_run` collected from a cell folder: one record per run, `{run, checkpoint, seed,
    minutes}` plus what the command measured."""

    folder: Path
    cell: str  # DATASET/MODALITY/MODEL/TRAIN_EXAMPLES
    device: str
    runs: list[dict]
    settings: TrainSettings  # the cell's (the runs differ in their seed only), with the command's options
    trained: dict  # the cell's training config as its checkpoints hold it (before the command's options)

    def name(self, stem: str, chosen: dict, defaults: dict) -> str:
        """`result_name` of this folder's results: `chosen` options against `defaults` (None: the value the
        cell was trained with, e.g. its batch_size_test)."""
        return result_name(stem, chosen, {k: self.trained.get(k) if v is None else v for k, v in defaults.items()})

    def summary(self, *keys: str) -> dict:
        """key -> {"mean", "std", "n", "ci_low", "ci_high"} over the runs (population std; 95 % CI of the
        mean, None below 2 runs; a run without a value is left out)."""
        return {key: asdict(summarize([run[key] for run in self.runs])) for key in keys}

    def payload(self, **extra) -> dict:
        return {"folder": str(self.folder), "cell": self.cell, "device": self.device, "runs": self.runs,
                "std_kind": STD_KIND} | extra


def each_run(folder: str | Path, options: CheckpointOptions, measure: Callable[[RestoredRun], dict],
             line: Callable[[dict, list[dict]], str | None] = lambda record, records: None, *,
             require_memory: bool = False, require: Callable[[dict, Path], None] | None = None,
             out: Printer = print, note: Printer = stderr) -> FolderResults:
    """The one loop over the runs of a cell folder, behind every folder command: the `<N>.pt` files, all
    checked before any work (one cell, each run once; memory models if `require_memory`; then
    `require(checkpoint, path)` on the first), then in the order of the runs they hold: restore,
    `measure`, time, and print `line(record, records so far)` (None: nothing).

    A run is numbered by its checkpoint (train.py records it with the seed), not by its file name, so
    a renamed or moved copy gives the same records; a name that disagrees gets a note."""
    files = folder_runs(folder, note)
    named = {path: number for number, path in files}
    runs = check_folder(files, options, require_memory)
    for run, path in runs:
        if named[path] != run:
            note(f"note: '{path}' holds run {run}, not run {named[path]}: it is counted as run {run}")
    if require is not None:
        require(read_checkpoint(runs[0][1], options), runs[0][1])
    out(f"Device:{options.torch_device}")
    records: list[dict] = []
    for run, path in runs:
        started = time.perf_counter()
        restored = restore_run(path, options, require_memory=require_memory)
        record = {"run": restored.run, "checkpoint": str(path), "seed": restored.seed,
                  "recorded_accuracy": restored.checkpoint.get("accuracy")} | measure(restored)
        record["minutes"] = (time.perf_counter() - started) / 60
        records.append(record)
        text = line(record, records)
        if text is not None:
            out(text)
    return FolderResults(Path(folder), restored.label, str(options.torch_device), records, restored.settings,
                         restored.trained_config)


def write_results(folder: str | Path, name: str, payload: dict, json_path: str | None = None,
                  tables: dict[str, str] | None = None) -> list[str]:
    """A folder command's files: `<folder>/<name>.json` (or `json_path`; "" writes none) and each
    `<folder>/<name>.<suffix>` of `tables`; their paths are recorded in the payload and returned."""
    written = []
    for suffix, text in (tables or {}).items():
        written.append(str(write_output(Path(folder) / f"{name}.{suffix}", text.encode())))
    target = Path(folder) / f"{name}.json" if json_path is None else json_path
    if target:
        payload["json"] = str(target)
        payload["files"] = written + [str(target)]
        written.append(str(write_json(target, payload)))
    return written


def option_text(value) -> str:
    """An option's value as result names show it (true / false, lists without spaces)."""
    return json.dumps(value, separators=(",", ":")) if not isinstance(value, str) else value


LONGEST_SUFFIX = 100  # characters of `key=value,...` in a file name; longer: a digest of them


def result_name(stem: str, chosen: dict, defaults: dict) -> str:
    """`stem`, plus `_key=value,...` for every result-changing option that differs from its default
    (in `chosen`'s order): two invocations whose results differ never share a file, and the defaults
    keep the plain name that other commands (the report) read. Past LONGEST_SUFFIX characters the
    suffix is `_options-<12 hex digits of its SHA-256>` (the results' JSON holds the options)."""
    changed = ",".join(f"{key}={option_text(value)}" for key, value in chosen.items() if value != defaults.get(key))
    if len(changed) > LONGEST_SUFFIX:
        changed = "options-" + hashlib.sha256(changed.encode()).hexdigest()[:12]
    return stem + ("_" + changed if changed else "")


def _cumulative(records: list[dict], key: str) -> tuple[float, float]:
    return mean_and_std([record[key] for record in records])


# ---- eval.py ------------------------------------------------------------------------------------
def evaluate_checkpoint(path: str, options: CheckpointOptions = DEFAULTS, passes: int = EVAL_PASSES,
                        json_path: str | None = None, out: Printer = print) -> dict:
    """One checkpoint: std models one pass, memory models `passes` passes (mean accuracy, last loss)."""
    if passes < 1:
        raise UserError(f"--passes must be at least 1, got {passes}")
    check_output_file(json_path, "--json")
    restored = restore_run(path, options)
    out(f"Device:{restored.device}")
    out(_describe(restored))
    if not restored.model.uses_memory and passes != EVAL_PASSES:
        out(f"note: a {restored.settings.modality} model draws no memory: one pass, not {passes}")
    passes = passes if restored.model.uses_memory else 1
    result = evaluate(restored.model, restored.data, passes)
    line = f"Loss:{result.loss:.4f} | Accuracy {result.accuracy:.2f}"
    out(line + (f" | Passes:{passes}" if restored.model.uses_memory else ""))
    payload = {"checkpoint": str(restored.path), "cell": restored.label, "seed": restored.seed, "run": restored.run,
               "device": str(restored.device), "passes": passes, "accuracy": result.accuracy, "loss": result.loss,
               "pass_accuracies": list(result.pass_accuracies),
               "batch_size_test": restored.settings.config["batch_size_test"]}
    if json_path:
        saved(out, [str(write_json(json_path, payload))])
    return payload


# ---- eval_dir.py --------------------------------------------------------------------------------
def evaluate_folder(folder: str, options: CheckpointOptions = DEFAULTS, passes: int | None = None,
                    json_path: str | None = None, out: Printer = print, note: Printer = stderr) -> dict:
    """Every `<N>.pt` run of a folder, then mean and population std of the accuracies.

    Memory models get `passes` passes; by default each run's own `eval_passes` (5 unless the training
    config changed it, the original's count), so that the numbers are those train.py printed.
    """
    if passes is not None and passes < 1:
        raise UserError(f"--passes must be at least 1, got {passes}")
    check_output_file(json_path, "--json")

    def measure(restored: RestoredRun) -> dict:
        count = (passes or restored.settings.config["eval_passes"]) if restored.model.uses_memory else 1
        result = evaluate(restored.model, restored.data, count)
        return {"passes": count, "accuracy": result.accuracy, "loss": result.loss,
                "pass_accuracies": list(result.pass_accuracies)}

    def line(record: dict, records: list[dict]) -> str:
        mean, std = _cumulative(records, "accuracy")
        return (f"Run:{record['run']} | Accuracy {record['accuracy']:.2f} | Mean Accuracy:{mean:.2f} | "
                f"Std Dev:{std:.2f} | E:{record['minutes']:.2f}min")

    results = each_run(folder, options, measure, line, out=out, note=note)
    summary = results.summary("accuracy")
    accuracy = Summary(**summary["accuracy"])
    out(f"Mean Accuracy:{accuracy.mean:.2f} | Std Dev Accuracy:{accuracy.std:.2f} | Runs:{accuracy.n} | "
        f"95% CI:{accuracy.interval_text()}")
    payload = results.payload(summary=summary)
    name = results.name("eval_dir", evaluation_options(results, passes),
                        {"passes": results.trained["eval_passes"], "batch_size_test": None})
    saved(out, write_results(folder, name, payload, json_path))
    return payload


def evaluation_options(results: FolderResults, passes: int | None) -> dict:
    """The options that change an evaluation's numbers, as applied: passes and the test batch size."""
    return {"passes": passes or results.trained["eval_passes"],
            "batch_size_test": results.settings.config["batch_size_test"]}


def saved(out: Printer, paths: list[str]) -> None:
    """Every command says where it wrote."""
    if paths:
        out("Saved " + ", ".join(str(path) for path in paths))


# ---- explanation_accuracy.py --------------------------------------------------------------------
def explanation_line(summary: dict) -> str:
    """The final line, in the form of the original README's "Expected Output" (tab separated)."""
    from .explain import format_value as f

    (em, es), (cm, cs), (xm, xs) = ((summary[k]["mean"], summary[k]["std"]) for k in EXPLANATION_KEYS)
    return (f"Explanation accuracy (mean):{f(em)}\t(std_dev):{f(es)}\tcounterfactual acc mean:{f(cm)}\t"
            f"counterfactual std:{f(cs)}\texample acc mean:{f(xm)}\texample std:{f(xs)}")


EXPLANATION_KEYS = ("explanation_accuracy", "counterfactual_accuracy", "example_accuracy")


def explanation_accuracy(folder: str, options: CheckpointOptions = DEFAULTS, passes: int = EXPLANATION_PASSES,
                         memory_pool: str = "subset", json_path: str | None = None, out: Printer = print,
                         note: Printer = stderr) -> dict:
    """Explanation accuracy (Table 5), counterfactual accuracy (Table 6) and example accuracy of every
    memory model of a folder: `passes` passes per model, then mean and population std over the models."""
    from .explain import MEMORY_POOLS, explain_run, format_value

    if passes < 1:
        raise UserError(f"--passes must be at least 1, got {passes}")
    if memory_pool not in MEMORY_POOLS:
        raise UserError(f"--memory_pool must be one of {', '.join(MEMORY_POOLS)}, got '{memory_pool}'")
    check_output_file(json_path, "--json")

    def line(record: dict, records: list[dict]) -> str:
        cases = record["passes"]
        share = 100 * sum(p["counterfactual_total"] for p in cases) / sum(p["total"] for p in cases)
        return (f"Run:{record['run']} | Explanation accuracy:{record['explanation_accuracy']:.2f} | "
                f"Counterfactual acc:{format_value(record['counterfactual_accuracy'])} | "
                f"Example acc:{format_value(record['example_accuracy'])} | Counterfactual cases:{share:.2f}% | "
                f"Models:{len(records)}")

    results = each_run(folder, options, lambda restored: explain_run(restored, passes, memory_pool).as_dict(), line,
                       require_memory=True, out=out, note=note)
    summary = results.summary(*EXPLANATION_KEYS)
    out("")
    out(explanation_line(summary))
    for key in EXPLANATION_KEYS:  # a mean "± 0.00" over one run reads like agreement between runs
        if summary[key]["n"] < len(results.runs):
            out(f"note: {key.replace('_', ' ')} is over {summary[key]['n']} of {len(results.runs)} runs (the others "
                "had no such case)")
    payload = results.payload(memory_pool=memory_pool, passes=passes, summary=summary,
                              missing_values="null where a group had no cases")
    name = results.name(f"explanation_accuracy_{memory_pool}",
                        {"passes": passes, "batch_size_test": results.settings.config["batch_size_test"]},
                        {"passes": EXPLANATION_PASSES, "batch_size_test": None})
    saved(out, write_results(folder, name, payload, json_path))
    return payload


# ---- generate_memory_images.py ------------------------------------------------------------------
def _check_max_images(max_images: int) -> None:
    if max_images < 0:
        raise UserError(f"--max_images must be 0 (the whole test set) or more, got {max_images}")


FIGURES_MANIFEST = "figures.json"


def run_name(restored: RestoredRun) -> str:
    """`run<N>` (the checkpoint's run), or `seed<k>` for a checkpoint of the original suite with no run number."""
    return f"run{restored.run}" if restored.run is not None else f"seed{restored.seed}"


def figure_folder(images_dir: str | Path, kind: str, restored: RestoredRun, name: str) -> Path:
    """images/<kind>/DATASET/MODALITY/MODEL/TRAIN_EXAMPLES[@tag]/<name>: the cell's path under the
    models folder, then what drew the figures (the run, and the method and options that change them)."""
    s = restored.settings
    return cell_folder(Path(images_dir) / kind, s.dataset_name, s.modality, s.model, s.train_examples,
                       s.config["cell_tag"]) / name


def file_digest(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


class FigureFolder:
    """A folder of figures drawn by one command from one checkpoint with one set of result-changing
    options, recorded in its `figures.json`: a rerun of the same command replaces its own figures; any
    other command or checkpoint is refused before anything is drawn, unless `overwrite`, which deletes
    the figures the manifest lists (and only those) first."""

    def __init__(self, folder: Path, identity: dict, checkpoint: Path, overwrite: bool = False, note: Printer = stderr):
        self.folder, self.identity, self.checkpoint = Path(folder), identity, str(checkpoint)
        check_output_folder(self.folder, "--out_dir")
        manifest = self.folder / FIGURES_MANIFEST
        held = self._read(manifest)
        if held is not None and held.get("identity") == identity:
            self.files = [name for name in held.get("files", []) if isinstance(name, str)]
            return
        if held is not None or (self.folder.is_dir() and any(self.folder.iterdir())):
            what = (held_description(held, identity, self.checkpoint) if held is not None
                    else "files that this command did not write")
            if not overwrite:
                raise UserError(f"'{self.folder}' holds {what}; pass --out_dir=another folder, or --overwrite to "
                                "replace them")
            listed = [name for name in (held or {}).get("files", []) if isinstance(name, str) and "/" not in name]
            check_writable(self.folder)
            for name in listed:
                (self.folder / name).unlink(missing_ok=True)
            note(f"note: --overwrite: deleted {len(listed)} earlier figure(s) in '{self.folder}'")
        self.files = []
        self._save()

    @staticmethod
    def _read(manifest: Path) -> dict | None:
        if not manifest.exists():
            return None
        try:
            held = json.loads(manifest.read_text())
        except (OSError, ValueError):
            return {}
        return held if isinstance(held, dict) else {}

    def _save(self) -> None:
        write_json(self.folder / FIGURES_MANIFEST, {"checkpoint": self.checkpoint, "identity": self.identity,
                                                     "files": sorted(self.files)})

    def write(self, name: str, png: bytes) -> Path:
        """One figure, atomically; the manifest lists it before the figure exists."""
        if name not in self.files:
            self.files.append(name)
            self._save()
        return write_output(self.folder / name, png)


def held_description(held: dict, identity: dict, checkpoint: str) -> str:
    """What a figure folder's manifest says it holds, against what the command would draw from
    `checkpoint`."""
    theirs = held.get("identity") or {}
    if theirs.get("checkpoint_sha256") != identity["checkpoint_sha256"]:
        if held.get("checkpoint") == checkpoint:  # the same path, other bytes: the run was trained again
            return f"figures of an earlier checkpoint at '{checkpoint}' (it has changed since they were drawn)"
        return f"figures of another checkpoint ('{held.get('checkpoint', 'unknown')}')"
    if theirs.get("command") != identity["command"]:
        return f"figures of another command ({theirs.get('command')})"
    changed = sorted(k for k in set(theirs.get("options") or {}) | set(identity["options"])
                     if (theirs.get("options") or {}).get(k) != identity["options"].get(k))
    return f"figures of this checkpoint drawn with other options ({', '.join(changed)})"


def figure_identity(restored: RestoredRun, command: str, options: dict) -> dict:
    """What a folder's figures depend on: the command, the checkpoint's bytes and the options."""
    return {"command": command, "checkpoint_sha256": file_digest(restored.path), "options": options}


def memory_images(path: str, options: CheckpointOptions = CheckpointOptions(batch_size_test=MEMORY_IMAGES_PER_FIGURE),
                  max_images: int = MEMORY_IMAGES_MAX, images_dir: str | Path = "images", out: Printer = print,
                  out_dir: str | Path | None = None, overwrite: bool = False, note: Printer = stderr) -> list[Path]:
    """One figure per `batch_size_test` test inputs: each input with its prediction, and below it the
    memory samples of positive weight in descending weight order. The inputs of a figure share one
    memory draw (as the original). Files are named after the last test index they show (2.png, 5.png...),
    in `out_dir`, by default images/mem_images/<cell>/run<N>[_<options>] (see `FigureFolder`)."""
    from .data import generator
    from .explain import whole_figures
    from .figures import figure_png, memory_figure

    _check_max_images(max_images)
    restored = restore_run(path, options, require_memory=True)
    out(f"Device:{restored.device}")
    out(_describe(restored))
    data, model, spec = restored.data, restored.model, restored.data.spec
    normalization = restored.settings.config["normalization"]
    chosen = {"batch_size_test": data.batch_size_test}
    name = result_name(run_name(restored), chosen, {"batch_size_test": MEMORY_IMAGES_PER_FIGURE})
    folder = Path(out_dir) if out_dir else figure_folder(images_dir, "mem_images", restored, name)
    figures = FigureFolder(folder, figure_identity(restored, "generate_memory_images", chosen), restored.path,
                           overwrite, note)
    out(f"Writing figures to {folder}")
    sampler = data.memory_sampler("memory_images")
    order = generator(restored.seed, "memory_images_order", data.device) if spec.shuffle_test else None
    limit = whole_figures(max_images, data.batch_size_test, len(data.test))  # suite/explain.py
    batches = -(-limit // data.batch_size_test)
    written, done = [], 0
    with torch.no_grad():
        for positions in track(itertools.islice(data.test_index_batches(order), batches), "memory images (figures)",
                               total=batches, log_every=1):
            positions = positions[: limit - done]
            images = data.test_inputs(positions)
            memory, memory_labels = sampler.draw()
            logits, weights = model(images, memory, return_weights=True, memory_labels=memory_labels)
            predictions = logits.argmax(dim=1).tolist()
            used = []
            for row in weights:
                ordered_weights, order_in_row = torch.sort(row, descending=True, stable=True)
                used.append(undo_normalization(memory[order_in_row[ordered_weights > 0]], spec, normalization).cpu())
            titles = [f"Prediction:{spec.classes[p]}" for p in predictions]
            figure = memory_figure(undo_normalization(images, spec, normalization).cpu(), titles, used,
                                   data.batch_size_test)
            written.append(figures.write(f"{done + len(images) - 1}.png", figure_png(figure)))
            done += len(images)
    out(f"Saved {len(written)} figures ({done} test images) in {folder}")
    return written


# ---- generate_heatmaps.py -----------------------------------------------------------------------
def heatmaps(path: str, options: CheckpointOptions = CheckpointOptions(batch_size_test=HEATMAPS_PER_FIGURE),
             max_images: int = HEATMAPS_MAX, baseline: str = "ones", method: str = "integrated_gradients",
             method_options: dict | None = None, images_dir: str | Path = "images", out: Printer = print,
             out_dir: str | Path | None = None, overwrite: bool = False, note: Printer = stderr) -> list[Path]:
    """Heat maps (attributions of the predicted logit) of each input, its top explanation by example
    and its top counterfactual (docs/protocol.md, heat maps); one figure per `batch_size_test` inputs
    (the original: 1). `method` is a registered attribution method (suite.attribution). Figures go to
    `out_dir`, by default images/saliency/<cell>/run<N>/<method>[_<options>] (see `FigureFolder`)."""
    from .attribution import get_method
    from .explain import BASELINES, explain_inputs
    from .figures import SaliencyRow, figure_png, saliency_figure

    _check_max_images(max_images)
    if baseline not in BASELINES:
        raise UserError(f"--baseline must be one of {', '.join(BASELINES)}, got '{baseline}'")
    try:
        chosen = get_method(method)
    except ValueError as error:
        raise UserError(f"--method: {error}") from None
    method_options = dict(method_options or {})
    unknown = sorted(set(method_options) - set(chosen.options))
    if unknown:
        raise UserError(f"--{unknown[0]} does not apply to --method={method} (its options: "
                        f"{', '.join(chosen.options) or 'none'})")
    if any(isinstance(v, int) and v < 1 for v in method_options.values()):
        raise UserError(f"{', '.join('--' + k for k in method_options)} must be at least 1")
    if not chosen.uses_baseline and baseline != "ones":
        raise UserError(f"--baseline does not apply to --method={method}, which uses no baseline")
    restored = restore_run(path, options, require_memory=True)
    out(f"Device:{restored.device}")
    out(_describe(restored))
    spec, normalization = restored.data.spec, restored.settings.config["normalization"]
    applied = ({"baseline": baseline} if chosen.uses_baseline else {}) | chosen.options | method_options | {
        "batch_size_test": restored.data.batch_size_test}
    defaults = {"baseline": "ones"} | chosen.options | {"batch_size_test": HEATMAPS_PER_FIGURE}
    name = run_name(restored) + "/" + result_name(method, applied, defaults)
    folder = Path(out_dir) if out_dir else figure_folder(images_dir, "saliency", restored, name)
    figures = FigureFolder(folder, figure_identity(restored, f"generate_heatmaps --method={method}", applied),
                           restored.path, overwrite, note)
    out(f"Writing figures to {folder}")
    written: list[Path] = []

    def pixels(image: torch.Tensor) -> torch.Tensor:
        return undo_normalization(image.unsqueeze(0), spec, normalization)[0]

    def save(explained) -> None:
        blocks = []
        for item in explained:
            selection = item.selection
            rows = [SaliencyRow(pixels(item.input_image), item.input_attribution,
                                f"Input\nPredict:{spec.classes[item.prediction]}")]
            for name, position in (("Example", selection.example), ("Counterfactual", selection.counterfactual)):
                if position is not None:
                    rows.append(SaliencyRow(pixels(item.memory_images[position]), item.memory_attributions[position],
                                            f"{name}\nw:{float(selection.weights[position]):.2f}"))
            blocks.append(rows)
        written.append(figures.write(f"{explained[-1].index}.png", figure_png(saliency_figure(blocks, chosen.title))))

    done = explain_inputs(restored, max_images, baseline, save, method, log_every=1, **method_options)
    out(f"Saved {len(written)} figures ({done} test images) in {folder}")
    return written


# ---- flags shared by the five scripts ------------------------------------------------------------
def define_common_flags(batch_size_default: int | None, batch_size_help: str) -> None:
    """--dataset, --modality, --dir_dataset, --batch_size_test and --device (see CheckpointOptions)."""
    from absl import flags

    import architectures
    from .datasets import list_datasets

    flags.DEFINE_enum("dataset", None, list_datasets(),
                      "Optional check: the dataset the checkpoint was trained on (an error if it differs).")
    flags.DEFINE_enum("modality", None, architectures.list_modalities(),
                      "Optional check: the checkpoint's modality (an error if it differs).")
    flags.DEFINE_string("dir_dataset", None, "Dataset folder; default: the one recorded in the checkpoint's "
                        "training config ('datasets' for checkpoints of the original suite).")
    flags.DEFINE_integer("batch_size_test", batch_size_default, batch_size_help)
    flags.DEFINE_string("device", DEFAULTS.device, "auto (cuda:0 when available, else cpu), cpu, cuda, cuda:1...")
