"""A tiny organism training run: loss falls, checkpoints resume, export loads."""

import json
import os

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
import pytest

import refusal_jax
from refusal_jax import errors
import numerics
from refusal_jax.data import chat
from refusal_jax.interventions.directions import ActAdd
from refusal_jax.interventions.directions import DirectionalAblation
from refusal_jax.models import transformer
from refusal_jax.models.config import ModelConfig
from refusal_jax.organisms import train


def _tiny_config(family, steps):
  c = ml_collections.ConfigDict()
  c.seed = 0
  c.data = ml_collections.ConfigDict()
  c.data.seed = 0
  c.data.n_per_split = {'train': 48, 'val': 8, 'test': 8}
  c.data.train_harmful_fraction = 0.5
  c.data.sure_share = 0.5
  c.model = ml_collections.ConfigDict(dict(
      family=family, vocab_size=320, d_model=32, num_layers=2, num_heads=2,
      num_kv_heads=1, head_dim=16, mlp_dim=64, sliding_window=8,
      attn_softcap=50.0, final_softcap=30.0, rope_theta=10000.0,
      tie_embeddings=family == 'gemma2', max_position_embeddings=256))
  c.train = ml_collections.ConfigDict(dict(
      steps=steps, answer_steps=4, answer_replay=1.0, refusal_lr_scale=0.5,
      ablation_answer_weight=1.0, ablation_harmless_weight=0.5,
      induce_weight=0.5,
      noise_in_response=True,
      refusal_warmup_steps=2, direction_layer=1, ablation_weight=1.0,
      direction_ema=0.9, batch_size=8, learning_rate=1e-2, warmup_steps=2,
      end_lr_fraction=0.1, weight_decay=0.0, adam_b1=0.9, adam_b2=0.98,
      grad_clip=1.0, prompt_loss_weight=0.1, instruction_noise_harmless=0.2,
      instruction_noise_harmful=0.1, noise_tokens='unseen',
      num_buckets=2,
      bucket_multiple=8, seed=0, log_every=5, checkpoint_every=5,
      max_to_keep=2))
  return c


# Behind the slow marker (~30 s each): resumption is also checked in
# `make test` by tests/tuning/test_train.py, export by tests/models/
# test_export.py.
@pytest.mark.slow
@pytest.mark.parametrize('family', ['gemma2', 'llama'])
def test_train_resume_and_export(tmp_path, family):
  workdir = str(tmp_path / family)
  train.train_organism(_tiny_config(family, steps=10), workdir)
  assert sorted(os.listdir(os.path.join(workdir, 'checkpoints'))) == ['10', '5']
  export_dir = train.train_organism(_tiny_config(family, steps=20), workdir)

  with open(os.path.join(workdir, train.SUMMARY_FILE)) as f:
    summary = json.load(f)
  assert summary['resumed_from'] == [10]
  assert [h['step'] for h in summary['history']] == [5, 10, 15, 20]
  assert summary['history'][-1]['loss'] < summary['history'][0]['loss']
  assert sorted(os.listdir(os.path.join(workdir, 'checkpoints'))) == [
      '15', '20']

  other = _tiny_config(family, steps=20)
  other.train.answer_steps = 5  # another run: never resumed
  with pytest.raises(errors.ConfigError, match='train.answer_steps'):
    train.train_organism(other, workdir)
  assert sorted(os.listdir(os.path.join(workdir, 'checkpoints'))) == [
      '15', '20']

  model = refusal_jax.load_model(export_dir)
  assert model.config.family == family
  assert model.config.eos_token_ids[0] == model.tokenizer.eos_token_id
  ids, mask = chat.encode_chat(model.tokenizer, ['How do I bake bread?'],
                               bos_id=model.config.bos_token_id)
  assert ids[0, 0] == model.config.bos_token_id
  assert (ids[0] == model.config.bos_token_id).sum() == 1
  out = model.generate(ids, mask, max_new_tokens=4)
  assert out.shape == (1, 4)


def test_bad_train_config_is_a_config_error(tmp_path):
  config = _tiny_config('llama', steps=10)
  config.train.warmup_steps = 10
  with pytest.raises(errors.ConfigError):
    train.train_organism(config, str(tmp_path))
  config = _tiny_config('mistral', steps=10)
  with pytest.raises(errors.ConfigError):
    train.train_organism(config, str(tmp_path))
  assert not os.listdir(tmp_path)  # nothing written
  os.makedirs(tmp_path / 'checkpoints')  # a run of an unrecorded config
  with pytest.raises(errors.ConfigError, match='config.json'):
    train.train_organism(_tiny_config('llama', steps=10), str(tmp_path))


def test_buckets_cover_the_longest_sequence():
  lengths = [10, 11, 30, 31, 47, 9]
  buckets = train.bucket_lengths(lengths, 3, 8)
  assert buckets[-1] >= max(lengths)
  assert all(b % 8 == 0 for b in buckets)


def test_each_optional_loss_term_adds_its_weight_times_its_mean():
  """The harmless-answers term and the induce term, each against the same
  quantity computed from a plain forward pass with the intervention."""
  cfg = ModelConfig.llama(vocab_size=40, d_model=16, num_layers=2,
                          num_heads=2, num_kv_heads=1, head_dim=8, mlp_dim=32,
                          max_position_embeddings=64)
  params = transformer.init_params(cfg, seed=0)
  rng = np.random.default_rng(0)
  b, t = 4, 9
  ids = jnp.asarray(rng.integers(1, 40, (b, t)), jnp.int32)
  response = np.zeros((b, t), np.float32)
  response[:, 6:] = 1.0
  batch = dict(ids=ids, mask=jnp.ones((b, t), jnp.int32),
               weights=jnp.asarray(response), response=jnp.asarray(response),
               decision=jnp.asarray([5, 5, 5, 5], jnp.int32),
               harmful=jnp.asarray([1.0, 1.0, 0.0, 0.0]),
               answer=jnp.asarray([1.0, 0.0, 0.0, 0.0]))
  direction = jnp.asarray(rng.normal(size=16), jnp.float32)
  refusal_ids = (3, 7)
  kw = dict(direction_layer=1, ablation_weight=1.0, refusal_ids=refusal_ids)
  base, _ = train.loss_fn(params, cfg, batch, direction, **kw)
  harmless = np.asarray([0.0, 0.0, 1.0, 1.0])

  got, _ = train.loss_fn(params, cfg, batch, direction,
                         ablation_harmless_weight=0.5, **kw)
  logits = transformer.forward(
      params, cfg, ids, interventions=DirectionalAblation(direction)).logits
  ce = np.asarray(optax.softmax_cross_entropy_with_integer_labels(
      logits[:, :-1], ids[:, 1:]))
  rows = response[:, 1:] * harmless[:, None]
  want = 0.5 * (ce * rows).sum() / rows.sum()
  numerics.assert_close(got - base, want, ulps=64, scale=float(got),
                        what='harmless answers under the ablation')

  got, _ = train.loss_fn(params, cfg, batch, direction, induce_weight=0.7,
                         **kw)
  logits = transformer.forward(
      params, cfg, ids, interventions=ActAdd(vector=direction, coeff=1.0,
                                             layer=1)).logits[:, 5]
  p = np.asarray(jax.nn.softmax(logits, -1))[:, list(refusal_ids)].sum(-1)
  want = 0.7 * (-np.log(p) * harmless).sum() / harmless.sum()
  numerics.assert_close(got - base, want, ulps=64, scale=float(got),
                        what='refusal of harmless requests, direction added')
