"""Ablation throughput: the sweep engine against PyTorch hooks, and a roofline.

In one process, on the same weights, SAE, prompts and masks (`setup.prepare`),
`run_benchmark` measures

* the engine (`engine.feature_sweep`; one SAE, or one per layer of
  `config.sae.layers`): evaluations/s (one evaluation = one prompt under one
  latent mask), warm, with the compile time reported separately
  (`timing.time_engine`);
* the conventional baseline (`torch_baseline.time_torch`): the transformers
  PyTorch model of the same checkpoint with a forward hook at each SAE's site
  that encodes, zero-ablates (or clamps / scales) the masked latents and
  decodes with the error term kept, one full forward pass per mask with the
  prompts batched; its metric values are checked against the engine's;
* the roofline: `roofline.sweep_flops` per evaluation against a square-matmul
  peak measured in the same process;

and, with `config.profile`, the time of each stage of one engine chunk
(`profile.profile_engine`, one SAE only). Writes DIR/benchmark.json and DIR/throughput.png
(engine throughput against the number of masks and against the edited layer,
`plots`).

Every JAX computation runs under `config.matmul_precision`
(models/matmul_precision.py; 'auto': 'highest' for float32), and the
PyTorch baseline under the matching torch settings
(`torch_baseline.matmul_precision`: no TF32 where JAX runs 'highest').
"""

import gc
import os
import tempfile
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from refusal_jax import errors
from refusal_jax.bench import plots
from refusal_jax.bench import profile
from refusal_jax.bench import setup as setup_lib
from refusal_jax.bench import timing
from refusal_jax.bench import torch_baseline
from refusal_jax.models import matmul_precision
from refusal_jax.pipeline import artifacts
from refusal_jax.sweeps import engine
from refusal_jax.sweeps import roofline

# The keys of benchmark.json a summary shows first.
KEYS = ('jax_evals_per_s', 'torch_evals_per_s', 'speedup', 'achieved_gflops',
        'peak_gflops', 'fraction_of_peak', 'device', 'dtype', 'model',
        'n_prompts', 'n_masks', 'layer', 'n_tokens', 'compile_seconds',
        'n_compiles', 'max_abs_diff', 'max_abs_metric', 'matmul_precision')


def _device() -> str:
  dev = jax.devices()[0]
  if dev.platform == 'cpu':
    return f'cpu ({os.cpu_count()} cores)'
  return f'{dev.platform}: {dev.device_kind}'


def run_benchmark(config, workdir: str, mesh=None) -> dict[str, Any]:
  """Runs the whole benchmark; writes benchmark.json and throughput.png.

  Args:
    config: the benchmark config (see configs/benchmark_gemma2_2b_shape.py).
    workdir: output directory.
    mesh: optional device mesh for the engine (see parallel/mesh.py).

  Returns:
    The dict written to benchmark.json.

  Raises:
    errors.RefusalJaxError: on a missing asset or bad config value, or when
      in float32 the PyTorch and JAX metric values differ by
      `config.tolerance` or more (after the files are written).
  """
  policy = matmul_precision.check(config.get('matmul_precision', 'auto'))
  dtype = config.dtype if config.dtype in setup_lib.DTYPES else None
  precision = matmul_precision.effective(policy, dtype)
  with matmul_precision.scope(policy, dtype):
    return _run(config, workdir, mesh, precision)


