"""Two processes (jax.distributed, gloo on CPU) give the one-process summary.

Both runs use the tiny setup of tests/pipeline with smaller searches (the
same overrides for both). The two processes share one workdir, as on
localhost; only process 0 writes into it.
"""

import json
import os
import socket
import subprocess
import sys

import jax
import numpy as np
import pytest

import numerics
import tiny_setup
from refusal_jax.pipeline import artifacts

REPO = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))
TIMEOUT = 240
# Smaller searches: the test is about multi-process equality, not science.
OVERRIDES = ('--config.features.top_k=4', '--config.fm.n_masks=16',
             '--config.fm.pool_size=6', '--config.fm.steps=50',
             '--config.hydra.max_candidates=4', '--config.data.n_test=4',
             '--config.eval.n_ce_prompts=4', '--config.eval.max_new_tokens=4',
             '--config.eval.ce_max_new_tokens=4')
# Fields that depend on the run, not on the results.
RUN_FIELDS = ('seconds', 'provenance')


def _free_port() -> int:
  with socket.socket() as s:
    s.bind(('localhost', 0))
    return s.getsockname()[1]


def _launch(root, workdir, log, *flags):
  """Starts experiments.dissect on CPU with its output in the file `log`."""
  env = dict(os.environ, JAX_PLATFORMS='cpu', PYTHONPATH=REPO,
             JAX_DISABLE_MOST_OPTIMIZATIONS='1')  # compile time dominates
  env.pop('XLA_FLAGS', None)  # one CPU device per process
  cmd = [sys.executable, '-m', 'experiments.dissect',
         f'--config=tests/pipeline/tiny_config.py:{root}',
         f'--workdir={workdir}', *OVERRIDES, *flags]
  with open(log, 'w') as f:
    proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=f,
                            stderr=subprocess.STDOUT)
  return proc, log


def _finish(runs):
  """Waits for every run; kills all of them if one fails or hangs.

  Returns:
    The output of each run.
  """
  logs = []
  try:
    for proc, log in runs:
      proc.wait(timeout=TIMEOUT)
      logs.append(open(log).read())
      assert proc.returncode == 0, logs[-1][-3000:]
  finally:
    for proc, _ in runs:
      if proc.poll() is None:
        proc.kill()
        proc.wait()
  return logs


def _files(workdir):
  return sorted(os.path.relpath(os.path.join(d, f), workdir)
                for d, _, fs in os.walk(workdir) for f in fs)


def _assert_same(a, b, path='summary', scale=None):
  """Equal up to float rounding (the sharded sums may be ordered otherwise).

  A float may differ by FORWARD_ULPS epsilons of its scale: the largest
  magnitude in the list it belongs to, or its own (tests/numerics.py).
  """
  if isinstance(a, float) or isinstance(b, float):
    scale = max(abs(a), abs(b)) if scale is None else scale
    assert abs(a - b) <= numerics.FORWARD_ULPS * numerics.EPS32 * scale, (
        path, a, b)
  elif isinstance(a, list) and a and all(
      isinstance(x, (int, float)) and not isinstance(x, bool) for x in a):
    assert isinstance(b, list) and len(a) == len(b), (path, a, b)
    scale = max(abs(x) for x in a + b)
    for i, (x, y) in enumerate(zip(a, b)):
      _assert_same(x, y, f'{path}[{i}]', scale)
  elif isinstance(a, dict) and isinstance(b, dict):
    assert set(a) == set(b), (path, sorted(set(a) ^ set(b)))
    for k in a:
      _assert_same(a[k], b[k], f'{path}.{k}')
  elif isinstance(a, list) and isinstance(b, list):
    assert len(a) == len(b), (path, a, b)
    for i, (x, y) in enumerate(zip(a, b)):
      _assert_same(x, y, f'{path}[{i}]')
  else:
    assert a == b, (path, a, b)


# Three pipeline runs in subprocesses (about 45 s on 2 cores): `make
# test-slow`; tests/parallel/test_sharding.py covers meshes in one process.
@pytest.mark.slow
def test_two_processes_give_the_one_process_summary(tmp_path):
  root = str(tmp_path / 'tiny')
  tiny_setup.build(root)
  one, two = str(tmp_path / 'one'), str(tmp_path / 'two')
  port = _free_port()
  dist = lambda i: (f'--coordinator_address=localhost:{port}',
                    '--num_processes=2', f'--process_id={i}')
  # All three at once: the two-process run waits on its collectives.
  log = lambda name: str(tmp_path / f'{name}.log')
  logs = _finish([_launch(root, two, log('p0'), *dist(0)),
                  _launch(root, two, log('p1'), *dist(1)),
                  _launch(root, one, log('one'))])
  assert 'process 1/2' in logs[1] and "'data': 2" in logs[1], logs[1][-2000:]
  ref = json.load(open(os.path.join(one, 'summary.json')))
  got = json.load(open(os.path.join(two, 'summary.json')))
  strip = lambda s: {k: v for k, v in s.items() if k not in RUN_FIELDS}
  _assert_same(strip(got), strip(ref))
  assert set(ref) - set(strip(ref)) == set(RUN_FIELDS)
  # Process 1 wrote nothing of its own: the same files, no temporaries.
  assert _files(two) == _files(one)


def test_other_processes_write_nothing(tmp_path, monkeypatch):
  monkeypatch.setattr(jax, 'process_index', lambda: 1)
  workdir = str(tmp_path / 'w')
  artifacts.claim_workdir(workdir, {'a': 1})
  artifacts.write_json(os.path.join(workdir, 'x.json'), {'a': 1})
  artifacts.write_text(os.path.join(workdir, 'x.txt'), 'a')
  artifacts.write_npz(os.path.join(workdir, 'x.npz'), a=np.zeros(2))
  memo = artifacts.Memo(workdir, 'stage')
  assert memo('unit', lambda: {'a': np.ones(2)})['a'].tolist() == [1, 1]
  assert _files(workdir) == []
