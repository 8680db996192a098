"""The warning for base-model SAEs in an instruct model's last layers."""

import jax.numpy as jnp
import numpy as np
import pytest

from refusal_jax.sae import loaders
from refusal_jax.sae import transfer
from refusal_jax.sae.model import SAE


def _sae(model_name, layer, d=8, a=16):
  return SAE(W_enc=jnp.zeros((d, a)), b_enc=jnp.zeros(a),
             W_dec=jnp.zeros((a, d)), b_dec=jnp.zeros(d),
             threshold=jnp.zeros(a), architecture='jumprelu', k=None,
             apply_b_dec_to_input=False, rescale_acts_by_decoder_norm=False,
             site='resid_post', layer=layer,
             hook_name=f'blocks.{layer}.hook_resid_post',
             model_name=model_name, neuronpedia_id=None, dtype='float32')


@pytest.fixture
def warnings(monkeypatch):
  lines = []
  monkeypatch.setattr(transfer.logging, 'warning',
                      lambda msg, *args: lines.append(msg % args))
  monkeypatch.setattr(transfer, '_warned', set())
  return lines


@pytest.mark.parametrize('name,instruct', [
    ('google/gemma-2-2b-it', True), ('/ckpt/gemma-2-2b-it/', True),
    ('meta-llama/Llama-3.1-8B-Instruct', True),
    ('/hf/models--google--gemma-2-9b-it/snapshots/0a1b', True),
    ('Llama-2-7b-chat-hf', True), ('google/gemma-2-2b', False),
    ('meta-llama/Llama-3.1-8B', False), ('/home/it/models/gemma-2-2b', False),
    ('refusal_jax/organism_gemma2', False), ('', False), (None, False)])
def test_instruct_names(name, instruct):
  assert transfer.is_instruct_name(name) == instruct


def test_last_layers_are_the_last_quarter():
  assert transfer.LAST_LAYERS_FRACTION == 0.25
  late = [l for l in range(26) if transfer.in_last_layers(l, 26)]
  assert late == list(range(20, 26))  # Gemma-2-2B
  assert min(l for l in range(32) if transfer.in_last_layers(l, 32)) == 24


def test_base_sae_at_the_last_layers_warns_once_per_run(warnings):
  late, middle = _sae('google/gemma-2-2b', 22), _sae('google/gemma-2-2b', 16)
  for _ in range(3):  # e.g. a run's context built, then reused
    text = transfer.warn_base_saes_on_instruct(
        [middle, late], '/ckpt/gemma-2-2b-it', 26)
  assert len(warnings) == 1
  assert warnings[0] == text
  assert 'blocks.22.hook_resid_post' in text
  assert 'blocks.16' not in text and 'google/gemma-2-2b' in text


@pytest.mark.parametrize('sae,model', [
    (_sae('google/gemma-2-2b', 16), 'gemma-2-2b-it'),  # middle layer
    (_sae('google/gemma-2-2b', 22), 'google/gemma-2-2b'),  # base model
    (_sae('google/gemma-2-2b-it', 22), 'gemma-2-2b-it'),  # instruct SAE
    (_sae('', 22), 'gemma-2-2b-it'),  # unknown training model
    (_sae('meta-llama/Llama-3.1-8B', 13),
     'meta-llama/Llama-3.1-8B-Instruct'),  # the paper's Llama layer
])
def test_no_warning_otherwise(warnings, sae, model):
  assert transfer.warn_base_saes_on_instruct([sae], model, 26 if 'gemma' in (
      model) else 32) is None
  assert not warnings


def test_gemma_scope_it_releases_are_named_for_the_instruct_model(
    tmp_path, monkeypatch):
  monkeypatch.setitem(loaders._GEMMA2_BY_D_MODEL, 8, 'google/gemma-2-9b')
  rng = np.random.default_rng(0)
  names = {}
  for release in ('gemma-scope-9b-pt-res', 'gemma-scope-9b-it-res'):
    folder = tmp_path / release / 'layer_31' / 'width_16k' / 'average_l0_76'
    folder.mkdir(parents=True)
    a = loaders.GEMMA_SCOPE_WIDTHS['16k']
    np.savez(folder / 'params.npz', W_enc=rng.normal(size=(8, a)).astype(
        np.float32), W_dec=rng.normal(size=(a, 8)).astype(np.float32),
             b_enc=np.zeros(a, np.float32), b_dec=np.zeros(8, np.float32),
             threshold=np.ones(a, np.float32))
    names[release] = loaders.load_sae(str(folder)).model_name
  assert names == {'gemma-scope-9b-pt-res': 'google/gemma-2-9b',
                   'gemma-scope-9b-it-res': 'google/gemma-2-9b-it'}
