"""Sweeps under real interrupts, concurrent runners, torn files and bad input: records and survivors."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from procs import survivors

from ablations.spec import SpecError, load_spec
from bench.data.datasets import build_datasets, resolve_data
from bench.data.generate import write_imagenet_folder
from bench.errors import DataError

CLI = [sys.executable, "-m", "bench.cli"]


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    return write_imagenet_folder(
        tmp_path_factory.mktemp("robust") / "d", num_classes=4, train_per_class=8, val_per_class=2, size=32
    )


def _spec(tmp_path: Path, data: Path, axes: str, epochs: int = 1, name: str = "r") -> Path:
    path = tmp_path / f"{name}.yaml"
    path.write_text(f"""name: {name}
base:
  model: sdt_tiny
  data: {data}
  batch_size: 16
  measure_batches: 1
  warmup_epochs: 0.5
  measure: false
  epochs: {epochs}
axes:
{axes}
metrics: [top1]
""")
    return path


@pytest.fixture
def cli(capfd):
    """``spikebench ARGS`` in this process (its worker server is still a process of its own); the exit code,
    stdout and stderr (of every process writing to this test's descriptors)."""
    from bench.cli import main

    def run(*args: str) -> subprocess.CompletedProcess:
        capfd.readouterr()
        code = main(list(args))
        out, err = capfd.readouterr()
        return subprocess.CompletedProcess(args, code, out, err)

    return run


def _start(spec: Path, out: Path, workers: int = 2) -> subprocess.Popen:
    """``sweep run`` in its own session (as from a terminal: it leads its process group)."""
    cmd = CLI + ["sweep", "run", str(spec), "--workers", str(workers), "--out", str(out), "--quiet"]
    return subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True
    )


def _wait_for(cond, timeout: float = 900) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


def _results(out: Path) -> dict[str, dict]:
    runs = out / "runs"
    return {
        d.name: json.loads((d / "result.json").read_text())
        for d in runs.iterdir()
        if (d / "result.json").exists()
    }


def _one_line(stderr: str) -> None:
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert "Traceback" not in stderr and len(lines) == 1, stderr


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_interrupt_records_interrupted_leaves_no_process_and_a_plain_rerun_resumes(tmp_path, data, cli, sig):
    spec = _spec(tmp_path, data, "  shortcut: [ms, sew]", epochs=2)
    out = tmp_path / "sweep"
    proc = _start(spec, out)
    ckpts = lambda: list(out.glob("runs/*/checkpoints/last.pt"))  # noqa: E731
    _wait_for(lambda: len(ckpts()) == 2)  # both points past their first epoch
    first_epoch = {
        p.parent.parent.name: json.loads((p.parent.parent / "metrics.json").read_text())[0] for p in ckpts()
    }
    os.killpg(proc.pid, sig)  # Ctrl-C reaches a terminal's foreground group; SIGTERM comes from a scheduler
    _, stderr = proc.communicate(timeout=600)
    assert proc.returncode == 128 + sig, stderr
    _one_line(stderr)
    assert f"interrupted by {sig.name}" in stderr and "rerun the same command" in stderr
    assert survivors(proc.pid, str(out)) == []
    records = _results(out)
    assert set(records) == set(first_epoch)  # every point has a record
    interrupted = [n for n, r in records.items() if r["status"] == "interrupted"]
    assert interrupted and all(r["status"] in ("interrupted", "ok") for r in records.values())
    for name in interrupted:
        assert records[name]["reason"] == f"interrupted by {sig.name}"
    if sig == signal.SIGTERM:
        return  # the resume is the same as after Ctrl-C
    status = cli("sweep", "status", str(spec), "--out", str(out))
    assert status.returncode == 0 and f"interrupted={len(interrupted)}" in status.stdout
    rerun = cli("sweep", "run", str(spec), "--out", str(out), "--quiet")
    assert rerun.returncode == 0 and "Traceback" not in rerun.stderr, rerun.stderr
    after = _results(out)
    assert len(after) == 2 and all(r["status"] == "ok" for r in after.values())
    for name in interrupted:  # resumed from the checkpoint: the first epoch was not trained again
        assert json.loads((out / "runs" / name / "metrics.json").read_text())[0] == first_epoch[name]
    assert survivors(proc.pid, str(out), timeout=5) == []


