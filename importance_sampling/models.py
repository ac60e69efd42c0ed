"""A zoo of Keras models used in the importance sampling experiments.

Every builder takes `input_shape` and `output_size` and returns a functional
`keras.Model` **compiled** with the given optimizer, a cross-entropy loss and
the accuracy metric, ready to be wrapped by `ImportanceTraining` or an
`OracleWrapper`. The classifiers end with a softmax `Dense` layer and expect
one-hot targets; `lstm_lm` expects integer targets.

Example:

>>> from importance_sampling import models
>>> model = models.get("small_nn")((2,), 3)
>>> model.output_shape
(None, 3)
"""

import keras
from keras import layers


def _compile(inputs, outputs, optimizer, loss="categorical_crossentropy"):
    model = keras.Model(inputs, outputs)
    model.compile(optimizer=optimizer, loss=loss, metrics=["accuracy"])
    return model


def _classifier_head(x, output_size, hidden, dropout):
    """Flatten, then `Dense(relu) + Dropout` per entry of `hidden`, then softmax."""
    x = layers.Flatten()(x)
    for units in hidden:
        x = layers.Dense(units, activation="relu")(x)
        x = layers.Dropout(dropout)(x)
    return layers.Dense(output_size, activation="softmax")(x)


def _conv_stage(x, channels, batch_norm):
    """Two 3x3 relu convolutions, a 2x2 max pooling and dropout."""
    for _ in range(2):
        x = layers.Conv2D(channels, 3, padding="same", activation="relu")(x)
        if batch_norm:
            x = layers.BatchNormalization()(x)
    x = layers.MaxPooling2D(2)(x)
    return layers.Dropout(0.25)(x)


def small_nn(input_shape, output_size, optimizer="adam"):
    """A fully connected network with two `tanh` layers of 40 units.

    Args:
        input_shape: Shape of one input sample, e.g. `(2,)`.
        output_size: Number of classes.
        optimizer: Optimizer name or instance. Defaults to `"adam"`.

    Returns:
        A compiled `keras.Model`.
    """
    inputs = keras.Input(input_shape)
    x = layers.Flatten()(inputs)
    x = layers.Dense(40, activation="tanh")(x)
    x = layers.Dense(40, activation="tanh")(x)
    return _compile(inputs, layers.Dense(output_size, activation="softmax")(x), optimizer)


def small_cnn(input_shape, output_size, optimizer="adam"):
    """Two convolutional stages (32 and 64 channels) and two 512-unit layers.

    Args:
        input_shape: Shape of one image, channels last, e.g. `(28, 28, 1)`.
        output_size: Number of classes.
        optimizer: Optimizer name or instance. Defaults to `"adam"`.

    Returns:
        A compiled `keras.Model`.
    """
    inputs = keras.Input(input_shape)
    x = _conv_stage(inputs, 32, batch_norm=False)
    x = _conv_stage(x, 64, batch_norm=False)
    return _compile(inputs, _classifier_head(x, output_size, (512, 512), 0.5), optimizer)


def cnn(input_shape, output_size, optimizer="adam"):
    """Three batch-normalised convolutional stages (64, 128, 256 channels).

    Followed by fully connected layers of 1024 and 512 units. The image side
    must be at least 8 pixels.

    Args:
        input_shape: Shape of one image, channels last, e.g. `(32, 32, 3)`.
        output_size: Number of classes.
        optimizer: Optimizer name or instance. Defaults to `"adam"`.

    Returns:
        A compiled `keras.Model`.
    """
    inputs = keras.Input(input_shape)
    x = inputs
    for channels in (64, 128, 256):
        x = _conv_stage(x, channels, batch_norm=True)
    return _compile(inputs, _classifier_head(x, output_size, (1024, 512), 0.5), optimizer)


def elu_cnn(input_shape, output_size, optimizer=None):
    """The all-convolutional ELU network of Clevert et al. (2015).

    Five stages of ELU convolutions separated by 2x2 max poolings, then a
    1x1 convolution to `output_size` channels, global average pooling and a
    softmax. The image side must be at least 32 pixels.

    Args:
        input_shape: Shape of one image, channels last, e.g. `(32, 32, 3)`.
        output_size: Number of classes.
        optimizer: Optimizer name or instance. Defaults to SGD with momentum
            0.9.

    Returns:
        A compiled `keras.Model`.

    References:
        - [Clevert et al., 2015](https://arxiv.org/abs/1511.07289)
    """
    # (number of convolutions, channels, kernel size) per group; `None` pools.
    plan = [
        (1, 384, 3), (1, 384, 3), None,
        (1, 384, 1), (1, 384, 2), (2, 640, 2), None,
        (1, 640, 1), (3, 768, 2), None,
        (1, 768, 1), (2, 896, 2), None,
        (1, 896, 3), (2, 1024, 2), None,
    ]
    inputs = keras.Input(input_shape)
    x = inputs
    for group in plan:
        if group is None:
            x = layers.MaxPooling2D(2)(x)
            continue
        count, channels, kernel = group
        for _ in range(count):
            x = layers.Conv2D(channels, kernel, padding="same", activation="elu")(x)
    x = layers.Conv2D(output_size, 1, padding="same")(x)
    x = layers.GlobalAveragePooling2D()(x)
    outputs = layers.Activation("softmax")(x)
    if optimizer is None:
        optimizer = keras.optimizers.SGD(momentum=0.9)
    return _compile(inputs, outputs, optimizer)