def _run(config, workdir: str, mesh, precision: str) -> dict[str, Any]:
  """`run_benchmark` under the JAX matmul precision `precision`."""
  if config.profile and config.sae.get('layers'):
    raise errors.ConfigError('profile times a one-SAE chunk; set profile=False '
                             'with sae.layers')
  os.makedirs(workdir, exist_ok=True)
  load_start = os.getloadavg()
  with tempfile.TemporaryDirectory(prefix='benchmark-ablation-') as tmp:
    setup = setup_lib.prepare(config, tmp, mesh)
    cfg = setup.model.config
    measure_peak = lambda: roofline.measure_matmul_peak(
        jnp.dtype(config.dtype), config.peak.size, config.peak.repeats)
    # The peak is measured right before and right after the engine and the
    # larger value is used (the more conservative fraction_of_peak).
    peaks = [measure_peak()]
    jax_run = timing.time_engine(setup, config)
    peaks.append(measure_peak())
    peak = max(peaks)
    torch_run = torch_baseline.time_torch(setup, config, precision)
    gc.collect()  # release the PyTorch model before the profile and plot
  n_masks, n_prompts = setup.masks.shape[0], setup.input_ids.shape[0]
  t = setup.input_ids.shape[1]
  start = engine.sae_resume_layer(setup.sae)
  n_first = int((setup.space.locate(setup.features)[0] == 0).sum())
  flops = roofline.sweep_flops(
      cfg, n_tokens=t, site_layer_resume=start,
      d_sae_candidates=setup.candidates.shape[0],
      encoded_candidates=setup.candidates.shape[0] - n_first,
      metric_vocab=(cfg.vocab_size if setup.metric.name != 'logit_diff' else
                    len(setup.metric.refusal_ids) +
                    len(setup.metric.comply_ids)))
  torch_flops = roofline.hooked_forward_flops(
      cfg, n_tokens=t, d_sae=sum(s.d_sae for s in setup.space.saes))
  diff = np.abs(torch_run['values'] -
                jax_run['values'][:torch_run['n_masks']])
  achieved = jax_run['evals_per_s'] * flops / 1e9
  result = dict(
      jax_evals_per_s=jax_run['evals_per_s'],
      torch_evals_per_s=torch_run['evals_per_s'],
      speedup=jax_run['evals_per_s'] / torch_run['evals_per_s'],
      achieved_gflops=achieved, peak_gflops=peak,
      peak_gflops_before_after=peaks,
      fraction_of_peak=achieved / peak, device=_device(),
      dtype=config.dtype, model=config.model.name, n_prompts=n_prompts,
      n_masks=n_masks, layer=setup.sae.layer, site=setup.sae.site,
      sae_layers=[s.layer for s in setup.space.saes],
      n_tokens=t, compile_seconds=jax_run['compile_seconds'],
      n_compiles=jax_run['n_compiles'],
      n_compiles_after_first_chunk=jax_run['n_compiles_after'],
      matmul_precision=precision,
      torch_float32_matmul=torch_run['float32_matmul'],
      max_abs_diff=float(diff.max()),
      max_abs_metric=float(np.abs(torch_run['values']).max()),
      jax_seconds=jax_run['seconds'], torch_seconds=torch_run['seconds'],
      torch_n_masks=torch_run['n_masks'], torch_device=torch_run['device'],
      torch_threads=torch_run['threads'],
      flops_per_eval=flops, torch_flops_per_eval=torch_flops,
      torch_achieved_gflops=torch_run['evals_per_s'] * torch_flops / 1e9,
      d_sae=setup.sae.d_sae, sae_l0=setup.l0,
      n_candidates=int(setup.candidates.shape[0]),
      chunk_masks=config.sweep.chunk_masks,
      chunk_prompts=config.sweep.chunk_prompts,
      trim_last_layer=config.sweep.trim_last_layer,
      metric=setup.metric.name, checkpoint=config.model.checkpoint or None,
      metric_mean=float(jax_run['values'].mean()),
      metric_std_over_masks=float(jax_run['values'].std(0).mean()),
      profile_chunk=min(config.sweep.chunk_masks, n_masks))
  if config.profile:
    result['profile'] = profile.profile_engine(setup, config)
  curves = plots.throughput_curves(setup, config)
  result['throughput_vs_masks'] = curves['by_masks']
  result['throughput_vs_layer'] = curves['by_layer']
  result['load_average_start'] = list(load_start)
  result['load_average_end'] = list(os.getloadavg())
  result['config'] = config.to_dict()
  result['provenance'] = artifacts.provenance()
  artifacts.write_json(os.path.join(workdir, 'benchmark.json'), result)
  plots.plot(curves, result, os.path.join(workdir, 'throughput.png'))
  if config.dtype == 'float32' and not diff.max() < config.tolerance:
    raise errors.RefusalJaxError(
        f'PyTorch and JAX metric values differ by up to {diff.max():.3g} '
        f'(tolerance {config.tolerance}); see {workdir}/benchmark.json')
  return result
