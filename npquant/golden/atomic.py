"""Atomic replacement of a whole directory: write a temporary sibling, fsync, one rename.

An export writes every file into ``.<name>.tmp-<pid>-<random>`` next to the target, fsyncs the
files and the directory, then swaps it in:

* target absent: ``rename(tmp, target)``, atomic on POSIX;
* target present (replacing an old export): Linux ``renameat2(RENAME_EXCHANGE)`` swaps the two
  directories in one step, and the old one (now at the temporary name) is deleted. Where the
  call is missing (not Linux, or a file system without it) the fallback is two renames, with a
  window of microseconds in which the target is absent and the old export sits at
  ``.<name>.old-*``.

A kill at any moment therefore leaves the target wholly old or wholly new; the only debris is a
hidden temporary sibling, which the next export removes once its process has died.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import os
import secrets
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

_AT_FDCWD = -100
_RENAME_EXCHANGE = 2


def check_target(out: Path, *, overwrite: bool, marker: str) -> None:
    """Raise unless ``out`` may be (re)written: absent, an empty directory, or, with
    ``overwrite``, a directory holding ``marker`` (a previous export's manifest)."""
    if out.exists() and not out.is_dir():
        raise ValueError(f"out_dir {str(out)!r} exists and is not a directory")
    if out.is_dir() and any(out.iterdir()):
        if not overwrite:
            raise ValueError(f"out_dir {str(out)!r} exists and is not empty; pass overwrite=True "
                             "(npquant golden --force) to replace it whole")
        if not (out / marker).is_file():
            raise ValueError(f"out_dir {str(out)!r} is not empty and has no {marker}: it does "
                             "not look like a golden directory, so it is not replaced; remove "
                             "it yourself")


@contextmanager
def atomic_directory(out: str | Path) -> Iterator[Path]:
    """Yield a fresh temporary sibling of ``out``; on normal exit fsync it and swap it in for
    ``out`` (module docstring); on an exception delete it and leave ``out`` untouched."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_siblings(out)
    tmp = out.parent / f".{out.name}.tmp-{os.getpid()}-{secrets.token_hex(4)}"
    tmp.mkdir()
    try:
        yield tmp
        _fsync_dir(tmp)
        _swap_in(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    shutil.rmtree(tmp, ignore_errors=True)  # after an exchange: the old export
    _fsync_dir(out.parent)


def fsync_file(f) -> None:
    """Flush a file object and fsync it to disk."""
    f.flush()
    os.fsync(f.fileno())


def remove_stale_siblings(out: Path) -> None:
    """Delete ``.<name>.tmp-<pid>-*`` / ``.<name>.old-<pid>-*`` left by dead processes."""
    for prefix in (f".{out.name}.tmp-", f".{out.name}.old-"):
        for p in out.parent.glob(prefix + "*"):
            pid = p.name[len(prefix):].split("-", 1)[0]
            if pid.isdigit() and not _alive(int(pid)):
                shutil.rmtree(p, ignore_errors=True)


def _swap_in(tmp: Path, out: Path) -> None:
    if not out.exists():
        os.rename(tmp, out)
        return
    if _rename_exchange(tmp, out):
        return
    old = out.parent / f".{out.name}.old-{os.getpid()}-{secrets.token_hex(4)}"
    os.rename(out, old)  # NOTE: from here to the next rename the target is briefly absent
    os.rename(tmp, out)
    os.rename(old, tmp)  # so the caller deletes the old export with the temporary name


def _rename_exchange(a: Path, b: Path) -> bool:
    """Atomically swap two paths with Linux ``renameat2(..., RENAME_EXCHANGE)``; False where
    the call does not exist or the file system refuses it."""
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name, use_errno=True)
        fn = libc.renameat2
    except (OSError, AttributeError):
        return False
    fn.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    if fn(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP):
        return False
    raise OSError(err, f"renameat2({a}, {b}, RENAME_EXCHANGE): {os.strerror(err)}")


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
