"""What a run leaves on disk, and how it survives other processes, kills and full disks: run locks
without flock, leftovers of killed writes, one record file per run, per-epoch metrics (CSV and TensorBoard), ENOSPC during a checkpoint or a record.

Runs here are a tiny ViT on DIGITS (40 training images, 3 epochs): a fraction of a second each.
"""
from __future__ import annotations

import errno
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from suite import run_files
from suite.run_files import (
    COLUMNS, MetricsError, finished_runs, host_name, load_checkpoint, load_torch_file, metrics_path, read_metrics,
    record_path, start_token, write_record,
)
from suite.config import TrainSettings, load_config
from suite.cli import CheckpointError, ConfigError
from suite.training import train_run

REPO = Path(__file__).resolve().parents[1]
TINY_VIT = "model_options={patches: 4, depth: 1, hidden: 32, heads: 2, mlp_hidden: 32}"
EPOCHS = 3


class Killed(Exception):
    """Stands for a kill at the end of an epoch (after its resume file)."""


def tiny_settings(models_dir: Path, modality: str = "encoder_memory", *overrides: str) -> TrainSettings:
    """A tiny ViT on DIGITS, 3 epochs, lr halved after epoch 2."""
    config = load_config(REPO / "config" / "quickstart.yaml", [
        "model=vit", TINY_VIT, f"DIGITS.num_epochs={EPOCHS}", "DIGITS.opt_milestones=[2]", "DIGITS.mem_examples=10",
        "train_examples=40", "batch_size_train=16", "batch_size_test=250", "eval_passes=2", "device=cpu",
        f"models_dir={models_dir}", *overrides])
    return TrainSettings(config, modality)


def kill_after(epochs: int):
    def callback(stats, state) -> None:
        if stats.epoch == epochs:
            raise Killed

    return callback


def without_seconds(rows: list[dict]) -> list[dict]:
    return [{k: v for k, v in row.items() if k != "seconds"} for row in rows]


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.rglob("*") if p.name.endswith(".tmp") or p.name.endswith(".lock"))


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """One uninterrupted run without eval_every: its record, metrics rows and weights."""
    settings = tiny_settings(tmp_path_factory.mktemp("reference"))
    result = train_run(settings, 1)
    return result.record, read_metrics(metrics_path(settings.cell_folder, 1)), settings.cell_folder / "1.pt"


# ---- locks --------------------------------------------------------------------------------------
def _write_lock(folder: Path, run: int, host: str, pid: int, start: str | None = None, age: float = 0.0) -> Path:
    path = run_files.lock_path(folder, run)
    folder.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"host": host, "pid": pid, "start": start, "token": "theirs", "since": time.time()}))
    if age:
        os.utime(path, (time.time() - age, time.time() - age))
    return path


def _dead_pid() -> int:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def test_lock_keeps_out_a_live_owner_and_breaks_a_dead_one_at_once(tmp_path):
    with run_files.run_lock(tmp_path, 1) as held:
        owner = json.loads((tmp_path / "1.lock").read_text())
        assert (owner["host"], owner["pid"], owner["start"]) == (host_name(), os.getpid(), start_token(os.getpid()))
        with pytest.raises(run_files.RunBusy, match=rf"run 1 in '{tmp_path}' is being trained by another process "
                                                rf"\(host {host_name()}, pid {os.getpid()}, since "):
            run_files.acquire(tmp_path, 1)
        held.check()
    assert not (tmp_path / "1.lock").exists()
    # This host: a dead owner, or a live pid that is another process (reused pid), is broken at once.
    for pid, start in ((_dead_pid(), None), (os.getppid(), "not its start")):
        _write_lock(tmp_path, 2, host_name(), pid, start)
        lock = run_files.acquire(tmp_path, 2)
        assert json.loads((tmp_path / "2.lock").read_text())["pid"] == os.getpid()
        lock.release()
    assert leftovers(tmp_path) == []


def test_lock_of_another_node_is_broken_only_when_its_heartbeat_is_stale(tmp_path):
    _write_lock(tmp_path, 1, "node-elsewhere", os.getpid(), age=run_files.STALE_SECONDS - 60)  # 9 minutes quiet
    with pytest.raises(run_files.RunBusy, match="host node-elsewhere"):
        run_files.acquire(tmp_path, 1)
    _write_lock(tmp_path, 1, "node-elsewhere", os.getpid(), age=run_files.STALE_SECONDS + 60)  # 11 minutes
    run_files.acquire(tmp_path, 1).release()
    (tmp_path / "3.lock").write_text("")  # not a lock of ours: judged by its age alone
    with pytest.raises(run_files.RunBusy, match="lock file unreadable: taken as abandoned 10 minutes after its last"):
        run_files.acquire(tmp_path, 3)


