"""Compile time of the unrolled decoder against the scanned one.

`transformer.forward` unrolls the L blocks; `scan.scan_forward` traces one
block and `jax.lax.scan`s it over the stacked weights. This measures, at a
rehearsal preset's full-size config, the wall time of
`jax.jit(f).lower(*abstract args).compile()` for both, with abstract
parameters only (`jax.ShapeDtypeStruct`, no weights allocated):

* 'plain': one forward of [batch, seq] tokens, logits at the last position;
* 'sweep': the same under `jax.vmap` over `n_rows` interventions, as the
  sweep engine runs it: 'sae' edits the latent masks [M, A] of the preset's
  SAE at its layer (`SAEEdit`; scanned: `AtLayer` with the static layer, a
  `lax.cond` in the scanned block), the layers before it run once outside
  the vmap (`start_layer`, as the engine does; a scan left whole would run
  them per row, since its carry is batched at every layer); 'ablation'
  ablates a direction [M, D] at resid_pre of a per-row traced layer
  (`AtLayer(DirectionalAblation)` in both passes: a select at every
  layer).

Each (dtype, shape, pass) is compiled `repeats` times with the caches
cleared in between and the median kept. `runtime` times warm calls of both
passes at the preset's depth with tiny widths, so that a runtime loss of the
scanned loop would show.

Axis letters: see refusal_jax/axes.py (M interventions, A SAE latents).
"""

import dataclasses
import functools
import statistics
import time
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np

from refusal_jax import errors
from refusal_jax.interventions.directions import DirectionalAblation
from refusal_jax.interventions.sae_edit import SAEEdit
from refusal_jax.models import config as config_lib
from refusal_jax.models import matmul_precision
from refusal_jax.models import scan
from refusal_jax.models import sites
from refusal_jax.models import transformer
from refusal_jax.rehearsal import run as rehearsal
from refusal_jax.sae.model import SAE

PASSES = ('unrolled', 'scanned')
SHAPES = ('plain', 'sweep')
SWEEPS = ('sae', 'ablation')
DTYPES = ('bfloat16', 'float32')


def preset_config(name: str, **overrides) -> config_lib.ModelConfig:
  """The ModelConfig of a rehearsal preset's hub config.json (+ overrides)."""
  return config_lib.from_hf_config(
      dict(rehearsal.preset(name).hub_config, **overrides))


def _sae(config, preset, dtype, make) -> SAE:
  """An SAE at the preset's layer whose arrays are `make(shape, dtype)`."""
  d, a, f32 = config.d_model, preset.d_sae, jnp.float32
  layer = preset.sae_layer
  return SAE(W_enc=make((d, a), dtype), b_enc=make((a,), f32),
             W_dec=make((a, d), dtype), b_dec=make((d,), f32),
             threshold=make((a,), f32), architecture='jumprelu', k=None,
             apply_b_dec_to_input=False, rescale_acts_by_decoder_norm=False,
             site=sites.RESID_POST, layer=layer,
             hook_name=sites.hook_name(sites.RESID_POST, layer),
             model_name=preset.name, neuronpedia_id=None,
             dtype=jnp.dtype(dtype).name)


def _interventions(kind: str, row, shared, layered: bool):
  """The intervention of one sweep row (`layered`: for the scanned pass)."""
  if kind == 'sae':
    edit = SAEEdit(sae=shared, latent_mask=row)
    return (scan.AtLayer(edit, shared.layer, inner_layer=shared.layer)
            if layered else edit)
  direction, layer = row
  return scan.AtLayer(DirectionalAblation(direction,
                                          sites=(sites.RESID_PRE,)), layer)


def passes(config, shape: str, sweep: str = 'sae') -> dict[str, Callable]:
  """{'unrolled': f, 'scanned': f}: f(params, ids, mask, rows, shared).

  `params` are a Transformer's (unrolled) or their `scan.stack_layers`
  (scanned); `rows` [M, ...] and `shared` are the sweep's (ignored by
  'plain'). Each f returns float32 logits at the last position.
  """
  if shape not in SHAPES or sweep not in SWEEPS:
    raise errors.ConfigError(f'shape {shape!r} / sweep {sweep!r}: expected '
                             f'one of {SHAPES} / {SWEEPS}')
  run = {'unrolled': transformer.forward, 'scanned': scan.scan_forward}
  out = {}
  for name, fwd in run.items():
    def f(params, ids, mask, rows, shared, fwd=fwd, name=name):
      if shape == 'plain':
        return fwd(params, config, ids, attention_mask=mask,
                   logits_at='last').logits[:, 0]
      # The layers before the edit run once, outside the vmap, as the sweep
      # engine runs them (`start_layer`); rows at any layer run them all.
      start = shared.layer if sweep == 'sae' else 0
      resid = (fwd(params, config, ids, attention_mask=mask,
                   stop_layer=start).resid if start else None)

      def one(row):
        return fwd(params, config, ids, attention_mask=mask,
                   start_layer=start, resid=resid, logits_at='last',
                   interventions=_interventions(sweep, row, shared,
                                                name == 'scanned')
                   ).logits[:, 0]

      return jax.vmap(one)(rows)
    out[name] = f
  return out