def test_two_runners_split_the_points_and_both_exit_0(tmp_path, data):
    # 4 epochs: on an idle machine 1-epoch points end before the second runner has even started
    spec = _spec(tmp_path, data, "  T: [1, 2]\n  shortcut: [ms, sew]", epochs=4)
    out = tmp_path / "sweep"
    first = _start(spec, out, workers=1)
    _wait_for(lambda: len(list(out.glob("runs/*/config.json"))) >= 1)  # the first runner holds a point
    second = _start(spec, out, workers=1)
    runs = [p.communicate(timeout=600) + (p.returncode,) for p in (first, second)]
    counts = []
    for stdout, stderr, code in runs:
        assert code == 0 and "Traceback" not in stderr, stdout + stderr
        assert "4 ok of 4 points" in stdout
        here, elsewhere = stdout.split("this runner ran ")[1].split(" ran elsewhere")[0].split(", ")
        counts.append((int(here), int(elsewhere)))
    assert counts[0][0] + counts[1][0] == 4  # each point run by exactly one runner
    # at least one runner found a point held by the other and waited for it (which one depends on timing)
    assert counts[0][1] + counts[1][1] >= 1
    assert len(_results(out)) == 4 and all(r["status"] == "ok" for r in _results(out).values())
    assert (
        survivors(first.pid, str(out), timeout=5) == [] and survivors(second.pid, str(out), timeout=5) == []
    )