def test_heartbeat_keeps_the_lock_fresh_and_a_lost_lock_stops_its_owner(tmp_path):
    lock = run_files.acquire(tmp_path, 1, heartbeat=0.05)
    os.utime(lock.path, (0, 0))
    deadline = time.time() + 10
    while lock.path.stat().st_mtime < time.time() - 60 and time.time() < deadline:
        time.sleep(0.02)
    assert lock.path.stat().st_mtime > time.time() - 60, "the heartbeat did not touch the lock"
    _write_lock(tmp_path, 1, "node-elsewhere", 1)  # another node took it over (this one was taken for dead)
    with pytest.raises(run_files.LockLost, match="taken over by another process"):
        lock.check()
    lock.release()
    assert json.loads(lock.path.read_text())["host"] == "node-elsewhere"  # the new owner's lock is left alone


@pytest.mark.parametrize("host", ["node-elsewhere", "this host"])
def test_a_lock_belongs_to_its_token_not_to_a_pid(tmp_path, host):
    """A lock taken over by a process with this very pid and start (on another node, or a pid reused
    on this one) is not this process's: check() stops, the heartbeat leaves it alone, release keeps it."""
    lock = run_files.acquire(tmp_path, 1, heartbeat=3600)
    ours = json.loads(lock.path.read_text())
    theirs = dict(ours, host=host_name() if host == "this host" else host, token="another token")
    lock.path.write_text(json.dumps(theirs))
    os.utime(lock.path, (1000, 1000))
    assert not lock.held()
    with pytest.raises(run_files.LockLost, match="taken over by another process"):
        lock.check()
    lock.refresh()
    assert lock.path.stat().st_mtime == 1000  # not touched by our heartbeat
    lock.release()
    assert json.loads(lock.path.read_text()) == theirs


def test_breaking_a_stale_lock_puts_back_one_renewed_meanwhile(tmp_path, monkeypatch):
    path = _write_lock(tmp_path, 1, "node-elsewhere", 1, age=run_files.STALE_SECONDS * 2)
    rename = os.rename

    def renewed_first(source, target):  # between the judgement and the rename, a new owner appears
        os.unlink(source)
        _write_lock(tmp_path, 1, "node-new", 7)
        monkeypatch.setattr(os, "rename", rename)
        rename(source, target)

    monkeypatch.setattr(os, "rename", renewed_first)
    with pytest.raises(run_files.RunBusy, match="host node-new"):
        run_files.acquire(tmp_path, 1)
    assert json.loads(path.read_text())["host"] == "node-new" and leftovers(tmp_path) == ["1.lock"]


def test_a_link_reported_as_failed_but_made_on_the_server_takes_the_lock(tmp_path, monkeypatch):
    link = os.link

    def retried_on_nfs(source, target):  # the first try reached the server; its retry finds the name taken
        link(source, target)
        raise FileExistsError(errno.EEXIST, "File exists", str(target))

    monkeypatch.setattr(run_files.os, "link", retried_on_nfs)
    lock = run_files.acquire(tmp_path, 1)
    assert lock.held() and json.loads(lock.path.read_text())["token"] == lock.owner.token
    lock.release()
    assert leftovers(tmp_path) == []


def test_breaking_a_stale_lock_late_leaves_the_lock_of_whoever_broke_it_first(tmp_path):
    path = _write_lock(tmp_path, 1, host_name(), _dead_pid(), age=run_files.STALE_SECONDS * 2)
    judged = path.stat()  # a first acquirer judges the lock stale here, then pauses before breaking it
    second = run_files.acquire(tmp_path, 1)  # a second one breaks it and takes the run meanwhile
    run_files._break(path, judged)  # the first one resumes: it must not break the second one's fresh lock
    assert second.held()
    second.release()
    assert leftovers(tmp_path) == []


