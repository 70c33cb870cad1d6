"""Training, evaluation and export: the only room that imports TensorFlow and Keras."""
