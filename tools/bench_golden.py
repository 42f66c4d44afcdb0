"""Time a golden export of the seed CNN: ``--images`` FashionMNIST test images, the issue's formats
(``npz,hex,bin,h``) and all formats.

Usage: python3 tools/bench_golden.py [--images 10000] [--source cnn|TRAIN_DIR]
                                     [--formats npz,hex,bin,h --formats npy,npz,hex,bin,h]
                                     [--dir /tmp] [--probe-gb 4] [--probe-page-cache] [--no-cli]

Each format list is exported in a fresh child process, as ``npquant golden`` runs (the first
model run of a process touches new memory, which a warm process would hide). Prints the time of
each part of ``npquant golden``'s own work — building the integer model (load, fold, calibrate,
convert), loading the images, ``write_golden`` — and, inside ``write_golden``, its timeline: the
traced run goes a slice of images at a time while the files of the finished rows are written
(``npquant.golden.trace``), so the report gives when the first slice was done (before any
writing), when the run ended, when ``golden.npz`` (which waits for the whole run) started and
ended, when the last data file was done and the manifest + rename after it; then where the
writing time went (``npquant.golden.stream.Stats``: the writers' wait for the run's rows, CPU of
the threads that format, copy and hash; their wait for free buffers, i.e. for the disk; the I/O
threads' time in pwrite; fsync), the process CPU, and the traced run alone for comparison. A
disk probe first writes ``--probe-gb`` GB the way the writer does (two threads, O_DIRECT where
it works, fsync) and reports the bandwidth, so the bytes / bandwidth floor of each export is
printed next to its time. Last, per list, the command itself, ``python -m npquant golden SOURCE
OUT --images N --formats F``, timed from process start to exit in a fresh process (the issue's
"command's own time"; ``--no-cli`` skips it). Every export goes to a temporary directory under
``--dir`` and is deleted afterwards. The repository root is put first on ``sys.path`` (and on
the command's ``PYTHONPATH``), so the checkout is measured.
"""

from __future__ import annotations

import argparse
import mmap
import os
import pathlib
import shutil
import subprocess
import sys
import tempfile
import threading
import time

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

ISSUE_FORMATS = "npz,hex,bin,h"  # the format list of issue 12's "< 10 s" bar
ALL_FORMATS = "npy,npz,hex,bin,h"


def disk_probe(directory: pathlib.Path, gigabytes: float, direct: bool | None = None
               ) -> tuple[float, bool]:
    """Write ``gigabytes`` GB of zeros in 8 MiB blocks from two threads (one file each), as the
    golden writer does (O_DIRECT if it works here, or as ``direct`` says), fsync; returns
    (GB/s, direct)."""
    from npquant.golden.stream import _O_DIRECT, BUFFER_SIZE, direct_io_works

    direct = direct_io_works(directory) if direct is None else direct
    per_thread = int(gigabytes * 1e9 / 2) // BUFFER_SIZE

    def write(path: pathlib.Path) -> None:
        buf = mmap.mmap(-1, BUFFER_SIZE)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | (_O_DIRECT if direct else 0))
        try:
            for i in range(per_thread):
                os.pwrite(fd, buf, i * BUFFER_SIZE)
            os.fsync(fd)
        finally:
            os.close(fd)
            buf.close()

    paths = [directory / f"probe{i}" for i in range(2)]
    t = time.perf_counter()
    threads = [threading.Thread(target=write, args=(p,)) for p in paths]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    seconds = time.perf_counter() - t
    for p in paths:
        p.unlink()
    return 2 * per_thread * BUFFER_SIZE / 1e9 / seconds, direct


