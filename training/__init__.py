"""Fine-tuning and evaluation (see the training issue)."""
