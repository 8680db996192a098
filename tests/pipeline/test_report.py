"""report.html from a tiny real model and SAE with fake stage artifacts."""

import os
import re

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

import refusal_jax
from refusal_jax.checkpoints import export
from refusal_jax.models import transformer
from refusal_jax.models.config import ModelConfig
from refusal_jax.organisms import data as organism_data
from refusal_jax.organisms import tokenizer as organism_tokenizer
from refusal_jax.pipeline import artifacts
from refusal_jax.pipeline import report
from refusal_jax.pipeline.context import Context
from refusal_jax.sae.model import SAE
from refusal_jax.sweeps.engine import Chunks
from refusal_jax.sweeps.metrics import metric_from

D, A, LAYERS, N_POS = 32, 40, 2, 3
STAGE2, FM_SET, PROBE_SET = [3, 17, 25], [3, 8, 30], [17, 5, 11]
POOL = STAGE2 + [8, 30, 5, 11, 2, 9]
ASR = dict(baseline=0.125, direction_ablation=0.875, stage2=0.625, fm=0.75,
           linear_probe=0.375)
CE = dict(baseline=1.2345, direction_ablation=1.3456, feature_ablation=1.4567)
ASR_SUBSTRING = {k: min(1.0, v + 0.0625) for k, v in ASR.items()}
JUDGE = {k: dict(jailbreak=dict(fraction=v, count=round(8 * v)),
                 off_topic=dict(fraction=0.0, count=0),
                 broken=dict(fraction=0.0625, count=0),
                 refusal=dict(fraction=1 - v - 0.0625, count=0))
         for k, v in ASR.items()}
SURROGATE = dict(stage2=dict(n_flips=6, n_flips_jailbreak=5,
                             agreement=5 / 6))


def _sae():
  k = jax.random.split(jax.random.key(0), 3)
  return SAE(W_enc=jax.random.normal(k[0], (D, A)) * 0.3,
             b_enc=jax.random.normal(k[1], (A,)) * 0.1,
             W_dec=jax.random.normal(k[2], (A, D)) * 0.3,
             b_dec=jnp.zeros((D,)), threshold=None, architecture='relu', k=None,
             apply_b_dec_to_input=False, rescale_acts_by_decoder_norm=False,
             site='resid_pre', layer=1, hook_name='blocks.1.hook_resid_pre',
             model_name='tiny', neuronpedia_id='tiny-llama/1-res',
             dtype='float32')


def _context(root):
  splits = organism_data.make_dataset(
      seed=0, n_per_split={'train': 60, 'val': 20, 'test': 20})
  by_kind = {True: [], False: []}
  for e in splits['train']:
    by_kind[e.harmful].append(e.instruction)
  tok = organism_tokenizer.train_tokenizer(
      [e.instruction for e in splits['train']], style='llama3',
      vocab_size=300)
  cfg = ModelConfig.llama(
      vocab_size=len(tok), d_model=D, num_layers=LAYERS, num_heads=2,
      num_kv_heads=1, head_dim=16, mlp_dim=48, max_position_embeddings=256,
      bos_token_id=tok.bos_token_id,
      eos_token_ids=tuple(organism_tokenizer.stop_token_ids(tok)),
      pad_token_id=tok.pad_token_id)
  path = export.save_hf_checkpoint(transformer.init_params(cfg, seed=0), cfg,
                                   os.path.join(root, 'model'), tokenizer=tok)
  model = refusal_jax.load_model(path)
  ctx = Context(config=ml_collections.ConfigDict({'seed': 0}), model=model,
                sae=_sae(), hydra_saes=[], metric=metric_from('refusal_score',
                                                              [5]),
                prompts={}, n_eoi=N_POS, n_prefix=5,
                chunks=Chunks(masks=8, prompts=16))
  ctx.prompts = {'harmful_train': ctx.encode(by_kind[True][:10]),
                 'harmless_train': ctx.encode(by_kind[False][:10]),
                 'harmful_test': ctx.encode(by_kind[True][10:14])}
  return ctx


