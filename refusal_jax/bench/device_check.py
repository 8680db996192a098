"""The device check: what to run on a GPU or TPU, in one command and one JSON.

`run_device_check(workdir, plan)` runs three steps from the repository root,
each as its own subprocess under its own timeout (a step that fails or runs
out of time is recorded as such and the next one still runs):

* `tests`: pytest on the parity, engine and precision tests (float32 against
  transformers and against the plain forward pass, at 'highest' matmul
  precision: models/matmul_precision.py);
* `benchmark`: `experiments.benchmark_ablation` at Gemma-2-2B's shape in
  bf16 with all 26 layers (configs/benchmark_gemma2_2b_shape.py plus
  `Plan.benchmark_flags`): the engine's evaluations/s against the PyTorch
  hook loop on the same device and its fraction of the bf16 matmul peak;
* `rehearsal`: `experiments.rehearse` of the full-size gemma-2-2b-it files
  in paper mode at the paper's scale (`Plan.rehearsal_flags`: 128 prompts,
  16 per-layer SAEs searched as one space): per stage the wall seconds,
  compile seconds and number of compilations.

It writes DIR/device_check.json (`SCHEMA` lists its keys) and each step's
output to DIR/<step>.log. `Plan.smoke()` shrinks every size for a CPU run
(tests/bench/test_device_check.py). This process never starts a JAX
backend itself (a GPU's memory stays free for the steps); the device is
named by a short subprocess.
"""

import dataclasses
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
from typing import Any

from refusal_jax import atomic
from refusal_jax import errors

STEPS = ('tests', 'benchmark', 'rehearsal')
# The keys of device_check.json and of each step's entry.
SCHEMA = dict(
    top=('device', 'steps', 'total_seconds', 'plan', 'provenance'),
    step=('status', 'returncode', 'seconds', 'timeout_s', 'command', 'log'),
    tests=('passed', 'failed', 'skipped'),
    benchmark=('speedup', 'fraction_of_peak', 'jax_evals_per_s',
               'torch_evals_per_s', 'peak_gflops', 'compile_seconds',
               'n_compiles', 'dtype', 'matmul_precision', 'max_abs_diff'),
    rehearsal=('stages', 'total_seconds', 'compile_seconds',
               'compile_share', 'n_compiles'))

TESTS = ('tests/models/test_parity.py', 'tests/sweeps/test_engine.py',
         'tests/sweeps/test_engine_trim.py',
         'tests/models/test_matmul_precision.py')
# The H200 measurement: all 26 layers, bf16, a 16k SAE at layer 12,
# 32 prompts x 64 tokens, 512 masks; the peak measured on 8192-square bf16
# matmuls.
BENCHMARK_FLAGS = (
    '--config.dtype=bfloat16', '--config.model.name=gemma2-2b-shape',
    '--config.model.num_layers=26', '--config.sae.layer=12',
    '--config.prompts.n_prompts=32', '--config.prompts.n_tokens=64',
    '--config.sweep.n_masks=512', '--config.sweep.chunk_masks=64',
    '--config.sweep.chunk_prompts=32', '--config.torch.n_masks=16',
    '--config.torch.batch_prompts=32', '--config.peak.size=8192',
    '--config.plot.layers=(1,6,12,20)')
# The paper's scale: >= 100 prompts per split and stage, 16 per-layer SAEs
# (layers 0-15) searched as one feature space, K 16 per SAE, every
# post-instruction position of stage 1.
REHEARSAL_FLAGS = ('--preset=gemma-2-2b-it', '--prompts=128', '--masks=256',
                   '--new_tokens=64', '--features=16', '--positions=0',
                   '--saes=16')


