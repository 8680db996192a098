"""Residual-stream SAEs of any chat checkpoint, trained on its own answers.

`train_chat_saes(config, workdir)` (config: configs/sae_smollm2.py):

1. builds the chat corpus (refusal_jax/sae/corpus.py): the
   `config.data.splits` of the built-in harmful and harmless prompt sets,
   rendered with the model's chat template, each followed by the model's
   greedy answer (cached in `workdir/answers.json`); with
   `config.data.ablated_answers`, each harmful prompt a second time,
   followed by the answer the model gives with its refusal direction
   (`refusal_direction.json` in the checkpoint folder) ablated, so that the
   SAEs also see the model comply, the state the pipeline's ablations put
   it in;
2. holds out a share of the sequences (chosen by a hash of the prompt, so
   the choice does not depend on order) for evaluation;
3. captures the activations at `config.site` of every layer an SAE reads, in
   one forward pass per batch (refusal_jax/sae/capture.py), leaving out the
   tokenizer's special tokens (BOS and the chat-template markers) when
   `config.data.skip_special_tokens`;
4. trains one SAE per `config.saes` entry (refusal_jax/sae/train.py) and
   measures it on the held-out tokens, as trained (float32) and as stored in
   `config.store_dtype` (written, read back with `load_sae`, measured
   again); it is stored in that dtype when the difference stays within
   `config.store_tolerance`, else in float32;
5. writes each SAE as a SAELens folder `workdir/sae_l{LAYER}_w{WIDTH}` and
   everything measured, with timings, to `workdir/sae_summary.json`.

Axis letters: see refusal_jax/axes.py (N kept tokens, D d_model).
"""

import hashlib
import os
import re
import time
from typing import Any

from absl import logging
import jax.numpy as jnp
import numpy as np

import refusal_jax
from refusal_jax import errors
from refusal_jax.data import chat
from refusal_jax.interventions.directions import DirectionalAblation
from refusal_jax.models import sites
from refusal_jax.organisms import behaviour
from refusal_jax.pipeline import artifacts
from refusal_jax.sae import capture
from refusal_jax.sae import corpus
from refusal_jax.sae import storage
from refusal_jax.sae import train as sae_train

_ENTRY = re.compile(r'^\s*(\d+)\s*:\s*(\S+?)\s*$')


def _parse_layer_map(spec: str, field: str, value, example: str
                     ) -> list[tuple[int, Any]]:
  """'LAYER:VALUE,...' -> [(layer, value(VALUE)), ...], in order.

  Raises:
    errors.ConfigError: an entry that is malformed, whose value `value`
      rejects (ValueError) or that repeats a layer.
  """
  out, seen = [], set()
  for part in str(spec).split(','):
    m = _ENTRY.match(part)
    try:
      parsed = value(m.group(2)) if m else None
    except ValueError:
      parsed = None
    if parsed is None:
      raise errors.ConfigError(
          f'{field} entry {part.strip()!r}: expected {example}')
    layer = int(m.group(1))
    if layer in seen:
      raise errors.ConfigError(f'{field} entry {part.strip()!r} is repeated')
    seen.add(layer)
    out.append((layer, parsed))
  return out


def _at_least(low: float, cast):
  def parse(text):
    x = cast(text)
    if x < low:
      raise ValueError(text)
    return x
  return parse


def parse_saes(spec: str) -> list[tuple[int, int]]:
  """'LAYER:WIDTH,LAYER:WIDTH,...' -> [(layer, width), ...].

  Raises:
    errors.ConfigError: a malformed or repeated entry, or none.
  """
  return _parse_layer_map(spec, 'saes', _at_least(1, int),
                          "LAYER:WIDTH with WIDTH >= 1, e.g. '14:4608,20:4608'")


def parse_l0_coefficients(spec: str, layers) -> dict[int, float]:
  """'LAYER:COEF,...' (or '') -> {layer: L0 coefficient} of `layers`.

  Entries of layers without an SAE in this run are left out, so a run of
  some of the config's SAEs (`--config.saes=4:1152`) keeps its overrides.

  Args:
    spec: the config's `sae_l0_coefficients`.
    layers: the layers of the config's `saes`.

  Raises:
    errors.ConfigError: a malformed or repeated entry, or a negative
      coefficient.
  """
  if not str(spec).strip():
    return {}
  pairs = _parse_layer_map(spec, 'sae_l0_coefficients', _at_least(0, float),
                           "LAYER:COEF with COEF >= 0, e.g. '4:2.5e-4'")
  return {layer: c for layer, c in pairs if layer in layers}


