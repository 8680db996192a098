"""Random corruptions of checkpoints, SAEs and prompt files: load or raise ours.

Each loader must either load the input or raise the project's own error type
(RefusalJaxError); any other exception is a bug.
"""

import json
import os
import shutil

import hypothesis
from hypothesis import strategies as st
import numpy as np
import pytest

import hf_tiny
from refusal_jax import errors
from refusal_jax.checkpoints.load import load_model
from refusal_jax.data.prompts import load_prompts
from refusal_jax.sae import load_sae, save_sae
from refusal_jax.sae.model import SAE

SETTINGS = hypothesis.settings(
    max_examples=20, deadline=None, derandomize=True,
    suppress_health_check=[hypothesis.HealthCheck.function_scoped_fixture])


@pytest.fixture(scope='module')
def sources(tmp_path_factory):
  root = tmp_path_factory.mktemp('fuzz')
  model = hf_tiny.save(hf_tiny.make('llama', num_hidden_layers=1),
                       root / 'model')
  rng = np.random.RandomState(0)
  sae = SAE(W_enc=rng.randn(20, 12).astype(np.float32),
            b_enc=np.zeros(12, np.float32),
            W_dec=rng.randn(12, 20).astype(np.float32),
            b_dec=np.zeros(20, np.float32),
            threshold=np.full(12, 0.1, np.float32), architecture='jumprelu',
            k=None, apply_b_dec_to_input=False,
            rescale_acts_by_decoder_norm=False, site='resid_post', layer=0,
            hook_name='blocks.0.hook_resid_post', model_name='tiny',
            neuronpedia_id=None, dtype='float32')
  sae_dir = str(save_sae(sae, root / 'sae'))
  prompts = root / 'prompts'
  prompts.mkdir()
  (prompts / 'p.jsonl').write_text(
      '\n'.join(json.dumps({'prompt': f'how do I {w}?'})
                for w in ('bake', 'hack', 'sing')))
  (prompts / 'p.csv').write_text('goal,target\n"do x",y\n"do z",w\n')
  return dict(model=model, sae=sae_dir, prompts=str(prompts))


def _corrupt(src, dst, filename, data):
  shutil.rmtree(dst, ignore_errors=True)
  shutil.copytree(src, dst)
  path = os.path.join(dst, filename)
  blob = bytearray(open(path, 'rb').read())
  pos, n, byte = data.draw(st.integers(0, len(blob) - 1)), data.draw(
      st.integers(1, 16)), data.draw(st.integers(0, 255))
  kind = data.draw(st.sampled_from(['flip', 'truncate', 'insert']))
  if kind == 'flip':
    blob[pos:pos + n] = bytes([byte]) * len(blob[pos:pos + n])
  elif kind == 'truncate':
    blob = blob[:pos]
  else:
    blob[pos:pos] = bytes([byte]) * n
  open(path, 'wb').write(bytes(blob))
  return dst


def _loads_or_raises_ours(fn):
  try:
    fn()
  except errors.RefusalJaxError as e:
    assert '\n' not in str(e), str(e)


@SETTINGS
@hypothesis.given(data=st.data(),
                  filename=st.sampled_from(['config.json',
                                            'model.safetensors']))
def test_corrupt_checkpoints(sources, tmp_path, data, filename):
  d = _corrupt(sources['model'], str(tmp_path / 'm'), filename, data)
  _loads_or_raises_ours(lambda: load_model(d, tokenizer=False))


@SETTINGS
@hypothesis.given(data=st.data(),
                  filename=st.sampled_from(['cfg.json',
                                            'sae_weights.safetensors']))
def test_corrupt_saes(sources, tmp_path, data, filename):
  d = _corrupt(sources['sae'], str(tmp_path / 's'), filename, data)
  _loads_or_raises_ours(lambda: load_sae(d))


@SETTINGS
@hypothesis.given(data=st.data(), filename=st.sampled_from(['p.jsonl',
                                                            'p.csv']))
def test_corrupt_prompt_files(sources, tmp_path, data, filename):
  d = _corrupt(sources['prompts'], str(tmp_path / 'p'), filename, data)
  _loads_or_raises_ours(lambda: load_prompts(os.path.join(d, filename)))


@SETTINGS
@hypothesis.given(changes=st.dictionaries(
    st.sampled_from(['hidden_size', 'num_hidden_layers', 'num_attention_heads',
                     'num_key_value_heads', 'head_dim', 'vocab_size',
                     'intermediate_size', 'rope_parameters', 'model_type',
                     'tie_word_embeddings', 'rms_norm_eps', 'layer_types']),
    st.one_of(st.integers(-3, 64), st.none(), st.text(max_size=5),
              st.booleans(), st.lists(st.integers(0, 3), max_size=3),
              st.dictionaries(st.sampled_from(['rope_type', 'rope_theta',
                                               'factor']),
                              st.one_of(st.text(max_size=6),
                                        st.integers(-2, 9)), max_size=3)),
    max_size=3))
def test_random_configs(sources, tmp_path, changes):
  d = str(tmp_path / 'c')
  shutil.rmtree(d, ignore_errors=True)
  shutil.copytree(sources['model'], d)
  cfg = json.load(open(os.path.join(d, 'config.json')))
  cfg.update(changes)
  json.dump(cfg, open(os.path.join(d, 'config.json'), 'w'))
  _loads_or_raises_ours(lambda: load_model(d, tokenizer=False))
