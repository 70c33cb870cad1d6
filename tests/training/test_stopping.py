"""Early stopping: the fixed rules stop where they should; the seed's rule stopped at the first improvement."""

import keras

from kitchenware.training.stopping import stopping_callbacks


def epochs_run(callbacks: list[keras.callbacks.Callback], accuracies: list[float]) -> tuple[int, float]:
    """Feed validation accuracies epoch by epoch, as fit() would.

    Returns the epochs run and the (0-based) epoch whose weights the model holds at the end."""
    model = keras.Sequential([keras.Input((1,)), keras.layers.Dense(1)])
    model.stop_training = False  # as fit() sets it
    for callback in callbacks:
        callback.set_model(model)
        callback.on_train_begin()
    for epoch, accuracy in enumerate(accuracies):
        model.get_layer(index=0).kernel.assign([[float(epoch)]])  # weights that tell the epoch
        for callback in callbacks:
            callback.on_epoch_end(epoch, {"val_accuracy": accuracy})
        if model.stop_training:
            break
    for callback in callbacks:
        callback.on_train_end()
    return epoch + 1, float(model.get_layer(index=0).kernel.numpy()[0, 0])


RISING_THEN_FLAT = [0.50, 0.60, 0.70, 0.72, 0.71, 0.70, 0.69, 0.80]


def test_seed_rule_stopped_at_the_first_improvement():
    seed_rule = [keras.callbacks.EarlyStopping(monitor="val_accuracy", mode="min", baseline=0.97)]
    assert epochs_run(seed_rule, RISING_THEN_FLAT)[0] == 2


def test_patience_stops_after_that_many_epochs_without_improvement_and_restores_the_best():
    ran, restored_epoch = epochs_run(stopping_callbacks(patience=3, target_accuracy=None), RISING_THEN_FLAT)
    assert ran == 7  # best at epoch 4 (0.72), then 3 epochs without improvement
    assert restored_epoch == 3  # weights of epoch 4 (0-based 3)


def test_training_runs_on_while_accuracy_keeps_rising():
    assert epochs_run(stopping_callbacks(patience=2, target_accuracy=None), [0.1, 0.2, 0.3, 0.4, 0.5])[0] == 5


def test_target_accuracy_stops_once_reached():
    ran, restored_epoch = epochs_run(stopping_callbacks(patience=3, target_accuracy=0.7), RISING_THEN_FLAT)
    assert (ran, restored_epoch) == (3, 2)


def test_target_not_reached_runs_every_epoch():
    assert epochs_run(stopping_callbacks(patience=5, target_accuracy=0.99), [0.9, 0.95, 0.96])[0] == 3


def test_patience_zero_runs_every_epoch_and_keeps_the_last_weights():
    assert epochs_run(stopping_callbacks(patience=0, target_accuracy=None), RISING_THEN_FLAT) == (8, 7.0)