@dataclasses.dataclass
class Plan:
  """What each step runs.

  Attributes:
    steps: the steps to run, of STEPS.
    tests: pytest paths (relative to the repository root).
    benchmark_config: the benchmark's config file.
    benchmark_flags: its config overrides.
    rehearsal_flags: flags of experiments.rehearse (--root is added).
    timeouts: seconds per step.
  """
  steps: tuple[str, ...] = STEPS
  tests: tuple[str, ...] = TESTS
  benchmark_config: str = 'configs/benchmark_gemma2_2b_shape.py'
  benchmark_flags: tuple[str, ...] = BENCHMARK_FLAGS
  rehearsal_flags: tuple[str, ...] = REHEARSAL_FLAGS
  timeouts: dict = dataclasses.field(default_factory=lambda: dict(
      tests=600, benchmark=900, rehearsal=1800))

  @classmethod
  def smoke(cls, **overrides) -> 'Plan':
    """Every size shrunk for a CPU run of a minute or two: one small test
    file, a 3-layer benchmark model, the tiny rehearsal preset with 2 SAEs."""
    plan = cls(
        tests=('tests/pipeline/test_stage_stats.py',),
        benchmark_flags=(
            '--config.model.name=smoke', '--config.model.vocab_size=101',
            '--config.model.d_model=32', '--config.model.num_layers=3',
            '--config.model.num_heads=2', '--config.model.num_kv_heads=1',
            '--config.model.head_dim=16', '--config.model.mlp_dim=48',
            '--config.model.sliding_window=5', '--config.sae.d_sae=64',
            '--config.sae.layer=1', '--config.sae.target_l0=8',
            '--config.metric.refusal_ids=(5,17)',
            '--config.prompts.n_prompts=2', '--config.prompts.n_tokens=12',
            '--config.sweep.n_masks=4', '--config.sweep.n_candidates=8',
            '--config.sweep.chunk_masks=2', '--config.sweep.chunk_prompts=2',
            '--config.sweep.repeats=1', '--config.torch.n_masks=2',
            '--config.torch.batch_prompts=2', '--config.peak.size=64',
            '--config.peak.repeats=2', '--config.profile=False',
            '--config.plot.n_masks=()', '--config.plot.layers=()'),
        rehearsal_flags=('--preset=llama-3.1-8b-instruct-tiny', '--prompts=2',
                         '--masks=4', '--new_tokens=2', '--features=2',
                         '--positions=1', '--saes=2'))
    return dataclasses.replace(plan, **overrides)


def repo_root() -> str:
  """The checkout this package runs from (it holds tests/ and experiments/).

  Raises:
    errors.ConfigError: when the package is not run from a checkout.
  """
  root = os.path.dirname(os.path.dirname(os.path.dirname(
      os.path.abspath(__file__))))
  if not all(os.path.isdir(os.path.join(root, d))
             for d in ('tests', 'experiments', 'configs')):
    raise errors.ConfigError(
        f'the device check runs from a checkout of the repository; {root} '
        'has no tests/, experiments/ and configs/')
  return root


def _commands(workdir: str, plan: Plan) -> dict[str, list[str]]:
  py = sys.executable
  return dict(
      tests=[py, '-m', 'pytest', '-p', 'no:cacheprovider', *plan.tests],
      benchmark=[py, '-m', 'experiments.benchmark_ablation',
                 f'--config={plan.benchmark_config}', *plan.benchmark_flags,
                 f'--workdir={os.path.join(workdir, "benchmark")}'],
      rehearsal=[py, '-m', 'experiments.rehearse', *plan.rehearsal_flags,
                 f'--root={os.path.join(workdir, "rehearsal")}'])


def _run_step(cmd: list[str], timeout: float, cwd: str,
              log: str) -> dict[str, Any]:
  """Runs one step; its status, return code, seconds and log."""
  start = time.time()
  with open(log, 'w') as out:
    try:
      proc = subprocess.run(cmd, cwd=cwd, stdout=out, stderr=subprocess.STDOUT,
                            timeout=timeout, check=False)
      code = proc.returncode
      status = 'ok' if code == 0 else 'failed'
    except subprocess.TimeoutExpired:
      code, status = None, 'timeout'
  return dict(status=status, returncode=code,
              seconds=round(time.time() - start, 1), timeout_s=timeout,
              command=' '.join(cmd[1:]) if cmd[0] == sys.executable
              else ' '.join(cmd), log=os.path.basename(log))


def _pytest_counts(log: str) -> dict[str, int | None]:
  """passed / failed / skipped from pytest's closing line."""
  with open(log) as f:
    lines = [l for l in f.read().splitlines() if l.strip()]
  tail = lines[-1] if lines else ''
  count = lambda word: (int(m.group(1)) if (
      m := re.search(rf'(\d+) {word}', tail)) else 0)
  if not re.search(r'\d+ (passed|failed|error)', tail):
    return dict(passed=None, failed=None, skipped=None)
  return dict(passed=count('passed'),
              failed=count('failed') + count('error'),
              skipped=count('skipped'))


def _read_json(path: str) -> dict | None:
  if not os.path.exists(path):
    return None
  with open(path) as f:
    return json.load(f)


def _write_json(path: str, obj: dict) -> None:
  """Writes JSON atomically (without JAX: artifacts' writer asks JAX which
  process it is, which would start a backend here)."""
  fd, tmp = tempfile.mkstemp(prefix='.tmp-', dir=os.path.dirname(path))
  with os.fdopen(fd, 'w') as f:
    json.dump(obj, f, indent=2, sort_keys=True)
  atomic.as_new_file(tmp)
  os.replace(tmp, path)


def _benchmark_result(workdir: str) -> dict[str, Any]:
  result = _read_json(os.path.join(workdir, 'benchmark', 'benchmark.json'))
  if result is None:
    return {k: None for k in SCHEMA['benchmark']}
  return {k: result.get(k) for k in SCHEMA['benchmark']}


