"""Atomically written folders, and the file modes of atomic writes.

`directory(path)` yields a temporary folder next to `path` and, when the
block finishes, renames it into place (an existing `path` is moved aside
first and removed after), so an interrupted write never leaves a partial
folder at `path`; on an error the temporary folder is removed.

Atomic writes go through `tempfile.mkstemp` (mode 0600) and
`tempfile.mkdtemp` (mode 0700), which are private on purpose. Renamed into
place, they would keep those modes, and colleagues on a shared filesystem
could not read a report, a summary or an exported SAE. Before the rename,
`as_new_file` / `as_new_dir` give them the mode `open()` / `os.makedirs()`
would have: 0666 / 0777 minus the process umask (0644 / 0755 under the usual
umask 022). Some writers (safetensors among them) create private files too,
so a folder written under a temporary name gets `as_new_tree`.
"""

import contextlib
import os
import shutil
import tempfile
import threading
from typing import Iterator

_LOCK = threading.Lock()


def umask() -> int:
  """The process umask (read by setting and restoring it)."""
  with _LOCK:
    mask = os.umask(0o022)
    os.umask(mask)
  return mask


def as_new_file(path: str | os.PathLike) -> None:
  """Gives `path` the mode a newly created file would have."""
  os.chmod(path, 0o666 & ~umask())


def as_new_dir(path: str | os.PathLike) -> None:
  """Gives directory `path` the mode a newly created directory would have."""
  os.chmod(path, 0o777 & ~umask())


def as_new_tree(root: str | os.PathLike) -> None:
  """`as_new_dir` on `root` and every folder in it, `as_new_file` on files."""
  as_new_dir(root)
  for dirpath, dirs, files in os.walk(root):
    for name in dirs:
      as_new_dir(os.path.join(dirpath, name))
    for name in files:
      as_new_file(os.path.join(dirpath, name))


@contextlib.contextmanager
def directory(path: str | os.PathLike) -> Iterator[str]:
  """Writes folder `path` atomically: yields the temporary folder to fill.

  Args:
    path: destination folder; replaced if it exists.

  Yields:
    The temporary folder (same parent as `path`), which gets the modes of a
    newly created tree and is renamed to `path` when the block finishes.
  """
  path = os.path.abspath(os.fspath(path))
  parent = os.path.dirname(path)
  os.makedirs(parent, exist_ok=True)
  name = os.path.basename(path)
  tmp = tempfile.mkdtemp(prefix=f'.{name}.', dir=parent)
  try:
    yield tmp
    as_new_tree(tmp)
    if os.path.exists(path):
      old = tempfile.mkdtemp(prefix=f'.{name}.old.', dir=parent)
      os.rename(path, os.path.join(old, name))
      os.rename(tmp, path)
      shutil.rmtree(old)
    else:
      os.rename(tmp, path)
  finally:
    if os.path.exists(tmp):
      shutil.rmtree(tmp, ignore_errors=True)