def abstract_args(config, preset, dtype, *, batch: int, seq: int,
                  n_rows: int, sweep: str) -> dict[str, tuple]:
  """{pass: (params, ids, mask, rows, shared)} as jax.ShapeDtypeStruct."""
  params = transformer.abstract_params(config, dtype)
  stacked = jax.eval_shape(functools.partial(scan.stack_layers,
                                             config=config), params)
  tokens = jax.ShapeDtypeStruct((batch, seq), jnp.int32)
  if sweep == 'sae':
    shared = _sae(config, preset, dtype, jax.ShapeDtypeStruct)
    rows = jax.ShapeDtypeStruct((n_rows, preset.d_sae), jnp.float32)
  else:
    shared = None
    rows = (jax.ShapeDtypeStruct((n_rows, config.d_model), jnp.float32),
            jax.ShapeDtypeStruct((n_rows,), jnp.int32))
  rest = (tokens, tokens, rows, shared)
  return {'unrolled': (params, *rest), 'scanned': (stacked, *rest)}


def compile_seconds(fn, args, dtype) -> dict[str, float]:
  """Seconds to trace and lower `jax.jit(fn)` on `args`, and to compile."""
  jax.clear_caches()
  with matmul_precision.scope('auto', dtype):
    began = time.perf_counter()
    lowered = jax.jit(fn).lower(*args)
    mid = time.perf_counter()
    lowered.compile()
    end = time.perf_counter()
  return dict(lower_s=mid - began, compile_s=end - mid, total_s=end - began,
              hlo_lines=lowered.as_text().count('\n'))


def measure_compile(preset_name: str, *, dtypes=DTYPES, shapes=SHAPES,
                    sweep: str = 'sae', batch: int = 32, seq: int = 64,
                    n_rows: int = 16, repeats: int = 3,
                    log: Callable[[str], Any] = print) -> list[dict]:
  """Median compile seconds of both passes per (dtype, shape).

  Returns:
    One row per (dtype, shape): model, dtype, shape, layers, and per pass
    '<pass>_s' (median lower + compile), '<pass>_compile_s' (median
    compile only), '<pass>_hlo_lines', plus 'ratio' (unrolled / scanned).
  """
  preset = rehearsal.preset(preset_name)
  config = preset_config(preset_name)
  for dtype in dtypes:
    if dtype not in DTYPES:
      raise errors.ConfigError(f'dtype {dtype!r}: expected one of {DTYPES}')
  table = []
  for dtype in dtypes:
    args = abstract_args(config, preset, dtype, batch=batch, seq=seq,
                         n_rows=n_rows, sweep=sweep)
    for shape in shapes:
      fns = passes(config, shape, sweep)
      runs = {name: [] for name in PASSES}
      for rep in range(repeats):
        for name in PASSES:  # interleaved: a load spike hits both
          runs[name].append(compile_seconds(fns[name], args[name], dtype))
          log(f'{preset_name} {dtype} {shape} {name} rep {rep}: '
              f'{runs[name][-1]["total_s"]:.2f} s')
      row = dict(model=preset_name, dtype=dtype, shape=shape,
                 sweep=sweep if shape == 'sweep' else None,
                 layers=config.num_layers, batch=batch, seq=seq,
                 n_rows=n_rows if shape == 'sweep' else None,
                 repeats=repeats)
      for name in PASSES:
        row[f'{name}_s'] = statistics.median(r['total_s'] for r in runs[name])
        row[f'{name}_compile_s'] = statistics.median(
            r['compile_s'] for r in runs[name])
        row[f'{name}_hlo_lines'] = runs[name][0]['hlo_lines']
      row['ratio'] = row['unrolled_s'] / row['scanned_s']
      table.append(row)
  return table


