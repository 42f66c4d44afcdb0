"""The ``npquant`` command: list profiles, train a float model, quantize and evaluate it, run the
whole pipeline, write, verify and compare golden data, quantization-aware training.

``train``, ``ptq``, ``eval``, ``pipeline``, ``golden``, ``verify``, ``compare`` and ``qat`` own
their arguments (``npquant train --help``, ...); this module only dispatches to them.
"""

from __future__ import annotations

import argparse
import atexit
import os
import sys
import threading

from npquant import __version__


def _cmd_profiles(args: argparse.Namespace) -> int:
    from npquant.profiles import format_profiles, get_profile

    if args.name:
        p = get_profile(args.name)
        print(f"{p.name} (version {p.version}): {p.description}")
        for field_name, text in p.rules():
            print(f"    {field_name:<22} {text}")
    else:
        sys.stdout.write(format_profiles())
    return 0


def _cmd_train(argv: list[str]) -> int:
    from npquant import train

    return int(train.main(argv) or 0)


def _cmd_pipeline(argv: list[str]) -> int:
    from npquant import pipeline

    return int(pipeline.main(argv) or 0)


def _cmd_golden(argv: list[str]) -> int:
    if argv and argv[0].endswith(".tflite"):  # bring your own model (npquant.interop.tflite_cli)
        from npquant.interop import tflite_cli

        return tflite_cli.golden_main(argv)
    if argv and argv[0].endswith(".onnx"):  # an imported ONNX model (npquant.interop.onnx_cli)
        from npquant.interop import onnx_cli

        return onnx_cli.golden_main(argv)
    from npquant.golden import commands

    return commands.golden_main(argv)


def _cmd_verify(argv: list[str]) -> int:
    from npquant.golden import commands

    return commands.verify_main(argv)


def _cmd_compare(argv: list[str]) -> int:
    if argv and argv[0].endswith(".tflite"):  # the model in the interpreter vs npquant
        from npquant.interop import tflite_cli

        return tflite_cli.compare_main(argv)
    if argv and argv[0].endswith(".onnx"):  # ORT against npquant (npquant.interop.onnx_cli)
        from npquant.interop import onnx_cli

        return onnx_cli.compare_main(argv)
    from npquant.golden import commands

    return commands.compare_main(argv)


def _cmd_ptq(argv: list[str]) -> int:
    from npquant import ptq_cli

    return int(ptq_cli.ptq_main(argv) or 0)


def _cmd_eval(argv: list[str]) -> int:
    from npquant import ptq_cli

    return int(ptq_cli.eval_main(argv) or 0)


def _cmd_qat(argv: list[str]) -> int:
    from npquant.quant import qat

    return int(qat.main(argv) or 0)


_DELEGATED = {"train": _cmd_train, "pipeline": _cmd_pipeline, "golden": _cmd_golden,
              "verify": _cmd_verify, "compare": _cmd_compare, "ptq": _cmd_ptq, "eval": _cmd_eval,
              "qat": _cmd_qat}


def main(argv: list[str] | None = None) -> int:
    """Run the CLI with ``argv`` (default ``sys.argv[1:]``); returns the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(prog="npquant", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"npquant {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    p_prof = sub.add_parser("profiles", help="list the requantization profiles and their rules")
    p_prof.add_argument("name", nargs="?", help="show one profile")
    sub.add_parser("train", help="train a float model (npquant train --help)", add_help=False)
    sub.add_parser("pipeline", add_help=False,
                   help="train -> PTQ -> integer model per profile -> golden data "
                        "(npquant pipeline --help)")
    sub.add_parser("golden", add_help=False, help="golden data of a model (npquant golden --help)")
    sub.add_parser("verify", add_help=False, help="check a golden directory, name every bad file")
    sub.add_parser("compare", add_help=False, help="first divergence between two golden sets, "
                   "or per layer between a .tflite in the interpreter and npquant")
    sub.add_parser("ptq", add_help=False, help="quantize a checkpoint and evaluate it "
                   "(npquant ptq --help)")
    sub.add_parser("eval", add_help=False, help="accuracy as float, fake-quant or integer-only "
                   "(npquant eval --help)")
    sub.add_parser("qat", add_help=False,
                   help="quantization-aware training from a float checkpoint -> integer model "
                        "(npquant qat --help)")
    parser.add_argument("--debug", action="store_true",
                        help="show the Python traceback of an error (any position)")
    debug = "--debug" in argv
    argv = [a for a in argv if a != "--debug"]
    try:
        if argv and argv[0] in _DELEGATED:
            return _DELEGATED[argv[0]](argv[1:])
        args = parser.parse_args(argv)
        if args.command == "profiles":
            return _cmd_profiles(args)
    except (ValueError, OSError) as exc:
        # Bad input (a value out of range, a missing or corrupt file) is one line naming the
        # problem, exit code 2, as argparse does for a bad option; --debug keeps the traceback.
        if debug:
            raise
        command = f"npquant {argv[0]}" if argv else "npquant"
        print(f"{command}: error: {exc}", file=sys.stderr)
        return 2
    parser.error(f"unknown command {args.command!r}")
    return 2


def run() -> None:
    """The ``npquant`` console script and ``python -m npquant``: ``main()``, then the end of the
    process without the interpreter's teardown.

    After a command, Python would free every module and object one by one; with numba's and
    LLVM's state loaded that costs 0.15-0.3 s of the command's time (measured after a golden
    export) and has nothing left to do. So this finishes what a normal exit must — waits for the
    threads that are not daemons, runs the ``atexit`` handlers (temporary directories, logging),
    flushes stdout and stderr — and then ends with ``os._exit``. ``main()`` itself returns
    normally, for callers that import it.
    """
    try:
        code = main()
    except SystemExit as exc:  # argparse's --help, --version and usage errors
        code = exc.code
    if code is None:
        code = 0
    elif not isinstance(code, int):
        print(code, file=sys.stderr)
        code = 1
    for thread in threading.enumerate():
        if thread is not threading.main_thread() and not thread.daemon:
            thread.join()
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed pipe (``| head``), a full disk: output lost
            code = code or 120  # what the interpreter's own exit reports then
    os._exit(code)
