"""Run a grid of training cells (the paper's Table 1), resumably, here or on a Slurm cluster; report it.

    python3 grid.py --grid=config/table1.yaml [--workers=N] [--gpus=0,1] [--dry_run]
    python3 grid.py --grid=config/table1.yaml --executor=slurm --slurm_partition=gpu --timeout_min=240
    python3 grid.py report --grid=config/table1.yaml [--out=DIR]      # the table, its figure, training curves

Each run of each cell is one unit of work: finished runs are never repeated, interrupted ones resume
from their last finished epoch, and several commands (or Slurm tasks) can share one grid.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

from absl import app, flags

from suite.cli import EXIT_INTERRUPTED, user_errors, UserError
from suite.gridspec import load_grid

FLAGS = flags.FLAGS
flags.DEFINE_string("grid", None, "Grid file (YAML): base_config, datasets, models, train_examples, modalities, "
                                  "runs, overrides.")
flags.DEFINE_multi_string("set", [], "Override a config key of every cell after the grid's overrides, "
                                     "e.g. --set device=cuda:1.")
flags.DEFINE_bool("dry_run", False, "Print the runs that would be trained and the ones already finished; "
                                    "train nothing.")
flags.DEFINE_bool("list_runs", False, "With --dry_run: also a line per run (by default a line per cell).")
flags.DEFINE_enum("executor", "local", ["local", "slurm", "submitit_local"],
                  "local: worker processes on this machine; slurm: a Slurm job array through submitit, one task "
                  "per run; submitit_local: the Slurm path run by submitit's local executor (all tasks at once).")
flags.DEFINE_integer("workers", 1, "local: worker processes (each trains one run at a time).", lower_bound=1)
flags.DEFINE_list("gpus", [], "local: GPU indices handed to workers round-robin, e.g. 0,1 (several workers may "
                              "share a GPU). Empty: the config's device.")
flags.DEFINE_integer("threads", 0, "local: CPU threads per worker; 0: the cores divided among workers "
                                   "(capped by OMP_NUM_THREADS).", lower_bound=0)
flags.DEFINE_string("slurm_partition", None, "slurm: partition.")
flags.DEFINE_integer("timeout_min", 240, "slurm: time limit of a task in minutes; a run cut by it is requeued and "
                                         "resumes from its last epoch.", lower_bound=1)
flags.DEFINE_integer("max_requeues", 50, "slurm: times a task cut off by its time limit is requeued (submitit's "
                     "max_num_timeout, default 3 there); each attempt resumes from the last finished epoch. A task "
                     "cut off once more is reported failed; its run keeps its epochs and the next grid resumes it.",
                     lower_bound=0)
flags.DEFINE_integer("gpus_per_node", 1, "slurm: GPUs per task.", lower_bound=0)
flags.DEFINE_integer("cpus_per_task", 4, "slurm: CPUs per task.", lower_bound=1)
flags.DEFINE_float("mem_gb", None, "slurm: memory per task in GB (default: the cluster's).")
flags.DEFINE_integer("slurm_array_parallelism", 64, "slurm: tasks of an array running at once (submitit_local: "
                                                    "jobs at once).", lower_bound=1)
flags.DEFINE_integer("max_array_size", 1000, "slurm: tasks per job array (Slurm's MaxArraySize); more runs are "
                                             "submitted as several arrays.", lower_bound=1)
flags.DEFINE_multi_string("slurm_setup", [], "slurm: shell line run before each task, e.g. 'module load cuda'.")
flags.DEFINE_multi_string("slurm_option", [], "slurm: any other submitit slurm_<key> parameter as key=value, "
                                              "e.g. account=myproject or qos=normal.")
flags.DEFINE_integer("runs_per_task", 1, "slurm: runs trained one after the other by one array task (bundles "
                                        "short runs; a requeued task skips the finished ones).", lower_bound=1)
flags.DEFINE_bool("wait", False, "slurm: wait for the jobs and print their outcome (submitit_local always waits).")
flags.DEFINE_string("submitit_dir", None, "slurm: folder of submitit's job files and logs "
                                          "(default grids/GRID_NAME/submitit).")
flags.DEFINE_integer("log_interval", 100, "A progress line (run, epoch, loss, learning rate, images/s, time left) "
                     "every this many training steps of each run, in the grid's output (local) or the task logs "
                     "(Slurm); 0: none.", lower_bound=0)
flags.DEFINE_string("out", None, "report: output folder (default grids/GRID_NAME/report).")
flags.DEFINE_string("models_dir", None, "report: folder searched for run records (default the grid's models_dir).")
flags.mark_flag_as_required("grid")


def default_folder(grid_path: Path, kind: str) -> Path:
    return Path("grids") / grid_path.stem / kind


def report() -> None:
    from suite.curves import CURVES_FOLDER
    from suite.report import write_report

    grid = load_grid(FLAGS.grid, FLAGS.set)
    out = Path(FLAGS.out or default_folder(grid.path, "report"))
    _, paths = write_report(grid, out, FLAGS.models_dir)
    curves = paths.pop("curves")
    print(Path(paths["markdown"]).read_text(), end="")
    print("Wrote " + ", ".join(str(p) for p in paths.values())
          + (f" and {len(curves)} training-curve figure(s) in {out / CURVES_FOLDER}" if curves else ""))


STEP_TIMES = Path(__file__).resolve().parent / "benchmarks" / "step_times.json"


def step_time_profiles() -> dict:
    """Step times per hardware, measured by benchmarks/train_step.py --record (absent: no estimate)."""
    import json

    try:
        return json.loads(STEP_TIMES.read_text())
    except (OSError, ValueError):
        return {}


def run() -> None:
    from suite import grid as runner

    grid = load_grid(FLAGS.grid, FLAGS.set)
    try:
        gpus = [str(int(g)) for g in FLAGS.gpus]
    except ValueError:
        raise UserError(f"--gpus takes GPU indices such as 0,1, got '{','.join(FLAGS.gpus)}'") from None
    if gpus and FLAGS.executor == "local" and not FLAGS.dry_run:
        import torch

        available = torch.cuda.device_count()
        wrong = [g for g in gpus if int(g) >= available]
        if wrong:
            raise UserError(f"--gpus: GPU {wrong[0]} does not exist ({available} CUDA device(s) visible)")
    plan = runner.make_plan(grid)
    if FLAGS.dry_run:
        print("\n".join(runner.dry_run_lines(plan, step_time_profiles(), FLAGS.list_runs)))
        return
    if FLAGS.executor == "local" and not gpus:  # the config's device must exist here (not so for Slurm nodes)
        from suite.recipe import resolve_device

        for device in sorted({task.settings.config["device"] for task in plan.todo}):
            resolve_device(device)
    print("\n".join([plan.headline(), plan.where()] + grid.override_notes() + plan.reuse_notes()), flush=True)
    runner.prepare_datasets(plan.todo, lambda line: print(line, flush=True))
    runner.remove_finished_resume_files(plan)  # garbage, removed once every check has passed
    out = lambda line: print(line, flush=True)  # noqa: E731
    if FLAGS.executor == "local":
        summary = runner.run_local(plan, FLAGS.workers, gpus, FLAGS.threads, out, FLAGS.log_interval)
    else:
        parameters = runner.submitit_parameters(
            timeout_min=FLAGS.timeout_min, gpus_per_node=FLAGS.gpus_per_node, cpus_per_task=FLAGS.cpus_per_task,
            mem_gb=FLAGS.mem_gb, partition=FLAGS.slurm_partition, array_parallelism=FLAGS.slurm_array_parallelism,
            setup=FLAGS.slurm_setup, slurm_options=FLAGS.slurm_option, name=f"grid-{grid.name}")
        cluster = "slurm" if FLAGS.executor == "slurm" else "local"
        summary = runner.run_submitit(plan, cluster, Path(FLAGS.submitit_dir or default_folder(grid.path, "submitit")),
                                      parameters, FLAGS.runs_per_task, FLAGS.max_array_size,
                                      wait=FLAGS.wait or cluster == "local", out=out, max_requeues=FLAGS.max_requeues,
                                      log_every=FLAGS.log_interval)
        if summary is None:
            return
    print("\n".join(summary.lines()), flush=True)
    if summary.failed:
        sys.exit(1)


@user_errors
def main(argv: list[str]) -> None:
    command = argv[1:]
    subcommands = {"report": report}
    if len(command) == 1 and command[0] in subcommands:
        subcommands[command[0]]()
        return
    if command:
        raise UserError(f"unexpected arguments: {' '.join(command)} (the subcommand is 'report'; "
                        "flags take the form --name=value)")
    try:
        run()
    except BrokenPipeError:  # e.g. `--dry_run | head`: stop quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    except KeyboardInterrupt:
        print("\ninterrupted; finished runs and epochs are kept: rerun the same command to resume",
              file=sys.stderr)
        sys.exit(EXIT_INTERRUPTED)


if __name__ == "__main__":
    app.run(main)
