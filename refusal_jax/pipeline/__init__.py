"""The refusal-dissection pipeline: refusal directions and the stages built on them."""
