"""The adapter training loop: it learns, and a resumed run ends where an
uninterrupted one does."""

import dataclasses
import os

import jax
import ml_collections
import numpy as np
import pytest

import hf_tiny
import refusal_jax
from refusal_jax import errors
from refusal_jax.organisms import train as organism_train
from refusal_jax.tuning import lora
from refusal_jax.tuning import train


def _train_config(steps=8):
  return ml_collections.ConfigDict(dict(
      steps=steps, batch_size=4, learning_rate=3e-2, warmup_steps=1,
      end_lr_fraction=0.1, adam_b1=0.9, adam_b2=0.999, weight_decay=0.0,
      grad_clip=1.0, seed=0, log_every=2, checkpoint_every=3, max_to_keep=2,
      decision_tokens=2, decision_weight=3.0))


@pytest.fixture(scope='module')
def setup(tmp_path_factory):
  model = refusal_jax.load_model(hf_tiny.save(
      hf_tiny.make('llama'), tmp_path_factory.mktemp('tiny')))
  rng = np.random.default_rng(0)
  examples = [organism_train.Encoded(
      ids=tuple(int(t) for t in rng.integers(3, 97, 6 + i % 5)),
      prompt_length=3, instruction=(1, 3), harmful=bool(i % 2))
              for i in range(10)]
  spec = lora.LoraSpec(rank=2, alpha=4.0, modules=tuple(lora.MODULES),
                       layers=(1, 2))
  return model, examples, spec


def _run(setup, directory, **kw):
  model, examples, spec = setup
  return train.train_adapter(
      model.params, model.config, spec, examples, _train_config(),
      pad_id=0, max_length=12, checkpoint_dir=directory, **kw)


def test_resumed_run_equals_uninterrupted_run(setup, tmp_path):
  whole, info = _run(setup, str(tmp_path / 'whole'))
  assert info['start_step'] == 0
  assert info['history'][-1]['loss'] < info['history'][0]['loss']
  _, first = _run(setup, str(tmp_path / 'split'), stop_after=4)
  assert [h['step'] for h in first['history']] == [2, 4]
  assert sorted(os.listdir(tmp_path / 'split')) == ['3', '4']
  resumed, second = _run(setup, str(tmp_path / 'split'))
  assert second['start_step'] == 4
  assert [h['step'] for h in second['history']] == [6, 8]
  for got, want in zip(jax.tree.leaves(resumed), jax.tree.leaves(whole)):
    np.testing.assert_array_equal(np.asarray(got), np.asarray(want))


@pytest.mark.parametrize('field, value, match', [
    ('steps', 0, 'train.steps must be >= 1'),
    ('warmup_steps', 8, 'train.warmup_steps'),
    ('learning_rate', 0.0, 'train.learning_rate'),
    ('decision_weight', 0.0, 'train.decision_weight'),
])
def test_config_errors_are_one_line(field, value, match):
  config = _train_config()
  config[field] = value
  with pytest.raises(errors.ConfigError, match=match) as e:
    train.validate(config)
  assert '\n' not in str(e.value)


def test_decision_weights_scale_the_first_response_tokens():
  w = np.array([[0, 0, 1, 1, 1, 0], [0, 1, 1, 1, 1, 1]], np.float32)
  got = np.asarray(train.decision_weights(w, 2, 5.0))
  np.testing.assert_array_equal(got, [[0, 0, 5, 5, 1, 0], [0, 5, 5, 1, 1, 1]])
  np.testing.assert_array_equal(np.asarray(train.decision_weights(w, 0, 5.0)),
                                w)


def test_kl_term_is_zero_at_the_base_model_and_counts_harmless_rows(setup):
  model, examples, spec = setup
  batcher = organism_train.Batcher(examples, batch_size=6, buckets=[12],
                                   pad_id=0, prompt_loss_weight=0.0, seed=0)
  batch = {k: jax.numpy.asarray(v) for k, v in
           dataclasses.asdict(batcher.batch(0)).items()}
  zero = lora.init_adapter(spec, model.config, 0)  # b = 0: the base model
  _, aux = train.loss_fn(zero, model.params, batch, spec=spec,
                         cfg=model.config, kl_weight=1.0)
  assert abs(float(aux['harmless_kl'])) < 1e-5
  moved = jax.tree.map(lambda x: x + 0.3, zero)
  loss0, aux0 = train.loss_fn(moved, model.params, batch, spec=spec,
                              cfg=model.config)
  loss1, aux1 = train.loss_fn(moved, model.params, batch, spec=spec,
                              cfg=model.config, kl_weight=2.0)
  assert float(aux0['harmless_kl']) == 0.0 and float(aux1['harmless_kl']) > 0
  np.testing.assert_allclose(float(loss1), float(loss0) +
                             2.0 * float(aux1['harmless_kl']), rtol=1e-5)
  # Only harmless rows enter the KL: marking every row harmful removes it.
  harmful = dict(batch, harmful=jax.numpy.ones_like(batch['harmful']))
  _, aux2 = train.loss_fn(moved, model.params, harmful, spec=spec,
                          cfg=model.config, kl_weight=2.0)
  assert float(aux2['harmless_kl']) == 0.0


def test_base_kl_matches_its_definition():
  rng = np.random.default_rng(0)
  a, b = rng.normal(size=(2, 3, 5)), rng.normal(size=(2, 3, 5))
  p = np.exp(a) / np.exp(a).sum(-1, keepdims=True)
  q = np.exp(b) / np.exp(b).sum(-1, keepdims=True)
  want = (p * (np.log(p) - np.log(q))).sum(-1)
  np.testing.assert_allclose(np.asarray(train.base_kl(a, b)), want,
                             rtol=1e-5)