def check_config(config, num_layers: int | None = None
                 ) -> list[tuple[int, int]]:
  """Validates the config's own values; returns the parsed `saes`.

  Args:
    config: a configs/sae_smollm2.py config.
    num_layers: the model's layer count, when known.

  Raises:
    errors.ConfigError: one line naming the bad field.
  """
  if config.get('preset', '') not in ('', 'trial'):
    raise errors.ConfigError(
        f"config argument {config.preset!r}: expected '' or 'trial'")
  saes = parse_saes(config.saes)
  parse_l0_coefficients(config.get('sae_l0_coefficients', ''),
                        [layer for layer, _ in saes])
  if config.site not in sites.SITES:
    raise errors.ConfigError(
        f'site {config.site!r}: expected one of {", ".join(sites.SITES)}')
  if num_layers is not None:
    for layer, _ in saes:
      if layer >= num_layers:
        raise errors.ConfigError(
            f'saes layer {layer}: the model has layers 0..{num_layers - 1}')
  if not 0 < config.data.eval_fraction < 1:
    raise errors.ConfigError(
        f'data.eval_fraction {config.data.eval_fraction} must be in (0, 1)')
  if config.data.max_prompts_per_set < 0:
    raise errors.ConfigError('data.max_prompts_per_set must be >= 0')
  if config.store_dtype not in ('float32', 'bfloat16', 'float16'):
    raise errors.ConfigError(
        f"store_dtype {config.store_dtype!r}: expected 'float32', "
        "'bfloat16' or 'float16'")
  if 'd_sae' in config.sae:
    raise errors.ConfigError(
        'sae.d_sae is set by each saes entry (LAYER:WIDTH); remove it')
  return saes


def _is_eval(seq: corpus.ChatSequence, fraction: float) -> bool:
  # Salted: the built-in sets order their splits by an unsalted hash of the
  # same text, so within one split that hash is far from uniform.
  h = hashlib.sha256(f'sae eval\0{seq.source}\0{seq.prompt}'.encode()
                     ).digest()
  return int.from_bytes(h[:8], 'big') / 2.0**64 < fraction


def _token_counts(seqs, skip: np.ndarray) -> dict[str, int]:
  def kept(ids):
    return int((~np.isin(np.asarray(ids, np.int64), skip)).sum())
  return {
      'sequences': len(seqs),
      'tokens': sum(kept(s.ids) for s in seqs),
      'prompt_tokens': sum(kept(s.prompt_ids) for s in seqs),
      'response_tokens': sum(kept(s.response_ids) for s in seqs),
      'harmful_tokens': sum(kept(s.ids) for s in seqs if s.harmful),
      'harmless_tokens': sum(kept(s.ids) for s in seqs if not s.harmful),
      'ablated_tokens': sum(kept(s.ids) for s in seqs if s.variant),
  }


def _meets(test: dict[str, float], d_sae: int, targets) -> bool:
  return (test['fve'] >= targets.min_fve
          and test['dead_latents'] <= targets.max_dead_fraction * d_sae
          and targets.min_l0 <= test['l0'] <= targets.max_l0)


