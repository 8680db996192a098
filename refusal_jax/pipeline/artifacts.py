"""Workdir artifacts: atomic writes, provenance, and refusal to mix configs.

Only process 0 writes (every process of a multi-host run computes the same
gathered results). Every artifact is written to a temporary file in the same directory and
renamed into place, so a killed run never leaves a half-written file; it
gets the mode a plain `open()` would give (0644 under umask 022), so others
can read the workdir. The
workdir remembers the fingerprint of the config that created it and a digest
of the contents of its input files (model, SAEs, prompt files); a rerun with
a different config, or on inputs that changed since (a retrained organism, a
new checkpoint at the same path), raises instead of mixing results.
"""

import hashlib
import json
import os
import platform
import subprocess
import tempfile
from typing import Any

import jax
import numpy as np

from refusal_jax import errors
from refusal_jax import atomic

CONFIG_FILE = 'config.json'


def write_text(path: str, text: str) -> None:
  """Writes text atomically (temp file in the same directory, then rename)."""
  if jax.process_index() != 0:
    return
  directory = os.path.dirname(os.path.abspath(path))
  os.makedirs(directory, exist_ok=True)
  fd, tmp = tempfile.mkstemp(prefix='.tmp-', dir=directory)
  try:
    with os.fdopen(fd, 'w', encoding='utf-8') as f:
      f.write(text)
      f.flush()
      os.fsync(f.fileno())
    atomic.as_new_file(tmp)
    os.replace(tmp, path)
  except BaseException:
    if os.path.exists(tmp):
      os.remove(tmp)
    raise


def write_json(path: str, obj: Any) -> None:
  """Writes JSON atomically."""
  write_text(path, json.dumps(obj, indent=2, sort_keys=True,
                              default=_jsonable))


def write_npz(path: str, **arrays) -> None:
  """Writes an .npz atomically."""
  if jax.process_index() != 0:
    return
  directory = os.path.dirname(os.path.abspath(path))
  os.makedirs(directory, exist_ok=True)
  fd, tmp = tempfile.mkstemp(prefix='.tmp-', suffix='.npz', dir=directory)
  os.close(fd)
  try:
    np.savez(tmp, **{k: np.asarray(v) for k, v in arrays.items()})
    atomic.as_new_file(tmp)
    os.replace(tmp, path)
  except BaseException:
    if os.path.exists(tmp):
      os.remove(tmp)
    raise


def read_json(path: str) -> Any:
  with open(path) as f:
    return json.load(f)


def _jsonable(x):
  if isinstance(x, (np.integer,)):
    return int(x)
  if isinstance(x, (np.floating,)):
    return float(x)
  if isinstance(x, np.ndarray):
    return x.tolist()
  if hasattr(x, 'tolist'):
    return x.tolist()
  raise TypeError(f'not JSON serialisable: {type(x).__name__}')


def fingerprint(config_dict: dict) -> str:
  """A stable hash of a config dict."""
  text = json.dumps(config_dict, sort_keys=True, default=str)
  return hashlib.sha256(text.encode()).hexdigest()[:16]


def inputs_digest(paths) -> str:
  """SHA-256 of the contents of every local file under `paths`.

  Each path is a file or a directory (walked in sorted order); paths that do
  not exist locally (e.g. hub ids) count by name only. Hashing reads every
  byte once more at start-up: SHA-256 runs at about 1.8 GB/s on a 2-core
  CPU host (measured with `hashlib` on 1 GiB), so about 10 ms for an
  organism and 9 s for a 16 GB checkpoint, besides the reading.

  Args:
    paths: file or directory paths, in a fixed order.

  Returns:
    A 16-hex-digit digest.
  """
  h = hashlib.sha256()
  for root in paths:
    h.update(f'\0path {root}\0'.encode())
    if os.path.isdir(root):
      files = sorted(os.path.relpath(os.path.join(d, f), root)
                     for d, _, fs in os.walk(root) for f in fs)
    elif os.path.isfile(root):
      files = ['.']
    else:
      continue
    for rel in files:
      h.update(f'\0file {rel}\0'.encode())
      with open(os.path.normpath(os.path.join(root, rel)), 'rb') as f:
        for block in iter(lambda: f.read(1 << 20), b''):
          h.update(block)
  return h.hexdigest()[:16]