def test_a_file_system_without_links_or_writes_gives_one_line(tmp_path, monkeypatch):
    def no_links(*args, **kwargs):
        raise OSError(errno.EPERM, "Operation not permitted")

    monkeypatch.setattr(os, "link", no_links)
    run_files.acquire(tmp_path, 1).release()  # no hard links: O_CREAT|O_EXCL does it
    real_open = os.open

    def refusing(path, *args, **kwargs):
        if str(path).endswith(".lock") or ".lock." in str(path):
            raise OSError(errno.EROFS, "Read-only file system", str(path))
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr(os, "open", refusing)
    with pytest.raises(run_files.LockError) as error:
        run_files.acquire(tmp_path, 1)
    message = str(error.value)
    assert "\n" not in message and f"cannot lock run 1 in '{tmp_path}': Read-only file system" in message
    assert "set models_dir to such a folder" in message


# ---- leftovers ------------------------------------------------------------------------------------
def test_only_temporary_files_of_dead_writers_are_removed(tmp_path):
    here, old = host_name(), time.time() - 2 * run_files.STALE_SECONDS
    names = {
        f".1.pt.{here}~{_dead_pid()}~ab12.tmp": True,  # this host, writer dead: at once
        f".1.json.{here}~{os.getpid()}~ab12.tmp": False,  # this host, writer alive
        ".2.pt.node-b~12~ab12.tmp": False,  # another node, young: may be writing
        ".3.pt.node-b~12~ab12.tmp": True,  # another node, old
        ".4.pt.x7_k2q.tmp": True,  # an earlier version's, old
        ".5.pt.x7_k2q.tmp": False,  # ... young
        "notes.tmp": False, ".hidden": False, "1.pt": False,  # not temporary files of ours
    }
    for name in names:
        (tmp_path / name).write_text("x")
    for name in (".3.pt.node-b~12~ab12.tmp", ".4.pt.x7_k2q.tmp"):
        os.utime(tmp_path / name, (old, old))
    removed = run_files.remove_leftovers(tmp_path)
    assert sorted(p.name for p in removed) == sorted(name for name, gone in names.items() if gone)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(name for name, gone in names.items() if not gone)


# ---- records --------------------------------------------------------------------------------------
def test_records_are_one_file_per_run_read_in_run_order(tmp_path):
    for run, accuracy in ((10, 70.0), (2, 61.0), (1, 50.0)):
        write_record(tmp_path, {"run": run, "accuracy": accuracy})
    (tmp_path / "results.jsonl").write_text(json.dumps({"run": 3, "accuracy": 1.0}) + "\n")  # not a record file
    assert finished_runs(tmp_path) == {1: {"run": 1, "accuracy": 50.0}, 2: {"run": 2, "accuracy": 61.0},
                                       10: {"run": 10, "accuracy": 70.0}}
    assert json.loads(record_path(tmp_path, 2).read_text()) == {"run": 2, "accuracy": 61.0}
    assert leftovers(tmp_path) == []


@pytest.mark.parametrize("content, problem", [("{\"run\": 3, \"accu", "is not valid JSON"),
                                              ("{\"run\": 4}", "is not the record of run 3")])
def test_a_damaged_record_is_one_line_naming_the_file(tmp_path, content, problem):
    folder = tmp_path / "cell"
    folder.mkdir()
    record_path(folder, 1).write_text(json.dumps({"run": 1, "accuracy": 1.0}))
    record_path(folder, 3).write_text(content)
    with pytest.raises(CheckpointError) as error:
        finished_runs(folder)
    message = str(error.value)
    assert problem in message and str(record_path(folder, 3)) in message and "\n" not in message
    assert "delete it to train run 3 again" in message


# ---- metrics --------------------------------------------------------------------------------------
def test_eval_every_logs_test_accuracy_without_changing_the_training(tmp_path):
    # AutoAugment draws from the global RNG: an evaluation that touched it would change the training.
    plain = tiny_settings(tmp_path / "plain", "encoder_memory", "autoaugment=true")
    record, checkpoint = train_run(plain, 1).record, plain.cell_folder / "1.pt"
    rows = read_metrics(metrics_path(plain.cell_folder, 1))
    settings = tiny_settings(tmp_path / "evaluated", "encoder_memory", "autoaugment=true", "eval_every=1")
    evaluated = train_run(settings, 1).record
    for key in ("accuracy", "loss", "pass_accuracies", "train_indices_sha256"):
        assert evaluated[key] == record[key], key
    before, after = load_checkpoint(checkpoint)["model_state_dict"], load_checkpoint(settings.cell_folder / "1.pt")
    assert all(torch.equal(before[k], after["model_state_dict"][k]) for k in before)
    logged = read_metrics(metrics_path(settings.cell_folder, 1))
    assert without_seconds(logged) == [dict(row, test_accuracy=logged[i]["test_accuracy"])
                                       for i, row in enumerate(without_seconds(rows))]
    assert [row["epoch"] for row in logged] == [1, 2, 3] and all(row["test_accuracy"] is None for row in rows)
    assert [row["learning_rate"] for row in logged] == pytest.approx([0.1, 0.1, 0.01])  # the multistep schedule
    # The same seeded evaluation memories: the last epoch's test accuracy is the run's recorded accuracy.
    assert logged[-1]["test_accuracy"] == record["accuracy"]
    assert all(0.0 <= row["test_accuracy"] <= 100.0 for row in logged)
    header = metrics_path(settings.cell_folder, 1).read_text().splitlines()[0]
    assert header == ",".join(COLUMNS)


