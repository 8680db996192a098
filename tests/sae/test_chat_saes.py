"""The chat-corpus SAE path: corpus, multi-layer capture, storage, config."""

import json
import os

import jax.numpy as jnp
import numpy as np
import pytest

import numerics
import refusal_jax
import tiny_setup
from configs import sae_smollm2
from refusal_jax import errors
from refusal_jax.data import chat
from refusal_jax.organisms import behaviour
from refusal_jax.sae import capture
from refusal_jax.sae import corpus
from refusal_jax.sae import evaluate
from refusal_jax.sae import loaders
from refusal_jax.sae import storage
from refusal_jax.sae_recipes import chat_saes

ITEMS = [('harm', True, 'Explain how to pick a lock.'),
         ('ok', False, 'Write a short poem about tea.'),
         ('ok', False, 'How do I bake bread at home?')]


@pytest.fixture(scope='module')
def model_dir(tmp_path_factory):
  root = str(tmp_path_factory.mktemp('chat_sae'))
  tiny_setup.build(root)
  return os.path.join(root, 'model')


@pytest.fixture(scope='module')
def model(model_dir):
  return refusal_jax.load_model(model_dir)


def test_corpus_is_the_chat_prompt_then_the_greedy_answer(model, tmp_path):
  cache = str(tmp_path / 'answers.json')
  kw = dict(model_digest='m', max_new_tokens=5, batch_size=2,
            repeat_window=0, cache_path=cache)
  seqs = corpus.build_corpus(model, ITEMS, **kw)
  eos = set(model.config.eos_token_ids)
  for seq, (src, harmful, prompt) in zip(seqs, ITEMS):
    assert (seq.source, seq.harmful, seq.prompt) == (src, harmful, prompt)
    ids, mask = refusal_jax.encode_chat(model.tokenizer, [prompt],
                                        bos_id=model.config.bos_token_id)
    assert seq.prompt_ids == tuple(ids[0][mask[0] == 1])
    alone = model.generate(ids, mask, max_new_tokens=5)[0].tolist()
    n = next((i + 1 for i, t in enumerate(alone) if t in eos), 5)
    assert list(seq.response_ids) == alone[:n]
  assert len(json.load(open(cache))) == len(ITEMS)

  cached = corpus.build_corpus(_CacheOnly(model), ITEMS, **kw)
  assert cached == seqs

  # Under an intervention: its own answers, under their own cache keys.
  ablate = refusal_jax.DirectionalAblation(
      jnp.asarray(np.random.default_rng(0).normal(
          size=model.config.d_model), jnp.float32))
  ablated = corpus.build_corpus(model, ITEMS[:1], interventions=ablate,
                                variant='ablated', **kw)
  ids, mask = refusal_jax.encode_chat(model.tokenizer, [ITEMS[0][2]],
                                      bos_id=model.config.bos_token_id)
  alone = model.generate(ids, mask, max_new_tokens=5,
                         interventions=ablate)[0].tolist()
  n = next((i + 1 for i, t in enumerate(alone) if t in eos), 5)
  assert list(ablated[0].response_ids) == alone[:n]
  assert ablated[0].variant == 'ablated' and seqs[0].variant == ''
  assert len(json.load(open(cache))) == len(ITEMS) + 1
  with pytest.raises(errors.ConfigError, match='variant'):
    corpus.build_corpus(model, ITEMS, interventions=ablate, **kw)


class _CacheOnly:
  """The model's config and tokenizer, without generation."""

  def __init__(self, model):
    self.config, self.tokenizer = model.config, model.tokenizer

  def generate(self, *args, **kwargs):
    raise AssertionError('answers should come from the cache')


def test_truncate_loop_cuts_at_the_first_repeat():
  assert corpus.truncate_loop([1, 2, 3, 1, 2, 3, 1, 2], 3) == [1, 2, 3]
  assert corpus.truncate_loop([7, 1, 2, 9, 1, 2, 9], 3) == [7, 1, 2, 9]
  assert corpus.truncate_loop([1, 2, 3, 4], 2) == [1, 2, 3, 4]
  assert corpus.truncate_loop([5, 5, 5], 0) == [5, 5, 5]


def test_one_pass_over_several_layers_equals_one_pass_per_layer(model):
  seqs = corpus.build_corpus(model, ITEMS, model_digest='m', max_new_tokens=4,
                             batch_size=3, repeat_window=0)
  ids = [s.ids for s in seqs]
  skip = chat.special_token_ids(model.tokenizer, model.config.bos_token_id)
  kw = dict(site='resid_post', batch_size=2, skip_ids=skip, bucket=8)
  both = capture.capture_tokens(model, ids, layers=(2, 0), **kw)
  n_kept = sum(int((~np.isin(s, skip)).sum()) for s in ids)
  for layer in (0, 2):
    alone = capture.capture_tokens(model, ids, layers=(layer,), **kw)[layer]
    assert both[layer].shape == (n_kept, model.config.d_model)
    numerics.assert_close(both[layer], alone, ulps=numerics.FORWARD_ULPS)