def _changed_fields(old: dict, new: dict, prefix: str = '') -> list[str]:
  """Dotted names of the leaves that differ between two JSON configs."""
  out = []
  for k in sorted(set(old) | set(new)):
    a, b = old.get(k), new.get(k)
    if isinstance(a, dict) and isinstance(b, dict):
      out += _changed_fields(a, b, f'{prefix}{k}.')
    elif a != b:
      out.append(prefix + k)
  return out


def claim_workdir(workdir: str, config_dict: dict,
                  inputs: str | None = None) -> None:
  """Records the config in a new workdir, or checks it matches an old one.

  Args:
    workdir: output directory.
    config_dict: the run's config.
    inputs: `inputs_digest` of the run's input files, if it has any.

  Raises:
    errors.ConfigError: when `workdir` holds results of a different config,
      or of inputs whose contents have changed since.
  """
  os.makedirs(workdir, exist_ok=True)
  path = os.path.join(workdir, CONFIG_FILE)
  fp = fingerprint(config_dict)
  if os.path.exists(path):
    old = read_json(path)
    if inputs is not None and old.get('inputs') != inputs:
      raise errors.ConfigError(
          f'{workdir} holds results computed from other contents of the '
          'model, SAE or prompt files; use a new --workdir or delete the old '
          'one')
    if old.get('fingerprint') != fp:
      changed = _changed_fields(old.get('config', {}),
                                json.loads(json.dumps(config_dict)))
      raise errors.ConfigError(
          f'{workdir} holds results of a different config (changed: '
          f'{", ".join(changed[:5]) or "values"}); use a new --workdir or '
          'delete the old one')
    return
  write_json(path, {'fingerprint': fp, 'config': config_dict,
                    'inputs': inputs, 'provenance': provenance()})


def provenance() -> dict:
  """Package version, git commit, JAX version and device kind."""
  import refusal_jax  # pylint: disable=g-import-not-at-top
  commit = None
  try:
    commit = subprocess.run(
        ['git', 'rev-parse', 'HEAD'], capture_output=True, text=True,
        cwd=os.path.dirname(os.path.abspath(refusal_jax.__file__)),
        timeout=5, check=False).stdout.strip() or None
  except (OSError, subprocess.SubprocessError):
    pass
  return dict(package_version=refusal_jax.__version__, git_commit=commit,
              jax_version=jax.__version__,
              device_kind=jax.devices()[0].device_kind,
              platform=jax.devices()[0].platform,
              python=platform.python_version())


class Memo:
  """Saves each finished unit of work so a killed stage resumes where it was.

  `memo(key, fn)` returns the arrays stored under `key` when a previous run
  finished them, otherwise computes `fn()` (a dict of arrays), stores it
  atomically in `DIR/partial/<stage>/<key>.npz` and returns it. The workdir's
  config fingerprint guarantees that a stored unit belongs to this config.
  """

  def __init__(self, workdir: str | None, stage: str):
    self._dir = (None if workdir is None else
                 os.path.join(workdir, 'partial', stage))

  def has(self, key: str) -> bool:
    """Whether a previous run finished unit `key` (never without a
    workdir)."""
    return self._dir is not None and os.path.exists(
        os.path.join(self._dir, f'{key}.npz'))

  def __call__(self, key: str, fn) -> dict:
    if self._dir is None:
      return fn()
    path = os.path.join(self._dir, f'{key}.npz')
    if os.path.exists(path):
      with np.load(path) as f:
        return {k: f[k] for k in f.files}
    out = {k: np.asarray(v) for k, v in fn().items()}
    write_npz(path, **out)
    return out
