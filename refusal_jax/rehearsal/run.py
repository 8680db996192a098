"""A full-size rehearsal of the main job on random weights.

`prepare(preset, root)` writes, once, what a user downloads: a random-weight
checkpoint laid out as the hub's (the hub's config.json, sharded bf16
safetensors with their index, a tokenizer with the real vocabulary size and
chat format) and a random SAE in the Gemma Scope / Llama Scope layout at the
layer the model's config file searches. `rehearse(...)` then runs the whole
dissection (`pipeline.dissect.run`) with the model's own config file, scaled
down in prompts, masks and generated tokens only, and returns per stage the
wall seconds, the compile seconds and count, and the peak host memory.

Random weights do not refuse; the point is that every stage runs at full
shape. So the refusal filter of the prompt sets is off (nothing would pass
it) and the results themselves mean nothing.
"""

import dataclasses
import importlib
import json
import os
import shutil
import time
from typing import Callable

import ml_collections
import numpy as np

from refusal_jax import errors
from refusal_jax.checkpoints import synthetic
from refusal_jax.models import config as config_lib
from refusal_jax.pipeline import artifacts
from refusal_jax.pipeline import dissect
from refusal_jax.pipeline import stage_stats
from refusal_jax.rehearsal import hub_configs
from refusal_jax.rehearsal import saes
from refusal_jax.rehearsal import tokenizers

_DONE = 'rehearsal_files.json'


@dataclasses.dataclass(frozen=True)
class Preset:
  """What one rehearsal writes and runs.

  Attributes:
    name: preset name ('gemma-2-2b-it', 'llama-3.1-8b-instruct', or a '-tiny'
      variant with the same layout at a few layers and a small width).
    hub_config: the checkpoint's config.json.
    tokenizer: builds the tokenizer.
    sae_format: 'gemma_scope' or 'llama_scope'.
    sae_layer: the layer whose resid_post the SAE reads.
    d_sae: SAE latents.
    config_file: the model's pipeline config (configs/<name>.py).
  """
  name: str
  hub_config: dict
  tokenizer: Callable
  sae_format: str
  sae_layer: int
  d_sae: int
  config_file: str


PRESETS = {
    'gemma-2-2b-it': Preset(
        'gemma-2-2b-it', hub_configs.GEMMA2_2B_IT, tokenizers.gemma2_tokenizer,
        'gemma_scope', 16, 16384, 'configs/gemma2_2b_it.py'),
    'llama-3.1-8b-instruct': Preset(
        'llama-3.1-8b-instruct', hub_configs.LLAMA31_8B_INSTRUCT,
        tokenizers.llama31_tokenizer, 'llama_scope', 13, 32768,
        'configs/llama31_8b_it.py'),
    # The same files at 4 layers and width 64 (tests): real vocabularies,
    # chat formats, shard layout and SAE layouts.
    'gemma-2-2b-it-tiny': Preset(
        'gemma-2-2b-it-tiny', dict(
            hub_configs.GEMMA2_2B_IT, hidden_size=64, intermediate_size=96,
            num_hidden_layers=4, num_attention_heads=2, num_key_value_heads=1,
            head_dim=32, query_pre_attn_scalar=32, sliding_window=16),
        tokenizers.gemma2_tokenizer, 'gemma_scope', 2, 16384,
        'configs/gemma2_2b_it.py'),
    'llama-3.1-8b-instruct-tiny': Preset(
        'llama-3.1-8b-instruct-tiny', dict(
            hub_configs.LLAMA31_8B_INSTRUCT, hidden_size=64,
            intermediate_size=96, num_hidden_layers=4, num_attention_heads=4,
            num_key_value_heads=2),
        tokenizers.llama31_tokenizer, 'llama_scope', 2, 512,
        'configs/llama31_8b_it.py'),
}


def preset(name: str) -> Preset:
  if name not in PRESETS:
    raise errors.ConfigError(f'unknown rehearsal preset {name!r}; expected '
                             f'one of {sorted(PRESETS)}')
  return PRESETS[name]