def lstm_lm(input_shape, output_size, optimizer="adam", embedding_size=64, units=256):
    """A two-layer LSTM language model predicting the next word.

    Inputs are word indices in `[1, output_size]`, 0 meaning padding (it is
    masked). Targets are the integer index of the next word in
    `[0, output_size)` (sparse categorical cross-entropy).

    Args:
        input_shape: `(context,)`, the number of previous words.
        output_size: The vocabulary size.
        optimizer: Optimizer name or instance. Defaults to `"adam"`.
        embedding_size: Size of the word embeddings. Defaults to `64`.
        units: Units of each LSTM layer. Defaults to `256`.

    Returns:
        A compiled `keras.Model`.
    """
    inputs = keras.Input(input_shape, dtype="int32")
    x = layers.Embedding(output_size + 1, embedding_size, mask_zero=True)(inputs)
    x = layers.LSTM(units, return_sequences=True)(x)
    x = layers.Dropout(0.5)(x)
    x = layers.LSTM(units)(x)
    x = layers.Dropout(0.5)(x)
    outputs = layers.Dense(output_size, activation="softmax")(x)
    return _compile(inputs, outputs, optimizer, loss="sparse_categorical_crossentropy")


def _residual_block(x, channels, strides, dropout):
    """Pre-activation residual block of two 3x3 convolutions."""
    y = layers.BatchNormalization()(x)
    y = layers.Activation("relu")(y)
    y = layers.Conv2D(channels, 3, strides=strides, padding="same", use_bias=False)(y)
    if dropout > 0:
        y = layers.Dropout(dropout)(y)
    y = layers.BatchNormalization()(y)
    y = layers.Activation("relu")(y)
    y = layers.Conv2D(channels, 3, padding="same", use_bias=False)(y)
    if x.shape[1:] != y.shape[1:]:
        x = layers.Conv2D(channels, 1, strides=strides, padding="same", use_bias=False)(x)
    return layers.Add()([x, y])


def wide_resnet(input_shape, output_size, depth=16, width=4, dropout=0.0,
                optimizer="adam"):
    """The wide residual network WRN-depth-width of Zagoruyko & Komodakis.

    Three groups of `(depth - 4) / 6` residual blocks with `16 * width`,
    `32 * width` and `64 * width` channels; the last two groups halve the
    image side.

    Args:
        input_shape: Shape of one image, channels last, e.g. `(32, 32, 3)`.
        output_size: Number of classes.
        depth: Number of layers; `depth - 4` must be a positive multiple
            of 6. Defaults to `16`.
        width: Channel multiplier. Defaults to `4`.
        dropout: Dropout rate between the convolutions of a block.
            Defaults to `0.0`.
        optimizer: Optimizer name or instance. Defaults to `"adam"`.

    Returns:
        A compiled `keras.Model`.

    Raises:
        ValueError: for a `depth` that is not `6 n + 4`.

    References:
        - [Zagoruyko & Komodakis, 2016](https://arxiv.org/abs/1605.07146)
    """
    if depth < 10 or (depth - 4) % 6:
        raise ValueError(
            "`depth` must be 6 n + 4 for a positive integer n (e.g. 16, 28). "
            f"Received: depth={depth}"
        )
    inputs = keras.Input(input_shape)
    x = layers.Conv2D(16, 3, padding="same", use_bias=False)(inputs)
    for group, channels in enumerate((16, 32, 64)):
        for block in range((depth - 4) // 6):
            strides = 2 if group > 0 and block == 0 else 1
            x = _residual_block(x, channels * width, strides, dropout)
    x = layers.BatchNormalization()(x)
    x = layers.Activation("relu")(x)
    x = layers.GlobalAveragePooling2D()(x)
    outputs = layers.Dense(output_size, activation="softmax")(x)
    return _compile(inputs, outputs, optimizer)


def wide_resnet_16_4(input_shape, output_size, optimizer="adam"):
    """WRN-16-4, see `wide_resnet`."""
    return wide_resnet(input_shape, output_size, 16, 4, optimizer=optimizer)


def wide_resnet_28_10(input_shape, output_size, optimizer="adam"):
    """WRN-28-10, see `wide_resnet`."""
    return wide_resnet(input_shape, output_size, 28, 10, optimizer=optimizer)


MODELS = {
    builder.__name__: builder
    for builder in (
        small_nn, small_cnn, cnn, elu_cnn, lstm_lm, wide_resnet_16_4, wide_resnet_28_10,
    )
}


def get(name):
    """The builder of the model called `name`.

    Args:
        name: One of the keys of `MODELS`, e.g. `"small_nn"`.

    Returns:
        A function `builder(input_shape, output_size, optimizer=...)`.

    Raises:
        ValueError: for an unknown name.
    """
    if name not in MODELS:
        raise ValueError(
            f"Unknown model {name!r}. Expected one of {sorted(MODELS)}. "
            f"Received: name={name!r}"
        )
    return MODELS[name]
