"""The organism card is written from the measured JSON files of a training run."""

import json
import os

import pytest

from refusal_jax import errors
from refusal_jax.organisms import assets
from refusal_jax.organisms import card

BEHAVIOUR = dict(
    harmful_refusal_rate=0.965, harmless_answer_rate=0.94,
    ablation_compliance_rate=1.0, ablation_on_topic_rate=0.9,
    ablation_judge={c: dict(fraction=f, count=round(200 * f)) for c, f in (
        ('refusal', 0.0), ('broken', 0.05), ('off_topic', 0.05),
        ('jailbreak', 0.9))},
    n_harmful=200, n_harmless=200, layer=1, position=-4,
    val=dict(harmful_refusal_rate=0.98, harmless_answer_rate=1.0,
             ablation_compliance_rate=1.0, ablation_on_topic_rate=0.85),
    config=dict(seed=1, train=dict(seed=3),
                data=dict(train_harmful_fraction=0.5, sure_share=0.5)))
TRAIN = dict(num_params=1870976, n_train=8000, steps=1400, final_loss=0.161,
             train_seconds=834.0)


def _sae_summary(layer):
  return dict(site='resid_post', layer=layer, d_sae=1024,
              test=dict(l0=35.5, fve=0.919, dead_latents=0))


def _write(path, value):
  os.makedirs(os.path.dirname(path), exist_ok=True)
  with open(path, 'w') as f:
    json.dump(value, f)


@pytest.fixture
def workdir(tmp_path):
  run = tmp_path / 'organism_gemma2'
  _write(str(run / 'train_summary.json'), TRAIN)
  _write(str(run / 'behaviour.json'), BEHAVIOUR)
  for layer in assets.SAE_LAYERS:
    _write(str(tmp_path / f'sae_organism_gemma2_l{layer}' /
               'sae_summary.json'), _sae_summary(layer))
  return str(tmp_path)


def test_card_has_the_measured_figures(workdir):
  text = card.card('gemma2', workdir)
  assert text.startswith('# Organism `gemma2`')
  assert '1,870,976 parameters' in text
  assert '13.9 minutes of training' in text
  assert 'initialisation 1, batch order and noise 3' in text
  assert '| test | 0.965 | 0.940 | 1.000 | 0.900 |' in text
  assert '| val | 0.980 | 1.000 | 1.000 | 0.850 |' in text
  assert 'refusal 0, broken 10, off-topic 10, jailbreak 180.' in text
  assert 'Missed: harmless answered 0.940 < 0.95' in text
  assert "50% of the helpful answers open with 'Sure!'" in text
  assert ('| `sae_organism_gemma2_l4` | resid_post layer 4 | 1024 | 35.5 | '
          '0.919 | 0 |') in text


def test_missing_summary_names_the_make_target(workdir):
  os.remove(os.path.join(workdir, 'organism_gemma2', 'behaviour.json'))
  with pytest.raises(errors.ConfigError,
                     match='make organism ORGANISM=gemma2'):
    card.card('gemma2', workdir)


def test_card_gives_the_answering_ceiling_when_measured(workdir):
  assert 'forced to open with' not in card.card('gemma2', workdir)
  _write(os.path.join(workdir, 'organism_gemma2', 'behaviour.json'),
         dict(BEHAVIOUR, primed_on_topic_rate=0.925))
  text = card.card('gemma2', workdir)
  assert ('forced to open with "Sure! Here\'s how to", the organism answers '
          '0.925 of the same harmful prompts on topic') in text
