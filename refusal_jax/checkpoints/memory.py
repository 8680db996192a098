"""Peak host memory of `load_model` (and a forward pass), in a fresh process.

  python -m refusal_jax.checkpoints.memory CHECKPOINT_DIR \
      [--dtype=bfloat16] [--forward_tokens=21] [--mesh=DATA,FSDP,TENSOR]

prints one JSON line (see `measure_here`). `measure(directory, ...)` runs that
in a subprocess, so that the peak resident set size (VmHWM: anonymous memory
and resident pages of mapped files alike) belongs to loading alone.
"""

import argparse
import json
import os
import resource
import subprocess
import sys
import time

GB = 10**9


def _status_bytes(field: str) -> int:
  """A `kB` field of /proc/self/status (e.g. 'VmHWM'), in bytes."""
  with open('/proc/self/status') as f:
    for line in f:
      if line.startswith(field + ':'):
        return int(line.split()[1]) * 1024
  raise KeyError(field)


def peak_rss() -> int:
  """Peak resident set size of this process so far, in bytes."""
  try:
    return _status_bytes('VmHWM')
  except (OSError, KeyError):
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def current_rss() -> int:
  """Resident set size of this process now, in bytes."""
  try:
    return _status_bytes('VmRSS')
  except (OSError, KeyError):
    return peak_rss()


def measure_here(directory: str, dtype: str = 'bfloat16',
                 forward_tokens: int = 0,
                 mesh_shape: tuple[int, int, int] | None = None,
                 generate_tokens: int = 0) -> dict:
  """Loads `directory` in this process and reports its memory in bytes.

  Call it in a fresh process (see `measure`): the peaks include everything
  this process did before.

  Args:
    directory: checkpoint directory.
    dtype: dtype to load in.
    forward_tokens: tokens of one forward pass after loading (0: none).
    mesh_shape: optional (data, fsdp, tensor) sizes: load into that mesh
      (parallel/mesh.py) and also report `shard_bytes`, the bytes the
      devices hold.
    generate_tokens: then greedy-generate this many tokens for 2 x 30
      prompt tokens (0: none).

  Returns:
    {'baseline': RSS after importing JAX and this package,
     'load_peak': peak RSS up to the end of loading,
     'forward_peak': peak RSS after `forward_tokens` tokens went through one
       forward pass (absent when forward_tokens is 0),
     'generate_peak': peak RSS after the generation (absent when
       generate_tokens is 0),
     'param_bytes': bytes of the loaded parameters,
     'load_s', 'forward_s', 'generate_s': wall-clock seconds}
  """
  # pylint: disable=g-import-not-at-top
  import jax
  import numpy as np
  from refusal_jax.checkpoints import load as load_lib
  from refusal_jax.parallel import mesh as mesh_lib
  # pylint: enable=g-import-not-at-top

  jax.devices()
  mesh = None
  if mesh_shape is not None:
    mesh = mesh_lib.make_mesh(dict(zip(mesh_lib.AXES, mesh_shape)))
  out = {'baseline': current_rss()}
  start = time.perf_counter()
  model = load_lib.load_model(directory, dtype=dtype, tokenizer=False,
                              mesh=mesh)
  leaves = jax.block_until_ready(jax.tree.leaves(model.params))
  out['load_s'] = time.perf_counter() - start
  out['load_peak'] = peak_rss()
  out['param_bytes'] = sum(x.nbytes for x in leaves)
  if mesh is not None:
    out['shard_bytes'] = sum(s.data.nbytes for x in leaves
                             for s in x.addressable_shards)
  if forward_tokens:
    ids = np.random.RandomState(0).randint(
        3, model.config.vocab_size, (1, forward_tokens))
    start = time.perf_counter()
    jax.block_until_ready(model.forward(ids).logits)
    out['forward_s'] = time.perf_counter() - start
    out['forward_peak'] = peak_rss()
  if generate_tokens:
    ids = np.random.RandomState(1).randint(3, model.config.vocab_size, (2, 30))
    start = time.perf_counter()
    model.generate(ids, max_new_tokens=generate_tokens)
    out['generate_s'] = time.perf_counter() - start
    out['generate_peak'] = peak_rss()
  return out


def measure(directory: str, dtype: str = 'bfloat16', forward_tokens: int = 0,
            timeout: float | None = None) -> dict:
  """`measure_here` run in a fresh Python subprocess (CPU backend)."""
  env = dict(os.environ, JAX_PLATFORMS=os.environ.get('JAX_PLATFORMS', 'cpu'))
  cmd = [sys.executable, '-m', 'refusal_jax.checkpoints.memory', directory,
         f'--dtype={dtype}', f'--forward_tokens={forward_tokens}']
  proc = subprocess.run(cmd, capture_output=True, text=True, env=env,
                        timeout=timeout, check=False)
  if proc.returncode != 0:
    raise RuntimeError(f'{" ".join(cmd)} failed ({proc.returncode}):\n'
                       f'{proc.stderr[-4000:]}')
  return json.loads(proc.stdout.strip().splitlines()[-1])


def available_bytes() -> int:
  """MemAvailable of /proc/meminfo, in bytes."""
  with open('/proc/meminfo') as f:
    for line in f:
      if line.startswith('MemAvailable:'):
        return int(line.split()[1]) * 1024
  raise OSError('no MemAvailable in /proc/meminfo')


def bound(param_bytes: int) -> int:
  """The bound on peak host memory of a load: 1.1 x parameters + 1 GB."""
  return int(1.1 * param_bytes) + GB


def bound_row(directory: str, ckpt_bytes: int, dtype: str,
              forward_tokens: int) -> dict:
  """Measures loading `directory` in `dtype` against `bound`, in GB.

  A dtype whose bound exceeds the memory available now is skipped with a
  note rather than run into the OOM killer.
  """
  param_bytes = ckpt_bytes * (2 if dtype == 'float32' else 1)
  row = {'dtype': dtype, 'checkpoint_gb': ckpt_bytes / GB,
         'bound_gb': bound(param_bytes) / GB}
  if bound(param_bytes) > available_bytes():
    row['skipped'] = (f'needs up to {bound(param_bytes) / GB:.1f} GB, '
                      f'{available_bytes() / GB:.1f} GB available')
    return row
  m = measure(directory, dtype, forward_tokens)
  row.update({k: (v / GB if k.endswith(('peak', 'baseline', 'bytes'))
                  else v) for k, v in m.items()})
  row['within_bound'] = m['load_peak'] <= bound(m['param_bytes'])
  row['load_ratio'] = m['load_peak'] / m['param_bytes']
  return row


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('directory')
  parser.add_argument('--dtype', default='bfloat16')
  parser.add_argument('--forward_tokens', type=int, default=0)
  parser.add_argument('--generate_tokens', type=int, default=0)
  parser.add_argument('--mesh', default=None,
                      help='DATA,FSDP,TENSOR sizes of a device mesh')
  args = parser.parse_args(argv)
  mesh_shape = None
  if args.mesh:
    mesh_shape = tuple(int(n) for n in args.mesh.split(','))
  print(json.dumps(measure_here(args.directory, args.dtype,
                                args.forward_tokens, mesh_shape,
                                args.generate_tokens)))


if __name__ == '__main__':
  main()