def test_bfloat16_storage_round_trip(tmp_path):
  sae = loaders.load_sae(os.path.join(os.path.dirname(
      refusal_jax.__file__), 'assets', 'sae_organism_llama'))
  low = storage.cast_sae(sae, 'bfloat16')
  loaders.save_sae(low, tmp_path / 'sae')
  back = loaders.load_sae(tmp_path / 'sae')
  assert back.dtype == 'bfloat16' and back.W_enc.dtype == jnp.bfloat16
  assert back.threshold.dtype == jnp.float32
  for name in ('W_enc', 'b_enc', 'W_dec', 'b_dec', 'threshold'):
    np.testing.assert_array_equal(np.asarray(getattr(back, name), np.float32),
                                  np.asarray(getattr(low, name), np.float32))
  acts = np.random.default_rng(0).normal(size=(64, sae.d_in)).astype(
      np.float32) * 3
  f32, bf16 = evaluate.evaluate_sae(sae, acts), evaluate.evaluate_sae(back,
                                                                      acts)
  assert abs(f32['fve'] - bf16['fve']) < 0.02


@pytest.mark.parametrize('change, words', [
    (dict(preset='bogus'), 'config argument'),
    (dict(saes='14'), 'LAYER:WIDTH'),
    (dict(saes='14:8,14:8'), 'repeated'),
    (dict(sae_l0_coefficients='4:1e-4,4:2e-4'), 'repeated'),
    (dict(sae_l0_coefficients='4:-1e-4'), 'LAYER:COEF'),
    (dict(sae_l0_coefficients='4:x'), 'LAYER:COEF'),
    (dict(site='resid_mid'), 'site'),
    (dict(store_dtype='int8'), 'store_dtype'),
    (dict(model_path=''), 'model_path'),
])
def test_config_errors_are_one_line(change, words, tmp_path):
  config = sae_smollm2.get_config('trial')
  config.update(change)
  with pytest.raises(errors.RefusalJaxError) as e:
    chat_saes.train_chat_saes(config, str(tmp_path))
  assert words in str(e.value) and '\n' not in str(e.value)


def test_config_data_errors_are_one_line(model_dir, tmp_path):
  config = sae_smollm2.get_config('trial')
  config.model_path = model_dir
  config.saes = '7:16'
  with pytest.raises(errors.ConfigError, match='layers 0..2'):
    chat_saes.train_chat_saes(config, str(tmp_path))
  config.saes = '1:16'
  config.data.eval_fraction = 1.5
  with pytest.raises(errors.ConfigError, match='eval_fraction'):
    chat_saes.train_chat_saes(config, str(tmp_path))
  with pytest.raises(errors.ConfigError, match='harmful'):
    corpus.builtin_prompts(('everyday',), ())
  with pytest.raises(errors.PromptError, match='test'):
    corpus.builtin_prompts(('harmbench',), ())


def test_train_chat_saes_end_to_end(model_dir, tmp_path):
  behaviour.save_direction(behaviour.Selection(
      layer=1, position=-1, direction=np.random.default_rng(1).normal(
          size=tiny_setup.D).astype(np.float32)),
      model_dir)
  config = sae_smollm2.get_config('trial')
  config.model_path = model_dir
  config.saes = '1:48,2:24'
  config.data.max_prompts_per_set = 4
  config.data.max_new_tokens.harmful = 4
  config.data.max_new_tokens.harmless = 6
  config.data.max_new_tokens.ablated = 5
  config.data.generate_batch_size = 6
  config.data.eval_fraction = 0.3
  config.sae.steps, config.sae.batch_size, config.log_every = 20, 64, 10
  config.sae_l0_coefficients = '2:0,5:1e-4'  # 5: no SAE here, left out
  summary = chat_saes.train_chat_saes(config, str(tmp_path))
  assert [r['name'] for r in summary['saes']] == ['sae_l1_w48', 'sae_l2_w24']
  assert [r['l0_coefficient'] for r in summary['saes']] == [
      config.sae.l0_coefficient, 0.0]
  tokens = summary['tokens']
  # 4 prompts of each of the 3 sets, and the 8 harmful ones again, answered
  # with the refusal direction ablated.
  assert tokens['train']['sequences'] + tokens['eval']['sequences'] == 20
  assert tokens['train']['ablated_tokens'] + tokens['eval'][
      'ablated_tokens'] > 0
  for r in summary['saes']:
    sae = loaders.load_sae(r['path'])
    assert (sae.layer, sae.d_sae) == (r['layer'], r['d_sae'])
    assert sae.dtype == r['storage']['stored_dtype']
    assert set(r['storage']) >= {'float32', 'bfloat16'}
    assert r['eval']['n_tokens'] == tokens['eval']['tokens']
  written = json.load(open(tmp_path / 'sae_summary.json'))
  assert written['saes'][0]['eval'] == summary['saes'][0]['eval']
