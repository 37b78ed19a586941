"""Datasets: the embedded offline ``mnist-5k`` default, tfds loaders, synthetic data, batching."""