def test_torn_result_and_checkpoint_are_moved_aside_and_the_point_redone_from_the_last_good_one(
    tmp_path, data, cli
):
    spec = _spec(tmp_path, data, "  shortcut: [ms]", epochs=2)
    out = tmp_path / "sweep"
    assert cli("sweep", "run", str(spec), "--out", str(out), "--quiet").returncode == 0
    (run,) = (out / "runs").iterdir()
    first_epoch = json.loads((run / "metrics.json").read_text())[0]
    for name in ("result.json", "checkpoints/last.pt"):
        blob = (run / name).read_bytes()
        (run / name).write_bytes(blob[: len(blob) // 2])
    status = cli("sweep", "status", str(spec), "--out", str(out))
    assert status.returncode == 0 and "Traceback" not in status.stderr
    assert "corrupt" in status.stdout and "corrupt=1" in status.stdout
    results = cli("results", str(out))
    assert results.returncode == 0 and "corrupt" in results.stdout and "not valid JSON" in results.stdout
    rerun = cli("sweep", "run", str(spec), "--out", str(out), "--quiet")
    assert rerun.returncode == 0 and "Traceback" not in rerun.stderr, rerun.stderr
    warnings = [line for line in rerun.stderr.splitlines() if line.startswith("spikebench: warning")]
    assert len(warnings) == 2, rerun.stderr
    assert (
        f"{run / 'result.json'}: not valid JSON" in warnings[0]
        and "moved to result.json.corrupt-" in warnings[0]
    )
    assert f"{run / 'checkpoints' / 'last.pt'}: unreadable checkpoint" in warnings[1]
    assert len(list(run.glob("result.json.corrupt-*"))) == 1  # kept, renamed
    assert len(list(run.glob("checkpoints/last.pt.corrupt-*"))) == 1
    assert json.loads((run / "result.json").read_text())["status"] == "ok"
    metrics = json.loads((run / "metrics.json").read_text())
    assert len(metrics) == 2 and metrics[0] == first_epoch  # resumed from prev.pt (epoch 1), epoch 2 redone
    # the task on its own (``spikebench train``) treats a torn record the same way
    from tasks.classification import config_from_dict, train

    (run / "result.json").write_text('{"status": "o')
    cfg = config_from_dict(json.loads((run / "config.json").read_text()))
    assert train(cfg, out=run, progress=False)["status"] == "ok"
    assert len(list(run.glob("result.json.corrupt-*"))) == 2


def _bad_spec(tmp_path: Path, field: str) -> Path:
    path = tmp_path / "bad.yaml"
    path.write_text(
        """name: bad
base:
  model: sdt_tiny
  epochs: 1
  lr: 1e-3
axes:
  bits: [4, 8]
executor:
  kind: local
  workers: 2
""".replace(f"  {field.split(':')[0]}:", f"  {field}  #", 1)
    )
    return path


@pytest.mark.parametrize(
    "field,message",
    [
        ("epochs: two", "bad.yaml:4: epochs='two' is not allowed; allowed values: integers"),
        ("lr: fast", "bad.yaml:5: lr='fast' is not allowed; allowed values: numbers"),
        ("workers: two", "bad.yaml:10: executor.workers='two' is not allowed; allowed values: integers >= 1"),
        (
            "kind: lcoal",
            "bad.yaml:9: executor.kind='lcoal' is not allowed; allowed values: local, submitit, ray",
        ),
    ],
)
def test_bad_types_are_one_line_with_file_line_and_nothing_runs(tmp_path, cli, field, message):
    path = _bad_spec(tmp_path, field)
    with pytest.raises(SpecError) as err:
        load_spec(path)
    assert message in str(err.value) and "\n" not in str(err.value), str(err.value)
    run = cli("sweep", "run", str(path), "--out", str(tmp_path / "never"))
    assert run.returncode == 2 and message in run.stderr
    _one_line(run.stderr)
    assert not (tmp_path / "never").exists()


def test_numbers_written_1e_3_are_numbers(tmp_path):
    spec = load_spec(_bad_spec(tmp_path, "lr: 1e-3"), validate_models=False)
    assert all(p.run_config.lr == 0.001 for p in spec.points())


def test_data_errors_inside_a_sweep_become_failed_records_with_the_one_line_reason(tmp_path, data, cli):
    import shutil

    empty = tmp_path / "empty"
    shutil.copytree(data, empty)
    for f in (empty / "train" / "n00000001").iterdir():
        f.unlink()
    val_only = tmp_path / "val_only"
    shutil.copytree(data, val_only)
    shutil.move(val_only / "train" / "n00000003", tmp_path / "away")
    with pytest.raises(DataError) as err:
        build_datasets(resolve_data(str(val_only)), 32)
    assert str(err.value).startswith(f"{val_only / 'val' / 'n00000003'}: class folder not in train/")
    spec = tmp_path / "d.yaml"
    spec.write_text(f"name: d\nbase: {{model: sdt_tiny, epochs: 1}}\naxes:\n  data: [{empty}, {val_only}]\n")
    out = tmp_path / "sweep"
    run = cli("sweep", "run", str(spec), "--out", str(out), "--quiet")
    assert run.returncode == 1 and "Traceback" not in run.stdout + run.stderr, run.stdout + run.stderr
    reasons = sorted(r["reason"] for r in _results(out).values())
    assert [r["status"] for r in _results(out).values()] == ["failed", "failed"]
    assert reasons[0].startswith(f"{empty / 'train' / 'n00000001'}: class folder has no images")
    assert reasons[1].startswith(f"{val_only / 'val' / 'n00000003'}: class folder not in train/")
    assert "0 ok, 2 failed of 2 points" in run.stdout
    assert all(reason in run.stdout for reason in reasons)  # the summary names each failure's reason


def test_an_interrupt_a_library_turned_into_another_error_is_still_an_interrupt():
    """mmengine's config formatting turns a Ctrl-C into ``SyntaxError``: the record says interrupted (so the
    run resumes) and the interrupt, not the SyntaxError, is what the CLI sees (exit 130)."""
    from tasks.record import reraise, stopped_record

    def formatted() -> None:
        try:
            raise KeyboardInterrupt
        except BaseException:
            raise SyntaxError("Failed to format the config file") from None

    try:
        formatted()
    except SyntaxError as err:
        record = stopped_record(err, "detection", "qsd_tiny")
        with pytest.raises(KeyboardInterrupt):
            reraise(err)
    assert (record["status"], record["reason"]) == ("interrupted", "interrupted by SIGINT")
    try:
        raise ValueError("bad")
    except ValueError as err:
        assert stopped_record(err, "detection", "qsd_tiny")["reason"] == "ValueError: bad"
        with pytest.raises(ValueError):
            reraise(err)


def _stopped_under_sigterm(path: Path, writes) -> dict:
    """The record ``write_stopped_record`` leaves of a collective error under the CLI's SIGTERM handler, after
    checking that the SIGTERM then ends the call and that the handler is the caller's again."""
    from bench.cli import _sigterm
    from tasks import record

    previous = signal.signal(signal.SIGTERM, _sigterm)
    try:
        with pytest.raises(KeyboardInterrupt, match="SIGTERM"):
            try:
                raise RuntimeError("Connection closed by peer")
            except RuntimeError as err:
                record.write_stopped_record(err, path, "detection", "qsd_tiny", writes=writes)
        assert signal.getsignal(signal.SIGTERM) is _sigterm
    finally:
        signal.signal(signal.SIGTERM, previous)
    written = json.loads(path.read_text())
    assert (written["status"], written["reason"]) == ("failed", "RuntimeError: Connection closed by peer")
    return written


def test_a_signal_while_the_stopped_record_is_written_waits_for_the_write(tmp_path):
    """torchrun sends SIGTERM to the other ranks right after one dies, often while they write the record of
    the failure that death caused: the record is written whole, then the SIGTERM is delivered."""

    def signalled() -> bool:  # the SIGTERM arrives while this rank decides to write, then writes
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(0.05)  # the handler would have run here
        return True

    _stopped_under_sigterm(tmp_path / "result.json", signalled)


def test_a_signal_just_before_the_deferral_still_leaves_the_record(tmp_path, monkeypatch):
    """torchrun's SIGTERM can land between the collective error a dead rank caused and the start of the
    deferral (CI saw a detection run end with no record): the record of the error is written, then the
    interrupt is raised and the handlers are the caller's again."""
    import contextlib

    from tasks import record

    deferral = record.signals_deferred
    entered: list[int] = []

    @contextlib.contextmanager
    def lands_first():  # the real deferral, with the signal delivered just before its first entry
        if not entered:
            entered.append(1)
            signal.raise_signal(signal.SIGTERM)
        with deferral():
            yield

    monkeypatch.setattr(record, "signals_deferred", lands_first)
    written = _stopped_under_sigterm(tmp_path / "result.json", lambda: True)
    assert "Connection closed by peer" in written["traceback"]