def runtime(preset_name: str, *, shapes=SHAPES, sweep: str = 'sae',
            width: int = 64, vocab: int = 512, d_sae: int = 256,
            batch: int = 8, seq: int = 32, n_rows: int = 16,
            calls: int = 10) -> list[dict]:
  """Median warm milliseconds per call of both passes, float32, at the
  preset's depth and layer kinds with a small width (random weights)."""
  preset = rehearsal.preset(preset_name)
  heads = 2
  config = preset_config(
      preset_name, hidden_size=width, intermediate_size=width * 3 // 2,
      num_attention_heads=heads, num_key_value_heads=1,
      head_dim=width // heads, vocab_size=vocab,
      **({'query_pre_attn_scalar': width // heads, 'sliding_window': seq // 2}
         if config_lib.from_hf_config(preset.hub_config).family == 'gemma2'
         else {}))
  preset = dataclasses.replace(preset, d_sae=d_sae)
  rng = np.random.RandomState(0)
  make = lambda shape, dtype: jnp.asarray(  # pylint: disable=g-long-lambda
      0.1 * rng.standard_normal(shape), dtype)
  params = jax.tree.map(lambda a: make(a.shape, a.dtype),
                        transformer.abstract_params(config))
  stacked = scan.stack_layers(params, config)
  ids = jnp.asarray(rng.randint(0, vocab, (batch, seq)), jnp.int32)
  mask = jnp.ones((batch, seq), jnp.int32)
  if sweep == 'sae':
    shared = _sae(config, preset, jnp.float32, make)
    rows = jnp.asarray(rng.rand(n_rows, d_sae) < 0.1, jnp.float32)
  else:
    shared = None
    rows = (make((n_rows, width), jnp.float32),
            jnp.asarray(rng.randint(0, config.num_layers, n_rows), jnp.int32))
  table = []
  for shape in shapes:
    fns = passes(config, shape, sweep)
    row = dict(model=preset_name, shape=shape, layers=config.num_layers,
               width=width, batch=batch, seq=seq, calls=calls)
    outs = {}
    for name in PASSES:
      fn = jax.jit(fns[name])
      p = params if name == 'unrolled' else stacked
      outs[name] = jax.block_until_ready(fn(p, ids, mask, rows, shared))
      times = []
      for _ in range(calls):
        began = time.perf_counter()
        jax.block_until_ready(fn(p, ids, mask, rows, shared))
        times.append(time.perf_counter() - began)
      row[f'{name}_ms'] = 1e3 * statistics.median(times)
    row['max_abs_diff'] = float(jnp.abs(outs['unrolled']
                                        - outs['scanned']).max())
    row['ratio'] = row['unrolled_ms'] / row['scanned_ms']
    table.append(row)
  return table


def format_tables(compiled: list[dict], timed: list[dict]) -> str:
  """Markdown tables of `measure_compile` and `runtime` rows."""
  lines = ['| model | dtype | shape | layers | unrolled s | scanned s | '
           'ratio | unrolled compile s | scanned compile s | HLO lines '
           'unrolled / scanned |', '|' + '---|' * 10]
  for r in compiled:
    shape = r['shape'] + (f' ({r["n_rows"]} x {r["sweep"]})'
                          if r['shape'] == 'sweep' else '')
    lines.append(
        f'| {r["model"]} | {r["dtype"]} | {shape} | {r["layers"]} | '
        f'{r["unrolled_s"]:.2f} | {r["scanned_s"]:.2f} | {r["ratio"]:.2f} | '
        f'{r["unrolled_compile_s"]:.2f} | {r["scanned_compile_s"]:.2f} | '
        f'{r["unrolled_hlo_lines"]} / {r["scanned_hlo_lines"]} |')
  if timed:
    lines += ['', '| model (small width) | shape | layers | width | '
              'unrolled ms | scanned ms | ratio | max abs diff |',
              '|' + '---|' * 8]
    for r in timed:
      lines.append(
          f'| {r["model"]} | {r["shape"]} | {r["layers"]} | {r["width"]} | '
          f'{r["unrolled_ms"]:.2f} | {r["scanned_ms"]:.2f} | '
          f'{r["ratio"]:.2f} | {r["max_abs_diff"]:.1e} |')
  return '\n'.join(lines)


def run(preset_name: str, *, sweep: str = 'sae', dtypes=DTYPES,
        repeats: int = 3, batch: int = 32, seq: int = 64, n_rows: int = 16,
        with_runtime: bool = True, runtime_width: int = 64,
        log: Callable[[str], Any] = print) -> dict:
  """`measure_compile` and (optionally) `runtime`, with a markdown table."""
  compiled = measure_compile(preset_name, dtypes=dtypes, sweep=sweep,
                             batch=batch, seq=seq, n_rows=n_rows,
                             repeats=repeats, log=log)
  timed = (runtime(preset_name, sweep=sweep, width=runtime_width)
           if with_runtime else [])
  return dict(backend=jax.default_backend(), jax=jax.__version__,
              compile=compiled, runtime=timed,
              table=format_tables(compiled, timed))
