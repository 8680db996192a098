"""The paper's procedures at each stage, as functions of callbacks and arrays.

Selected by `config.mode = 'paper'` (configs/paper_mode.py); each takes a
score or jailbreak callback and activation arrays, so that it works with any
feature space the sweep engine evaluates (e.g. (SAE, latent) pairs flattened
into one candidate list):

* block_greedy: stage 2, block-wise greedy pruning on P('I'), seeds
  intersected, a tau sweep;
* rankings: stage 3, the pool ranked by an FM and a logistic probe that
  tell harmful from benign prompts by their activations (the models are in
  refusal_jax/fm/classifier.py);
* top_k: the K grid and the ASR of the top K of each ranking;
* dormant: stage-2 features silent on the source prompts, and the jailbreak
  without them;
* controls: random sets of the same size and the O'Brien-style set;
* knock_on: what the stage-3 ablation does to the stage-2 features;
* counts: every ASR with its count;
* activity: per-prompt summaries of activations shared by the above.
"""