def test_a_resumed_run_has_every_epoch_once_in_its_metrics(tmp_path, reference):
    record, rows, _ = reference
    settings = tiny_settings(tmp_path)
    with pytest.raises(Killed):
        train_run(settings, 1, epoch_callbacks=[kill_after(2)])
    path = metrics_path(settings.cell_folder, 1)
    assert [row["epoch"] for row in read_metrics(path)] == [1, 2]
    # A kill after epoch 3's row but before its resume file, and a later half-written line:
    with open(path, "a") as stream:
        stream.write("3,0.01,9.9,50.0,1.0,\n4,0.0")
    with pytest.raises(MetricsError, match=f"metrics file '{path}' ends in a truncated line; delete it"):
        read_metrics(path)
    resumed = train_run(settings, 1).record
    assert (resumed["accuracy"], resumed["loss"]) == (record["accuracy"], record["loss"])
    assert without_seconds(read_metrics(path)) == without_seconds(rows)
    assert len(path.read_text().splitlines()) == 1 + EPOCHS


@pytest.mark.parametrize("content, problem", [
    ("epoch,loss\n1,2.0\n", "does not start with the header"),
    (",".join(COLUMNS) + "\n1,0.1,2.0,10.0,1.0,\n1,0.1,2.0,10.0,1.0,\n", "line 3 repeats or reorders epoch 1"),
    (",".join(COLUMNS) + "\n1,0.1,two,10.0,1.0,\n", "line 2 is not a metrics row"),
])
def test_a_damaged_metrics_file_is_one_line_naming_the_file(tmp_path, content, problem):
    path = tmp_path / "1.metrics.csv"
    path.write_text(content)
    with pytest.raises(MetricsError) as error:
        read_metrics(path)
    assert str(error.value).startswith(f"metrics file '{path}' ") and problem in str(error.value)
    assert "\n" not in str(error.value) and "delete it" in str(error.value)


def test_tensorboard_events_are_the_csv_and_a_resume_purges_the_lost_epoch(tmp_path, monkeypatch):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    import suite.training

    settings = tiny_settings(tmp_path, "memory", "tensorboard=true", "eval_every=2")
    save, calls = suite.training.save_torch_file, []

    def lost_at_epoch_2(content, path):  # epoch 2's events are written, then the process dies
        calls.append(path)
        if len(calls) == 2:
            raise Killed
        save(content, path)

    monkeypatch.setattr(suite.training, "save_torch_file", lost_at_epoch_2)
    with pytest.raises(Killed):
        train_run(settings, 1)
    monkeypatch.setattr(suite.training, "save_torch_file", save)
    train_run(settings, 1)
    rows = read_metrics(metrics_path(settings.cell_folder, 1))
    events = EventAccumulator(str(settings.cell_folder / "tensorboard" / "1"))
    events.Reload()
    for tag, column in (("train/loss", "loss"), ("train/accuracy", "train_accuracy"),
                        ("learning_rate", "learning_rate"), ("test/accuracy", "test_accuracy")):
        logged = [(e.step, e.value) for e in events.Scalars(tag)]
        assert logged == [(r["epoch"], pytest.approx(r[column])) for r in rows if r[column] is not None], tag
    assert [e.step for e in events.Scalars("test/accuracy")] == [2]


ZERO_ROW = {"epoch": 1, "learning_rate": 0.0, "loss": 0.0, "train_accuracy": 0.0, "seconds": 0.0, "test_accuracy": 0.0}


