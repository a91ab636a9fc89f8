"""Training, evaluation and benchmarks of the modality tokenizers."""
