"""The adapter's card is written from its run's summary."""

from configs import safety_smollm2
from refusal_jax.tuning import card


def _judged(refused, **extra):
  return dict(n=100, refused=refused, graded=dict(
      refusal=refused, broken=0.1, off_topic=0.2, jailbreak=0.7 - refused),
              **extra)


def test_card_carries_the_measured_figures():
  config = safety_smollm2.get_config().to_dict()
  ev = {
      'harmful': {'advbench': _judged(0.97), 'harmbench': _judged(0.915)},
      'harmless': {'alpaca': _judged(0.03, answered=0.97),
                   'spot_questions': _judged(0.0, answered=1.0)},
      'base': {'harmful': {'advbench': _judged(0.01),
                           'harmbench': _judged(0.02)},
               'harmless': {'alpaca': _judged(0.0, answered=1.0)}},
      'ce': {'tuned': 0.61, 'base': 0.55, 'difference': 0.06,
             'source': 'handwritten'},
      'direction': {'layer': 11, 'position': -2, 'candidates': []},
      'ablation': {'advbench': _judged(0.12, complied=0.88),
                   'harmbench': _judged(0.2, complied=0.8)},
      'targets': {'advbench_refused': True, 'harmbench_refused': True,
                  'alpaca_answered': True, 'ce_difference': True,
                  'ablation_on_topic': True},
      'adapter_dtype': {'dtype': 'bfloat16', 'max_abs_logit_diff': 0.003,
                        'same_completions': 0.99}}
  summary = {'eval': ev, 'config': config, 'seconds': {'train': 1500.0},
             'data': {'n_harmful': 2068, 'n_harmless': 988,
                      'n_harmless_dropped': 2, 'n_too_long': 0,
                      'n_distinct_refusals': 1281},
             'adapter_params': 2442240,
             'adapter_bytes': {'bfloat16': 4939072, 'float32': 9823216}}
  text = card.card(summary)
  assert 'resumed' not in text and 'special tokens' not in text
  summary['resumed_from'] = [0, 80]
  ev['direction']['skip_special_tokens'] = True
  text = card.card(summary)
  assert 'resumed from the checkpoint at step 80' in text
  assert 'but those of the special tokens' in text
  for figure in ('0.970', '0.915', '0.880', 'Alpaca test',
                 'the twelve spot questions', 'handwritten test prompts', '0.6100', '+0.0600',
                 'layer 11', '4,939,072', '2,442,240', 'training 1500',
                 'missed none', '99%'):
    assert figure in text, figure