def _mean_resid_norm(model_dir: str, tok, layer: int) -> float:
  """Mean norm of resid_post[layer] over a few chat prompts."""
  from refusal_jax.data import chat  # pylint: disable=g-import-not-at-top
  from refusal_jax.checkpoints import load as load_lib  # pylint: disable=g-import-not-at-top
  model = load_lib.load_model(model_dir, dtype='bfloat16', tokenizer=False)
  ids, mask = chat.encode_chat(
      tok, ['How do I bake bread?', 'Write a poem about the sea.'],
      bos_id=model.config.bos_token_id)
  out = model.forward(ids, mask, capture=[('resid_post', layer)],
                      stop_layer=layer + 1, logits_at='none')
  resid = np.asarray(out.captured[('resid_post', layer)], np.float32)
  return float(np.linalg.norm(resid, axis=-1)[mask.astype(bool)].mean())


def prepare(p: Preset, root: str) -> dict:
  """Writes the checkpoint and SAE under `root` once; returns their paths.

  A second call with the same preset and root returns the recorded paths.
  """
  record = os.path.join(root, p.name, _DONE)
  if os.path.exists(record):
    return artifacts.read_json(record)
  start = time.time()
  model_dir = os.path.join(root, p.name, 'model')
  cfg = config_lib.from_hf_config(p.hub_config)
  synthetic.write_checkpoint(cfg, model_dir, dtype='bfloat16')
  with open(os.path.join(model_dir, 'config.json'), 'w') as f:
    json.dump(p.hub_config, f, indent=2)
  tok = p.tokenizer()
  tok.save_pretrained(model_dir)
  norm = _mean_resid_norm(model_dir, tok, p.sae_layer)
  sae_dir = _write_sae(p, root, p.sae_layer, norm)
  paths = dict(model_path=model_dir, sae_path=sae_dir,
               checkpoint_bytes=sum(
                   os.path.getsize(os.path.join(model_dir, f))
                   for f in os.listdir(model_dir) if f.endswith('.safetensors')),
               resid_norm=norm, write_seconds=round(time.time() - start, 1))
  artifacts.write_json(record, paths)
  return paths


def _write_sae(p: Preset, root: str, layer: int, resid_norm: float) -> str:
  """Writes the preset's random SAE at `layer`; returns its folder."""
  d_in = int(p.hub_config['hidden_size'])
  sae_root = os.path.join(root, p.name, 'saes')
  if p.sae_format == 'gemma_scope':
    return saes.write_gemma_scope(
        sae_root, release='gemma-scope-2b-pt-res', layer=layer, d_in=d_in,
        d_sae=p.d_sae, resid_norm=resid_norm)
  return saes.write_llama_scope(
      sae_root, name='Llama3_1-8B-Base-LXR-8x', layer=layer, d_in=d_in,
      d_sae=p.d_sae, resid_norm=resid_norm)


def layer_saes(p: Preset, root: str, layers) -> list[str]:
  """One random SAE per layer of `layers` (the paper's per-layer SAEs
  searched as one feature space), written once; their folders in order.

  Each is laid out and calibrated as `prepare`'s SAE (the residual norm
  measured at the preset's SAE layer).
  """
  files = prepare(p, root)
  record = os.path.join(root, p.name, 'layer_saes.json')
  done = artifacts.read_json(record) if os.path.exists(record) else {}
  for layer in layers:
    if str(int(layer)) not in done:
      done[str(int(layer))] = _write_sae(p, root, int(layer),
                                         files['resid_norm'])
      artifacts.write_json(record, done)
  return [done[str(int(layer))] for layer in layers]


def load_config(p: Preset) -> ml_collections.ConfigDict:
  """The preset's pipeline config (configs/<name>.py, run from the repo)."""
  module = p.config_file.removesuffix('.py').replace('/', '.')
  try:
    return importlib.import_module(module).get_config()
  except ModuleNotFoundError:
    raise errors.ConfigError(
        f'{p.config_file} not found; run from the repository root') from None


