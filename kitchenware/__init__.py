"""Kitchenware photo classifier: data, preprocessing, models, training, evaluation and the model store."""