def _write_artifacts(workdir):
  rng = np.random.default_rng(0)
  n_cand = N_POS * LAYERS
  artifacts.write_json(os.path.join(workdir, 'direction.json'), dict(
      layer=1, position=-2, bypass_score=-1.5, induce_score=0.4, kl=0.05,
      baseline_score=2.0, selection_note='passed all filters',
      n_candidates=n_cand, n_features=8, features=STAGE2 + [1, 2, 4, 6, 7],
      cosine=[0.5] * 8, score=[0.5] * 8, seconds=1.0))
  artifacts.write_npz(
      os.path.join(workdir, 'direction.npz'),
      direction=rng.normal(size=D).astype(np.float32),
      candidates=rng.normal(size=(N_POS, LAYERS, D)),
      score_bypass=rng.normal(size=n_cand), score_induce=rng.normal(
          size=n_cand), score_kl=rng.random(n_cand),
      score_layer=np.tile(np.arange(LAYERS), N_POS),
      score_position=np.repeat(np.arange(N_POS) - N_POS, LAYERS))
  artifacts.write_json(os.path.join(workdir, 'greedy.json'), dict(
      features=STAGE2, flips=True, threshold=0.0, mean_metric=-0.4,
      flip_fraction=0.75, n_prompts=10, order='backward', seconds=2.0,
      trajectory=[dict(size=8 - i, mean_metric=-1.0 + 0.1 * i,
                       flip_fraction=1.0 - 0.05 * i) for i in range(6)]))
  hist = [(s, 0.5 / s, 0.6 / s) for s in (100, 200, 300)]
  artifacts.write_json(os.path.join(workdir, 'interactions.json'), dict(
      pool=POOL, n_pool=len(POOL), n_active=30, n_masks=40, n_val_masks=8,
      set_size=3, fm_features=FM_SET, linear_probe_features=PROBE_SET,
      fm_val_loss=0.01, linear_val_loss=0.02, fm_train_loss=0.005,
      linear_train_loss=0.015, y_variance=0.05, fm_history=hist,
      linear_history=hist, seconds=3.0))
  masks = (rng.random((40, len(POOL))) < 0.3).astype(np.float32)
  artifacts.write_npz(
      os.path.join(workdir, 'interactions.npz'), masks=masks,
      y=rng.normal(size=40), pool=np.asarray(POOL),
      fm_effect=rng.normal(size=len(POOL)),
      linear_effect=rng.normal(size=len(POOL)),
      fm_w=rng.normal(size=len(POOL)), fm_v=rng.normal(size=(len(POOL), 2)),
      lin_w=rng.normal(size=len(POOL)))
  artifacts.write_json(os.path.join(workdir, 'hydra.json'), dict(
      n_redundant=2, n_awakened=5, set_metric=0.1, seconds=1.0,
      token_positions=dict(bos=0.5, template=0.25, instruction=0.25),
      redundant=[dict(hook='blocks.1.hook_resid_post', latent=4,
                      effect=-0.2)],
      per_sae=[dict(hook='blocks.1.hook_resid_post', n_awakened=5,
                    n_redundant=2)]))
  artifacts.write_json(os.path.join(workdir, 'evaluation.json'), dict(
      asr=ASR, ce_loss=CE, n_harmful_test=8, n_ce_prompts=4,
      harmless_refusal_rate=0.0, seconds=4.0, judge=JUDGE,
      asr_substring=ASR_SUBSTRING, surrogate=SURROGATE))
  artifacts.write_json(os.path.join(workdir, 'completions.json'), dict(
      prompts=['How do I <b>pick</b> a lock?', 'p2', 'p3', 'p4'],
      completions={k: ['I cannot <script>x</script>', 'Sure',
                       'line, state your request.',
                       "Sure! Here's how to pick a lock."] for k in ASR},
      judge={k: ['refusal', 'off_topic', 'broken', 'jailbreak']
             for k in ASR}))


def _summary():
  return dict(
      model='organism_tiny', model_path='/tmp/model', sae='/tmp/sae',
      sae_hook='blocks.1.hook_resid_pre',
      direction=dict(layer=1, position=-2, asr_baseline=ASR['baseline'],
                     asr_ablation=ASR['direction_ablation'], kl=0.05,
                     bypass_score=-1.5, induce_score=0.4),
      stage1=dict(n_features=8, features=STAGE2 + [1, 2, 4, 6, 7]),
      stage2=dict(features=STAGE2, asr=ASR['stage2'], n_features=3,
                  flips=True),
      stage3=dict(fm_features=FM_SET, fm_asr=ASR['fm'],
                  linear_probe_features=PROBE_SET,
                  linear_probe_asr=ASR['linear_probe'], fm_val_loss=0.01,
                  linear_val_loss=0.02, n_pool=len(POOL), n_masks=40),
      hydra=dict(n_redundant=2, n_awakened=5,
                 token_positions=dict(bos=0.5, template=0.25,
                                      instruction=0.25), note=None),
      judge=JUDGE, asr_substring=ASR_SUBSTRING, surrogate=SURROGATE,
      ce_loss=CE, n_prompts={'harmful_train': 10, 'harmless_train': 10,
                             'harmful_test': 4},
      seconds=12.5, provenance=dict(package_version='0.1.0', git_commit=None,
                                    jax_version=jax.__version__))


def _table(text, table_id):
  match = re.search(rf'<table id="{table_id}">.*?</table>', text, re.S)
  assert match, table_id
  return match.group(0)


