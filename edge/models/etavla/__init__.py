"""ETA-VLA family (in progress: the model and its tokenizer; card, data and training still to come)."""