@pytest.mark.parametrize("tensorboard", [False, True])
def test_an_epoch_whose_values_are_zero_is_on_record_at_every_stage(tmp_path, tensorboard):
    """0 is a value, not a missing one: the ViT recipe's first warm-up epoch has learning rate 0, and a run
    can sit at 0 % training accuracy. CSV, reading back, training curves and TensorBoard keep it."""
    from suite.curves import curve
    from suite.run_files import EpochLog

    if tensorboard:
        pytest.importorskip("tensorboard")
    second = dict(ZERO_ROW, epoch=2, learning_rate=0.1, loss=2.0, train_accuracy=50.0, seconds=1.0,
                  test_accuracy=None)
    log = EpochLog(tmp_path, 1, [], tensorboard)
    log.append(ZERO_ROW)
    log.append(second)
    log.close()
    rows = read_metrics(metrics_path(tmp_path, 1))
    assert rows == [ZERO_ROW, second]
    other = [dict(ZERO_ROW, learning_rate=0.0, loss=1.0, train_accuracy=20.0, test_accuracy=10.0)]
    for column in COLUMNS[1:]:
        found = curve({1: rows, 2: other}, column)
        assert found.epochs.tolist()[0] == 1 and found.runs.tolist()[0] == 2, column  # epoch 1 of both runs
        assert found.mean.tolist()[0] == pytest.approx((ZERO_ROW[column] + other[0][column]) / 2), column
    if tensorboard:
        from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

        events = EventAccumulator(str(tmp_path / "tensorboard" / "1"))
        events.Reload()
        for tag in ("train/loss", "train/accuracy", "learning_rate", "test/accuracy", "epoch_seconds"):
            assert (events.Scalars(tag)[0].step, events.Scalars(tag)[0].value) == (1, 0.0), tag


def test_the_vit_recipes_first_warm_up_epoch_is_logged_with_learning_rate_zero(tmp_path):
    settings = tiny_settings(tmp_path, "std", "optimizer.name=adam", "optimizer.learning_rate=0.001",
                             "optimizer.warmup_epochs=2",
                             "DIGITS.lr_schedule=warmup_cosine")
    train_run(settings, 1)
    rows = read_metrics(metrics_path(settings.cell_folder, 1))
    assert [row["learning_rate"] for row in rows][:2] == [0.0, pytest.approx(0.0005)]


def test_tensorboard_asked_without_the_package_is_one_line(tmp_path, monkeypatch):
    import importlib.util

    find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "tensorboard"
                        else find_spec(name, *a))
    settings = tiny_settings(tmp_path, "std", "tensorboard=true")
    with pytest.raises(ConfigError, match="^config key 'tensorboard' is true but the tensorboard package is not "
                                          "installed; pip install tensorboard, or set tensorboard: false$"):
        train_run(settings, 1)
    assert not settings.cell_folder.exists()


# ---- a full disk ----------------------------------------------------------------------------------
@pytest.mark.parametrize("target", ["1.resume.pt", "1.pt", "1.json"])
def test_a_full_disk_during_a_write_is_one_line_and_the_run_resumes(tmp_path, monkeypatch, reference, target):
    record, rows, _ = reference
    settings = tiny_settings(tmp_path)
    folder = settings.cell_folder
    write, writes = run_files._write_all, []

    def disk_full(handle: int, data: bytes) -> None:
        if os.path.basename(os.readlink(f"/proc/self/fd/{handle}")).startswith(f".{target}."):
            writes.append(target)
        if len(writes) == (2 if target == "1.resume.pt" else 1) and writes[-1:] == [target]:
            write(handle, data[: len(data) // 2])
            raise OSError(errno.ENOSPC, "No space left on device")
        write(handle, data)

    monkeypatch.setattr(run_files, "_write_all", disk_full)
    with pytest.raises(CheckpointError) as error:
        train_run(settings, 1)
    message = str(error.value)
    assert "No space left on device" in message and str(folder) in message and "\n" not in message
    assert leftovers(folder) == []  # no temporary file, no lock
    saved = load_torch_file(folder / "1.resume.pt")  # the previous resume file, intact
    assert saved["state"]["epoch"] == (1 if target == "1.resume.pt" else EPOCHS)
    assert not record_path(folder, 1).exists() and (folder / "1.pt").exists() == (target == "1.json")
    monkeypatch.setattr(run_files, "_write_all", write)
    resumed = train_run(settings, 1).record
    assert (resumed["accuracy"], resumed["loss"]) == (record["accuracy"], record["loss"])
    assert without_seconds(read_metrics(metrics_path(folder, 1))) == without_seconds(rows)
    assert sorted(p.name for p in folder.iterdir()) == ["1.json", "1.metrics.csv", "1.pt"]
