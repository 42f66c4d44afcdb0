"""The command line: a bad value or file is one line naming the option or the path, exit code 2,
no traceback (``--debug`` keeps it); files written by npquant are never left half-written."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from npquant.cli import main
from npquant.train import load_checkpoint, load_npz, save_npz


@pytest.mark.parametrize("argv, message", [
    (["train", "--model", "cnn", "--epochs", "-1", "--out", "X"],
     "argument --epochs: must be an int >= 1, got -1"),
    (["train", "--model", "cnn", "--limit-test", "0", "--out", "X"],
     "argument --limit-test: must be an int >= 1, got 0"),
    (["train", "--model", "cnn", "--seed", "-1", "--out", "X"],
     "argument --seed: must be an int >= 0, got -1"),
    (["train", "--model", "cnn", "--lr", "nan", "--out", "X"],
     "argument --lr: must be a finite number > 0"),
    (["train", "--model", "cnn", "--data-dir", "DATA", "--out", "X", "--no-progress"],
     "not found in"),
    (["profiles", "nosuch"], "unknown profile 'nosuch'"),
], ids=["epochs", "limit-test", "seed", "lr", "data-dir", "profile"])
def test_bad_values_are_one_line_and_exit_2(argv, message, tmp_path, capsys):
    argv = [str(tmp_path / a) if a in ("X", "DATA") else a for a in argv]
    try:
        code = main(argv)
    except SystemExit as exc:  # argparse's own exit for a bad option value
        code = exc.code
    err = capsys.readouterr().err
    assert code == 2
    assert message in err and "Traceback" not in err
    assert err.strip().splitlines()[-1].startswith("npquant")


def test_debug_keeps_the_traceback(tmp_path):
    with pytest.raises(ValueError, match="unknown profile"):
        main(["--debug", "profiles", "nosuch"])


def test_save_npz_leaves_no_temporary_file_on_error(tmp_path):
    path = tmp_path / "a.npz"
    with pytest.raises(TypeError, match="object array"):
        save_npz(path, {"a": np.zeros(3), "b": np.array([None, 1], dtype=object)})
    assert list(tmp_path.iterdir()) == []
    save_npz(path, {"a": np.arange(3)})
    assert [p.name for p in tmp_path.iterdir()] == ["a.npz"]


def test_truncated_npz_and_corrupt_json_name_the_file(tmp_path):
    path = tmp_path / "checkpoint.npz"
    save_npz(path, {"model/w": np.arange(100.0)})
    path.write_bytes(path.read_bytes()[:200])
    with pytest.raises(ValueError, match="checkpoint.npz: not a readable .npz"):
        load_npz(path)
    (tmp_path / "checkpoint.json").write_text('{"sha256": ')
    with pytest.raises(ValueError, match="checkpoint.json: not valid JSON"):
        load_checkpoint(tmp_path)
    (tmp_path / "checkpoint.json").write_text(json.dumps([1, 2]))
    with pytest.raises(ValueError, match="expected a JSON object"):
        load_checkpoint(tmp_path)


@pytest.mark.parametrize("module", ["npquant.train", "npquant.pipeline", "npquant.quant.qat"])
def test_module_entry_points_go_through_the_cli(module, tmp_path):
    """``python -m npquant.pipeline ...`` (the form the docs show) reports bad input as the CLI
    does: one line, exit code 2, no traceback."""
    import subprocess
    import sys

    args = {"npquant.train": ["--model", "cnn", "--epochs", "0", "--out", str(tmp_path)],
            "npquant.pipeline": ["--epochs", "0", "--out", str(tmp_path)],
            "npquant.quant.qat": ["--float", str(tmp_path / "missing"), "--out",
                                  str(tmp_path / "q")]}
    r = subprocess.run([sys.executable, "-m", module, *args[module]], capture_output=True,
                       text=True, timeout=300)
    assert r.returncode == 2, r.stderr
    assert "Traceback" not in r.stderr, r.stderr
    assert r.stderr.strip().splitlines()[-1].startswith(f"npquant {module.split('.')[-1]}: error")


def _run_entry(tmp_path, code: str) -> subprocess.CompletedProcess[str]:
    """``npquant.cli.run`` in a fresh process (stdout a pipe, so block-buffered)."""
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=tmp_path, timeout=120)


def test_run_ends_without_teardown_but_finishes_what_an_exit_must(tmp_path):
    """``run`` skips the interpreter's teardown (os._exit) only after the exit code, the buffered
    output, the atexit handlers and the non-daemon threads are done."""
    flag = tmp_path / "thread_done"
    r = _run_entry(tmp_path, f"""
import atexit, sys, threading, time
from npquant import cli
atexit.register(lambda: print("atexit handler ran"))
def late():
    time.sleep(0.3)
    open({str(flag)!r}, "w").write("done")
threading.Thread(target=late).start()
sys.argv = ["npquant", "verify", {str(tmp_path / "missing")!r}]
cli.run()
print("not reached")
""")
    assert r.returncode == 1, r.stderr
    assert "BAD" in r.stdout and "not a directory" in r.stdout
    assert "atexit handler ran" in r.stdout and "not reached" not in r.stdout
    assert flag.read_text() == "done"


@pytest.mark.parametrize("argv, code, text", [
    (["--version"], 0, "npquant "),
    (["golden", "--images", "0", "cnn", "OUT"], 2, "must be an int >= 1"),
], ids=["version", "usage-error"])
def test_run_keeps_argparse_exit_codes(tmp_path, argv, code, text):
    r = _run_entry(tmp_path, "import sys\nfrom npquant import cli\n"
                             f"sys.argv = ['npquant', *{argv!r}]\ncli.run()")
    assert r.returncode == code
    assert text in r.stdout + r.stderr