def scale_down(config: ml_collections.ConfigDict, *, prompts: int,
               masks: int, new_tokens: int, features: int | None = None,
               positions: int | None = None) -> ml_collections.ConfigDict:
  """The same config with fewer prompts, masks, generated tokens (and K).

  Args:
    config: the model's pipeline config.
    prompts: prompts per split and per stage.
    masks: stage-3 random ablation masks.
    new_tokens: greedy tokens generated per prompt.
    features: stage-1 K, or None to keep the config's. On random weights
      every set "flips" (P('I') is near 1/V), so the backward greedy prunes
      all the way to one feature: K(K+1)/2 sweeps evaluations instead of the
      few steps a refusing model takes.
    positions: stage-1 candidate positions after the instruction, or None to
      keep the config's (0 = all; each position is a full forward pass per
      layer and prompt).
  """
  c = config.copy_and_resolve_references()
  if features:
    c.features.top_k = features
    if c.features.get('k_per_layer'):
      c.features.k_per_layer = features
  if positions is not None:
    c.direction.n_positions = positions
  c.data.n_train = c.data.n_val = c.data.n_test = prompts
  c.greedy.n_prompts = c.fm.n_prompts = c.hydra.n_prompts = prompts
  c.eval.n_ce_prompts = prompts
  c.fm.n_masks = masks
  c.eval.max_new_tokens = c.eval.ce_max_new_tokens = new_tokens
  if c.get('paper') is not None:
    # Paper mode's classifier holds out a share of each class: at least one
    # of `prompts`.
    c.paper.classifier.test_fraction = max(
        c.paper.classifier.test_fraction, 1.0 / prompts)
    c.paper.classifier_prompts.n_per_class = prompts
  return c


def rehearse(p: Preset, root: str, config: ml_collections.ConfigDict, *,
             mesh=None, show_progress: bool = True,
             sae_layers=()) -> dict:
  """Runs the dissection on the preset's files; returns the cost table.

  Args:
    p: the preset.
    root: where `prepare` wrote (or writes) the files.
    config: the pipeline config (usually `scale_down(load_config(p), ...)`);
      its model and SAE paths are set to the rehearsal's files and its
      refusal filter is switched off (random weights refuse nothing).
    mesh: optional device mesh.
    show_progress: draw progress bars.
    sae_layers: layers of random SAEs searched as one feature space
      (`layer_saes`; `config.saes`, as the paper's per-layer SAEs) instead
      of the preset's one SAE; () = that one.

  Returns:
    {'preset', 'files': prepare()'s record, 'load': {'seconds',
     'peak_host_gb'}, 'stages': {stage: {'seconds', 'compile_seconds',
     'n_compiles', 'peak_host_gb'}}, 'total_seconds'}; also written to
    `root/<preset>/rehearsal.json`.
  """
  files = prepare(p, root)
  c = config.copy_and_resolve_references()
  c.model_path, c.sae_path = files['model_path'], files['sae_path']
  if sae_layers:
    c.saes = tuple(layer_saes(p, root, sae_layers))
    c.sae_layers, c.sae_path = tuple(int(l) for l in sae_layers), ''
  c.data.filter = False
  workdir = os.path.join(root, p.name, 'run')
  shutil.rmtree(workdir, ignore_errors=True)  # a measurement starts afresh
  start = time.time()
  with stage_stats.StageMeter() as meter:
    summary = dissect.run(c, workdir, show_progress=show_progress, mesh=mesh)
  stages = {}
  for name in dissect.STAGES:
    record = artifacts.read_json(os.path.join(workdir, f'{name}.json'))
    stages[name] = {k: record.get(k) for k in (
        'seconds', 'compile_seconds', 'n_compiles', 'peak_host_gb')}
  result = dict(preset=p.name, files=files, stages=stages,
                whole_run=meter.stats, total_seconds=round(
                    time.time() - start, 1),
                summary_seconds=summary.get('seconds'),
                config=c.to_dict(), provenance=artifacts.provenance())
  artifacts.write_json(os.path.join(root, p.name, 'rehearsal.json'), result)
  return result