def train_chat_saes(config, workdir: str) -> dict[str, Any]:
  """Builds the corpus, trains, measures and writes the config's SAEs.

  Args:
    config: a configs/sae_smollm2.py config.
    workdir: output directory (answers.json, sae_l*_w*/, checkpoints/,
      sae_summary.json).

  Returns:
    The summary written to `workdir/sae_summary.json` (rewritten after each
    SAE, with 'complete' False until the last one is done).

  Raises:
    errors.RefusalJaxError: a bad config, model or prompt set (one line).
  """
  began = time.perf_counter()
  check_config(config)
  if not config.model_path:
    raise errors.ConfigError(
        'model_path is empty: pass a chat checkpoint directory, e.g. the '
        'output of `python -m experiments.convert_gguf --out=DIR`')
  os.makedirs(workdir, exist_ok=True)
  model = refusal_jax.load_model(config.model_path)
  saes = check_config(config, model.config.num_layers)
  if model.tokenizer is None:
    raise errors.ConfigError(f'{config.model_path} has no tokenizer')
  seconds = {}
  tick = time.perf_counter()
  digest = artifacts.inputs_digest([config.model_path])
  splits = config.data.splits
  if isinstance(splits, str):
    splits = (splits,)
  items = [item for split in splits
           for item in corpus.builtin_prompts(
               config.data.harmful, config.data.harmless, split)]
  if config.data.max_prompts_per_set:
    per_set: dict[str, int] = {}
    kept = []
    for item in items:
      per_set[item[0]] = per_set.get(item[0], 0) + 1
      if per_set[item[0]] <= config.data.max_prompts_per_set:
        kept.append(item)
    items = kept
  seqs = []
  for harmful, kind in ((True, 'harmful'), (False, 'harmless')):
    part = [item for item in items if item[1] == harmful]
    if part:
      seqs += corpus.build_corpus(
          model, part, model_digest=digest,
          max_new_tokens=config.data.max_new_tokens[kind],
          batch_size=config.data.generate_batch_size,
          repeat_window=config.data.repeat_window,
          cache_path=os.path.join(workdir, 'answers.json'))
  cfg = model.config
  skip = (chat.special_token_ids(model.tokenizer, cfg.bos_token_id)
          if config.data.skip_special_tokens else
          (() if cfg.bos_token_id is None else (cfg.bos_token_id,)))
  harmful_items = [item for item in items if item[1]]
  if config.data.ablated_answers and harmful_items:
    direction = behaviour.load_direction(config.model_path).direction
    seqs += corpus.build_corpus(
        model, harmful_items, model_digest=digest,
        max_new_tokens=config.data.max_new_tokens.ablated,
        batch_size=config.data.generate_batch_size,
        repeat_window=config.data.repeat_window,
        cache_path=os.path.join(workdir, 'answers.json'),
        interventions=DirectionalAblation(
            jnp.asarray(direction),
            skip_ids=jnp.asarray(skip, jnp.int32) if skip else None),
        variant='ablated')
  seconds['corpus'] = time.perf_counter() - tick

  split = {'train': [], 'eval': []}
  for seq in seqs:
    split['eval' if _is_eval(seq, config.data.eval_fraction)
          else 'train'].append(seq)
  if not split['train'] or not split['eval']:
    raise errors.ConfigError(
        f'data.eval_fraction {config.data.eval_fraction} leaves no '
        f'{"train" if not split["train"] else "eval"} sequences')
  tick = time.perf_counter()
  layers = sorted({layer for layer, _ in saes})
  acts = {}
  for name, part in split.items():
    part.sort(key=lambda s: len(s.ids))
    acts[name] = capture.capture_tokens(
        model, [s.ids for s in part], site=config.site, layers=layers,
        batch_size=config.data.capture_batch_size, skip_ids=skip,
        bucket=config.data.capture_bucket)
  seconds['capture'] = time.perf_counter() - tick
  skip_arr = np.asarray(skip, np.int64)
  counts = {name: _token_counts(part, skip_arr)
            for name, part in split.items()}
  logging.info('corpus: %s', counts)
  del model

  summary = {
      'model': config.model_path, 'model_digest': digest, 'site': config.site,
      'skipped_token_ids': list(skip), 'tokens': counts, 'saes': [],
      'complete': False, 'seconds': seconds, 'config': config.to_dict(),
      'provenance': artifacts.provenance(),
  }
  path = os.path.join(workdir, 'sae_summary.json')
  coefficients = parse_l0_coefficients(
      config.get('sae_l0_coefficients', ''), [layer for layer, _ in saes])
  for layer, width in saes:
    name = f'sae_l{layer}_w{width}'
    l0_coefficient = coefficients.get(layer, config.sae.l0_coefficient)
    tick = time.perf_counter()
    sae, history = sae_train.train_sae(
        acts['train'][layer],
        sae_train.SAETrainConfig(**{
            **config.sae.to_dict(), 'd_sae': width,
            'l0_coefficient': l0_coefficient}),
        site=config.site, layer=layer, model_name=config.model_name,
        log_every=config.log_every,
        checkpoint_dir=os.path.join(workdir, 'checkpoints', name))
    train_seconds = time.perf_counter() - tick
    out = os.path.join(workdir, name)
    dtype, stored = storage.store_sae(
        sae, acts['eval'][layer], out, config.store_dtype,
        config.store_tolerance)
    test = stored[dtype]
    summary['saes'].append({
        'name': name, 'path': out, 'layer': layer, 'd_sae': width,
        'l0_coefficient': l0_coefficient,
        'train_final': history[-1], 'eval': test,
        'dead_fraction': test['dead_latents'] / width,
        'meets_targets': _meets(test, width, config.targets),
        'storage': stored, 'train_seconds': train_seconds,
    })
    logging.info('%s: %s', name, summary['saes'][-1])
    seconds['total'] = time.perf_counter() - began
    artifacts.write_json(path, summary)  # after every SAE: a partial record
  summary['complete'] = True
  artifacts.write_json(path, summary)
  return summary