@pytest.fixture(scope='module')
def ctx(tmp_path_factory):
  return _context(str(tmp_path_factory.mktemp('tiny')))


def test_report_is_complete_and_self_contained(ctx, tmp_path):
  workdir = str(tmp_path / 'run')
  os.makedirs(workdir)
  _write_artifacts(workdir)
  path = report.write_report(workdir, _summary(), ctx)
  assert path == os.path.join(workdir, 'report.html')
  with open(path, encoding='utf-8') as f:
    text = f.read()
  assert not [n for n in os.listdir(workdir) if n.startswith('.tmp-')]

  asr = _table(text, 'asr-table')
  for value in ASR.values():
    assert f'{value:.3f}' in asr
  for size in ('7 / 8', '5 / 8', '1 / 8'):  # direction, stage 2, baseline
    assert size in asr
  ce = _table(text, 'ce-table')
  for value in CE.values():
    assert f'{value:.4f}' in ce

  assert text.count('data:image/png;base64,') >= 4
  assert '<script' not in text
  assert '&lt;script&gt;' in text  # completions are escaped
  assert 'http://' not in text and 'https://' not in text
  assert not re.search(r'(src|href)\s*=\s*"(?!data:|#)', text)  # in-page only
  assert not re.search(r'@import|url\(', text)

  for latent in STAGE2:
    assert f'id="feature-{latent}"' in text
    assert f'tiny-llama/1-res/{latent}' in text
  assert text.count('class="card"') == len(set(STAGE2 + FM_SET + PROBE_SET))
  assert 'blocks.1.hook_resid_pre' in text
  assert '<mark>' in text  # top-activating token contexts


def test_report_survives_empty_sets_and_missing_artifacts(ctx, tmp_path):
  workdir = str(tmp_path / 'bare')
  os.makedirs(workdir)
  summary = _summary()
  summary['stage2'] = dict(features=[], asr=0.0, n_features=0, flips=False)
  summary['stage3'].update(fm_features=[], linear_probe_features=[])
  summary['hydra'] = dict(n_redundant=0, n_awakened=0, token_positions={},
                          note='no SAE downstream of the searched site')
  path = report.write_report(workdir, summary, ctx)
  with open(path, encoding='utf-8') as f:
    text = f.read()
  assert 'no SAE downstream of the searched site' in text
  assert 'class="card"' not in text
  assert f'{ASR["baseline"]:.3f}' in _table(text, 'asr-table')


@pytest.fixture(scope='module')
def rendered(ctx, tmp_path_factory):
  """report.html of the full artifacts, rendered once for the tests below."""
  workdir = str(tmp_path_factory.mktemp('rendered'))
  _write_artifacts(workdir)
  with open(report.write_report(workdir, _summary(), ctx),
            encoding='utf-8') as f:
    return f.read()


def test_report_leads_with_the_answer(rendered):
  """Results and the chosen sets first, how they were found next, run
  metadata (paths, counts, timings, provenance) last."""
  text = rendered
  sections = re.findall(r'<section id="([\w-]+)">', text)
  assert sections[:2] == ['tables', 'chosen'], sections
  assert sections[-1] == 'run', sections
  assert sections.index('stage1') < sections.index('stage2') < sections.index(
      'stage3')
  assert '<a href="#run">' in text  # the link to the run details works
  first_table = re.search(r'<table id="([\w-]+)"', text).group(1)
  assert first_table == 'asr-table'
  tables = re.search(r'<section id="tables">.*?</section>', text, re.S).group(0)
  ids = re.findall(r'<table id="([\w-]+)"', tables)
  assert ids[:2] == ['asr-table', 'judge-table'], ids
  assert 'judge-examples' in ids


def test_report_shows_the_graded_judge(rendered):
  text = rendered
  judge = _table(text, 'judge-table')
  for cls in ('jailbreak', 'off_topic', 'broken', 'refusal'):
    assert f'<td>{cls}</td>' in judge
  assert f'{ASR["stage2"]:.3f}' in judge
  assert f'{ASR_SUBSTRING["stage2"]:.3f}' in judge  # the substring ASR row
  assert '0.833' in judge and '(5 / 6)' in judge  # surrogate agreement
  examples = _table(text, 'judge-examples')
  assert 'line, state your request.' in examples
  assert 'Here&#x27;s how to pick a lock.' in examples
  assert examples.count('<tr>') == 5  # header and one row per class
  for late in ('run-facts', 'prompt-counts', 'provenance'):
    assert text.index(f'id="{late}"') > text.index('<section id="completions"')
  chosen = _table(text, 'chosen-sets')
  assert ', '.join(str(a) for a in STAGE2) in chosen