def main(argv: list[str] | None = None) -> int:
    from npquant.golden.writer import check_formats

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--images", type=int, default=10000)
    p.add_argument("--source", default="cnn", help="model name or training directory")
    p.add_argument("--profile", default="tflite")
    p.add_argument("--formats", action="append", default=None,
                   help=f"a format list to export (repeatable; default {ISSUE_FORMATS} and "
                        f"{ALL_FORMATS})")
    p.add_argument("--dir", default=None, help="parent of the temporary export directories")
    p.add_argument("--data-dir", default=None)
    p.add_argument("--probe-gb", type=float, default=4.0, help="disk probe size (0: none)")
    p.add_argument("--probe-page-cache", action="store_true",
                   help="also probe writing through the page cache (what O_DIRECT saves)")
    p.add_argument("--no-cli", action="store_true",
                   help="skip timing the npquant golden command itself in a fresh process")
    p.add_argument("--child", default=None, help=argparse.SUPPRESS)  # one list, this process
    p.add_argument("--bandwidth", type=float, default=0.0, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    parent = pathlib.Path(args.dir or tempfile.gettempdir())
    if args.child:
        return export_report(args, check_formats(args.child), parent)
    lists = [check_formats(f) for f in (args.formats or [ISSUE_FORMATS, ALL_FORMATS])]

    bandwidth = 0.0
    if args.probe_gb > 0:
        with tempfile.TemporaryDirectory(dir=parent) as tmp:
            bandwidth, direct = disk_probe(pathlib.Path(tmp), args.probe_gb)
        print(f"disk probe: {args.probe_gb:g} GB in 8 MiB writes from 2 threads, "
              f"{'O_DIRECT' if direct else 'page cache'}, fsync: {bandwidth:.2f} GB/s")
        if args.probe_page_cache and direct:
            cpu = os.times()
            with tempfile.TemporaryDirectory(dir=parent) as tmp:
                cached, _ = disk_probe(pathlib.Path(tmp), args.probe_gb, direct=False)
            print(f"disk probe through the page cache: {cached:.2f} GB/s, "
                  f"{os.times().system - cpu.system:.2f} s of kernel CPU")
    # Each list in a fresh process, as `npquant golden` runs: the first run of the model in a
    # process touches new memory (slow in a VM), so a warm process would flatter the export.
    rest = list(argv if argv is not None else sys.argv[1:])
    for formats in lists:
        t = time.perf_counter()
        r = subprocess.run([sys.executable, __file__, *rest, "--child", ",".join(formats),
                            "--bandwidth", str(bandwidth)], check=False)
        if r.returncode:
            return r.returncode
        print(f"  {'bench process wall (start, imports, warm-up, run alone)':<58} "
              f"{time.perf_counter() - t:7.2f} s")
        if not args.no_cli:
            what = f"npquant golden {args.source} --images {args.images}: process wall"
            print(f"  {what:<58} {cli_run(args, formats, parent):7.2f} s   <- the command, "
                  f"start to exit ({','.join(formats)})", flush=True)
    return 0


def export_report(args: argparse.Namespace, formats: list[str], parent: pathlib.Path) -> int:
    """Build the model, export ``formats`` once (timed), then time the model run alone, and
    print the report of this format list."""
    from npquant.golden.source import build_integer_model, load_images
    from npquant.golden.stream import collect_stats
    from npquant.golden.writer import golden_tensors, write_golden

    t = time.perf_counter()
    model, src = build_integer_model(args.source, args.profile, data_dir=args.data_dir)
    build = time.perf_counter() - t
    t = time.perf_counter()
    x, y = load_images(src["dataset"], "test", args.images, args.data_dir)
    images = time.perf_counter() - t
    with tempfile.TemporaryDirectory(dir=parent) as tmp:  # numba: compile or load every kernel
        write_golden(model, x[:2], pathlib.Path(tmp) / "warm", labels=y[:2])  # before timing
    with tempfile.TemporaryDirectory(dir=parent) as tmp:
        out = pathlib.Path(tmp) / "golden"
        with collect_stats() as st:
            t = time.perf_counter()
            cpu = os.times()
            manifest = write_golden(model, x, out, labels=y, formats=formats)
            wall = time.perf_counter() - t
            cpu = [b - a for a, b in zip(cpu, os.times(), strict=False)][:2]
        sizes: dict[str, int] = {}
        for name in manifest["sha256"]:
            ext = name.rsplit(".", 1)[-1]
            sizes[ext] = sizes.get(ext, 0) + (out / name).stat().st_size
        shutil.rmtree(out)
    t0 = t
    t = time.perf_counter()
    golden_tensors(model, x, labels=y)
    run = time.perf_counter() - t
    total = sum(sizes.values())
    spans = st.spans
    last = max(end for _, end in spans.values()) - t0
    npz = spans.get("golden.npz")
    print(f"\ngolden export of {args.source} ({args.profile}), {args.images} images, formats "
          f"{','.join(formats)}: {len(manifest['sha256']) + 1} files, {total / 1e9:.2f} GB ("
          + ", ".join(f"{e} {n / 1e9:.3f}" for e, n in sorted(sizes.items())) + ")")
    rows = [
        ("build integer model (load, fold, calibrate, convert)", build),
        ("load images", images),
        ("write_golden (run + write all files, atomic)", wall),
        ("  checks + first slice of the traced run, before writing", st.run_span[1] - t0),
        ("  the traced run's last slice done, at", st.run_span[2] - t0),
        (f"  golden.npz (waits for the run) written from {npz[0] - t0:.2f} s, to"
         if npz else "  no golden.npz", npz[1] - t0 if npz else 0.0),
        ("  last data file done, at", last),
        ("  manifest, directory fsync, rename (after that)", wall - last),
        ("    writers waiting for the run's rows, sum", st.wait_rows),
        ("    fill threads' CPU (format, copy, CRC, sha256), sum", st.fill_cpu),
        ("      of which sha256", st.sha256),
        ("    fill threads waiting for a free buffer (disk behind)", st.wait_buffer),
        (f"    I/O threads in pwrite ({'O_DIRECT' if st.direct else 'page cache'}), sum",
         st.pwrite),
        ("    ftruncate + fsync per file, sum", st.fsync),
        ("  process CPU during write_golden: user", cpu[0]),
        ("                                    sys", cpu[1]),
        ("traced run alone, after (golden_tensors, no writing)", run),
    ]
    for what, s in rows:
        print(f"  {what:<58} {s:7.2f} s")
    if args.bandwidth:
        floor = total / 1e9 / args.bandwidth
        print(f"  {'disk floor: bytes / probe bandwidth':<58} {floor:7.2f} s")
    print(f"  {'in-process total (build + images + write_golden)':<58} "
          f"{build + images + wall:7.2f} s", flush=True)
    return 0


def cli_run(args: argparse.Namespace, formats: list[str], parent: pathlib.Path) -> float:
    """Wall time of the command itself, ``python -m npquant golden SOURCE OUT --images N
    --formats F`` in a fresh process (Python start, imports, numba's cache, everything)."""
    with tempfile.TemporaryDirectory(dir=parent) as tmp:
        cmd = [sys.executable, "-m", "npquant", "golden", args.source, str(pathlib.Path(tmp) / "g"),
               "--images", str(args.images), "--profile", args.profile,
               "--formats", ",".join(formats)]
        if args.data_dir:
            cmd += ["--data-dir", args.data_dir]
        env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH",
                                                                                   "")]))
        t = time.perf_counter()
        subprocess.run(cmd, check=True, env=env, stdout=subprocess.DEVNULL)
        return time.perf_counter() - t


if __name__ == "__main__":
    raise SystemExit(main())