def _rehearsal_result(workdir: str, plan: Plan) -> dict[str, Any]:
  preset = next((f.split('=', 1)[1] for f in plan.rehearsal_flags
                 if f.startswith('--preset=')), 'gemma-2-2b-it')
  result = _read_json(os.path.join(workdir, 'rehearsal', preset,
                                  'rehearsal.json'))
  if result is None:
    return {k: None for k in SCHEMA['rehearsal']}
  stages = result['stages']
  compile_s = sum(s.get('compile_seconds') or 0.0 for s in stages.values())
  total = result.get('total_seconds') or 0.0
  return dict(
      stages=stages, total_seconds=total, compile_seconds=round(compile_s, 1),
      compile_share=round(compile_s / total, 3) if total else None,
      n_compiles=sum(s.get('n_compiles') or 0 for s in stages.values()))


def _device() -> str:
  """The device JAX sees, from a subprocess (this process stays off it)."""
  code = ('import jax; d = jax.devices()[0]; '
          'print(d.platform, d.device_kind, len(jax.devices()), sep="|")')
  try:
    out = subprocess.run([sys.executable, '-c', code], capture_output=True,
                         text=True, timeout=300, check=True).stdout
    platform, kind, n = out.strip().splitlines()[-1].split('|')
    return f'{platform}: {kind} x {n}'
  except (subprocess.SubprocessError, ValueError, IndexError):
    return 'unknown'


def run_device_check(workdir: str, plan: Plan | None = None) -> dict:
  """Runs the plan's steps; writes and returns DIR/device_check.json.

  Args:
    workdir: output directory (benchmark/ and rehearsal/ go under it).
    plan: what to run (default: the full-size `Plan()`).

  Returns:
    {'device', 'steps': {step: {status, returncode, seconds, timeout_s,
     command, log, and the step's figures (SCHEMA)}}, 'total_seconds',
     'plan', 'provenance'}.

  Raises:
    errors.ConfigError: an unknown step, or not run from a checkout.
  """
  plan = plan or Plan()
  unknown = [s for s in plan.steps if s not in STEPS]
  if unknown:
    raise errors.ConfigError(f'unknown device-check steps {unknown}; '
                             f'expected some of {STEPS}')
  root = repo_root()
  workdir = os.path.abspath(workdir)
  os.makedirs(workdir, exist_ok=True)
  start = time.time()
  commands = _commands(workdir, plan)
  steps = {}
  for name in plan.steps:
    log = os.path.join(workdir, f'{name}.log')
    step = _run_step(commands[name], plan.timeouts[name], root, log)
    if name == 'tests':
      step.update(_pytest_counts(log))
    elif name == 'benchmark':
      step.update(_benchmark_result(workdir))
    else:
      step.update(_rehearsal_result(workdir, plan))
    steps[name] = step
    _write(workdir, plan, steps, start)  # a partial record after each step
  return _write(workdir, plan, steps, start, device=_device())


def _provenance(root: str) -> dict:
  """Git commit, JAX version and Python, without starting a backend."""
  import jax  # pylint: disable=g-import-not-at-top
  try:
    commit = subprocess.run(['git', 'rev-parse', 'HEAD'], cwd=root,
                            capture_output=True, text=True, timeout=5,
                            check=False).stdout.strip() or None
  except (OSError, subprocess.SubprocessError):
    commit = None
  return dict(git_commit=commit, jax_version=jax.__version__,
              python=platform.python_version())


def _write(workdir, plan, steps, start, device=None) -> dict:
  result = dict(device=device, steps=steps,
                total_seconds=round(time.time() - start, 1),
                plan=dataclasses.asdict(plan),
                provenance=_provenance(repo_root()))
  _write_json(os.path.join(workdir, 'device_check.json'), result)
  return result


def summary_lines(result: dict) -> list[str]:
  """A few printable lines of the result."""
  lines = [f"device: {result['device']}"]
  for name, s in result['steps'].items():
    lines.append(f"{name}: {s['status']} in {s['seconds']} s")
  b = result['steps'].get('benchmark')
  if b and b.get('speedup') is not None:
    lines.append(f"benchmark: {b['speedup']:.1f}x the hook loop, "
                 f"{b['fraction_of_peak']:.2f} of the {b['dtype']} peak, "
                 f"{b['compile_seconds']:.1f} s compiling")
  r = result['steps'].get('rehearsal')
  if r and r.get('stages'):
    lines.append('| stage | wall s | compile s | compilations |')
    lines.append('|---|---|---|---|')
    for name, s in r['stages'].items():
      lines.append(f"| {name} | {s['seconds']} | {s['compile_seconds']} | "
                   f"{s['n_compiles']} |")
  return lines

