"""The `gnorm` score: the norm of the loss gradient at a pre-activation output.

Katharopoulos & Fleuret (2018) score a sample by the norm of the gradient of
its loss with respect to the pre-activation output `z` of a layer (the last
one by default): up to a factor common to all samples, it bounds the norm of
the sample's full gradient, and it costs a forward pass only.

For the output layer and the pairs of activation and loss whose gradient is
known, the gradient is computed in closed form, which is exact where the
clipped probabilities of Keras's losses give automatic differentiation a zero
gradient (a confidently misclassified sample):

| activation | loss                                   | gradient at `z`   |
|------------|----------------------------------------|-------------------|
| softmax    | (sparse) categorical cross-entropy     | `p sum(y) - y`    |
| sigmoid    | binary cross-entropy                   | `(p - y) / D`     |
| linear     | mean squared error                     | `2 (z - y) / D`   |
| linear     | cross-entropies with `from_logits=True`| as above          |

(`p` the activation's output, `D` the number of outputs, label smoothing
applied to `y`). Otherwise the gradient is taken by automatic
differentiation with respect to `z` only.
"""

import keras
from keras import ops

from importance_sampling import keras_internals

_SOFTMAX = keras.activations.softmax
_SIGMOID = keras.activations.sigmoid
_LINEAR = keras.activations.linear


def _activation_of(layer):
    """The activation that `layer` applies last, and whether it is its only job."""
    if isinstance(layer, keras.layers.Softmax):
        return (lambda z: layer(z)), True
    if isinstance(layer, keras.layers.Activation):
        return layer.activation, True
    return getattr(layer, "activation", None), False


def _find_layer(model, layer):
    if layer is None:
        return model.layers[-1]
    if isinstance(layer, str):
        return model.get_layer(layer)
    if isinstance(layer, keras.layers.Layer) and any(layer is l for l in model.layers):
        return layer
    raise ValueError(
        "`layer` must be `None` (the last layer), a layer of the model or its "
        f"name. Received: layer={layer!r} for model {model.name!r}"
    )


class PreActivationGradientNorm:
    """Scores and predictions of a model split at a layer's pre-activation output.

    Args:
        model: A functional or Sequential `keras.Model` with one output.
        layer: The layer whose pre-activation output the gradient is taken
            at: a layer with a fused `activation` (e.g.
            `Dense(10, activation="softmax")`), an `Activation` or `Softmax`
            layer (the gradient is taken at its input), or the name of one.
            Defaults to the model's last layer.

    Raises:
        ValueError: for a layer that has no activation.
    """

    def __init__(self, model, layer=None):
        layer = _find_layer(model, layer)
        activation, separate = _activation_of(layer)
        if activation is None:
            raise ValueError(
                "`score='gnorm'` takes the gradient at the pre-activation output "
                "of a layer with an activation: a layer with an `activation` "
                "argument (e.g. `Dense(10, activation='softmax')`) or an "
                "`Activation` layer; pass it as `layer=`. Received: layer "
                f"{layer.name!r} of type {type(layer).__name__}, which has none"
            )
        inputs = model.inputs
        self.model = model
        self.layer = layer
        self.activation = activation
        self.separate = separate
        self.trunk = keras.Model(inputs[0] if len(inputs) == 1 else inputs, layer.input)
        self.head = None
        if layer.output is not model.outputs[0]:
            self.head = keras.Model(layer.output, model.outputs[0])
        self._closed_form = None
        self._resolved = False

    def pre_activation(self, x, training):
        """The pre-activation output `z` of the layer for inputs `x`."""
        features = self.trunk(x, training=training)
        if self.separate:
            return features
        activation = self.layer.activation
        self.layer.activation = _LINEAR
        try:
            return self.layer(features, training=training)
        finally:
            self.layer.activation = activation

    def predict(self, z, training):
        """The model's output from the pre-activation output `z`."""
        output = self.activation(z)
        return output if self.head is None else self.head(output, training=training)

    def outputs(self, x, y, training, loss_fn, gradient_norms):
        """Predictions and per-sample gradient norms at `z`.

        Args:
            loss_fn: The per-sample loss `f(y_true, y_pred)`.
            gradient_norms: The backend's `gradient_norms(function, inputs)`.
        """
        z = self.pre_activation(x, training)
        y_pred = self.predict(z, training)
        closed_form = self._closed(y, y_pred)
        if closed_form is not None:
            return y_pred, ops.norm(closed_form(ops.cast(z, "float32"), y), axis=-1)
        norms = gradient_norms(
            lambda zz: loss_fn(y, self.predict(zz, training)), ops.stop_gradient(z)
        )
        return y_pred, norms

    def _closed(self, y, y_pred):
        """The closed-form gradient `f(z, y)` of the compiled loss, or `None`."""
        if not self._resolved:
            if self.head is None:
                self._closed_form = _closed_form(self.model, self.activation, y, y_pred)
            self._resolved = True
        return self._closed_form


def _closed_form(model, activation, y, y_pred):
    if len(y_pred.shape) != 2:
        return None
    _, entries = keras_internals.compiled_losses(model, y, y_pred)
    if len(entries) != 1:
        return None
    loss = entries[0].loss
    fn = getattr(loss, "fn", loss)
    kwargs = dict(getattr(loss, "_fn_kwargs", {}) or {})
    weight = 1.0 if entries[0].loss_weights is None else float(entries[0].loss_weights)
    from_logits = kwargs.pop("from_logits", False)
    smoothing = kwargs.pop("label_smoothing", 0.0)
    if kwargs.pop("axis", -1) != -1 or kwargs.pop("ignore_class", None) is not None:
        return None
    if kwargs:
        return None
    outputs = y_pred.shape[-1]
    losses = keras.losses
    if fn in (losses.categorical_crossentropy, losses.sparse_categorical_crossentropy):
        if activation is not (_LINEAR if from_logits else _SOFTMAX):
            return None
        sparse = fn is losses.sparse_categorical_crossentropy

        def gradient(z, y):
            if sparse:
                y = ops.one_hot(ops.cast(ops.reshape(y, [-1]), "int32"), outputs)
            y = ops.cast(y, "float32") * (1.0 - smoothing) + smoothing / outputs
            p = ops.softmax(z, axis=-1)
            return weight * (p * ops.sum(y, axis=-1, keepdims=True) - y)

        return gradient
    if fn is losses.binary_crossentropy:
        if activation is not (_LINEAR if from_logits else _SIGMOID):
            return None

        def gradient(z, y):
            y = ops.reshape(ops.cast(y, "float32"), ops.shape(z))
            y = y * (1.0 - smoothing) + 0.5 * smoothing
            return weight * (ops.sigmoid(z) - y) / outputs

        return gradient
    if fn is losses.mean_squared_error and activation is _LINEAR:
        def gradient(z, y):
            y = ops.reshape(ops.cast(y, "float32"), ops.shape(z))
            return weight * 2.0 * (z - y) / outputs

        return gradient
    return None
