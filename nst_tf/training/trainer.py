"""Feed-forward style training: Johnson (one style), Dumoulin CIN (many styles), fine-tuning.

The pieces, each usable alone:

* :class:`PerceptualLoss`: content + Gram style + total-variation loss on a frozen loss network,
  with the style Gram matrices of every style computed once (``[N, C, C]`` per layer) and gathered
  by each example's style label. Reductions follow Magenta's ``learning.py``: per example, the
  content term is ``mean_{h,w,c}(φ(x) − φ(c))²`` and the style term ``mean_{i,j}(G(φ(x)) − G_s)²``
  (``G = FᵀF/(H·W)``); each is multiplied by its layer weight, then averaged over the batch.
* :class:`StyleTrainer`: a ``keras.Model`` whose ``train_step`` minimizes that loss for a
  transformer network, so ``fit()``, callbacks, ``tf.distribute`` strategies and XLA
  (``jit_compile="auto"``) work; float16 mixed precision gets a ``LossScaleOptimizer``.
* Callbacks: :class:`CheckpointCallback` (``tf.train.CheckpointManager``: step, network, optimizer;
  saves every N steps, on SIGINT and at the end), :class:`ThroughputCallback` (images/s in the
  progress bar), :class:`SummaryCallback` (TensorBoard: every loss term, the learning rate and a
  grid of stylized validation images).
* :func:`extend_styles` / :func:`freeze_convolutions`: fine-tuning à la Dumoulin et al.: add style
  rows to every CIN layer of a trained pastiche network and train only gamma / beta.
* :func:`train`: the whole pipeline (what ``nst-train`` runs), resuming from ``train_dir``.
* :func:`export_magenta_checkpoint`; SavedModel export is :func:`nst_tf.export.export_saved_model`.

Example:
    >>> from nst_tf.training import train
    >>> net = train("photos/*.jpg", ["starry.jpg", "scream.jpg"], "runs/cin", mode="cin",
    ...             train_steps=40000)                                         # doctest: +SKIP
"""

import contextlib
import json
import math
import os
import signal
import threading
import time

import keras
import numpy as np
import tensorflow as tf

from nst_tf import data
from nst_tf.device import resolve_jit_compile
from nst_tf.errors import CheckpointError, ConfigError
from nst_tf.io import atomic_write
from nst_tf.networks import is_conditional

MODES = ("johnson", "cin", "finetune", "adain", "texture", "texture_stylize")
#: Modes training an Ulyanov et al. texture network (defaults: :func:`nst_tf.models.texture.family.training_defaults`).
TEXTURE_MODES = ("texture", "texture_stylize")
STRATEGIES = ("default", "mirrored", "one_device")
MIXED_PRECISION = (None, "mixed_float16", "mixed_bfloat16")

#: Magenta's defaults (image_stylization_train.py), on its VGG-16 end points.
MAGENTA_CONTENT_WEIGHTS = {"vgg_16/conv3": 1.0}
MAGENTA_STYLE_WEIGHTS = {"vgg_16/conv1": 1e-4, "vgg_16/conv2": 1e-4, "vgg_16/conv3": 1e-4,
                         "vgg_16/conv4": 1e-4}

#: Magenta / slim VGG end points ``vgg_16/convK`` are the outputs of block K (last conv + ReLU).
_SLIM_BLOCK_ENDS = {"vgg16": ("block1_conv2", "block2_conv2", "block3_conv3", "block4_conv3",
                              "block5_conv3"),
                    "vgg19": ("block1_conv2", "block2_conv2", "block3_conv4", "block4_conv4",
                              "block5_conv4")}

CONFIG_FILE = "train_config.json"


# --- Layer weights ----------------------------------------------------------------------------------

def resolve_loss_layer(backbone, name):
    """Keras layer name for ``name``: Magenta's ``vgg_16/conv3`` (= ``block3_conv3``), a Keras name
    or a Caffe alias (``conv3_3``, ``relu3_3``; see :func:`nst_tf.features.resolve_layer_name`)."""
    from nst_tf.features import resolve_layer_name

    text = str(name).strip()
    if "/" in text:
        net, _, end = text.partition("/")
        ends = _SLIM_BLOCK_ENDS.get(backbone)
        if ends is not None and net.replace("_", "") == backbone and end.startswith("conv") \
                and end[4:].isdigit() and 1 <= int(end[4:]) <= 5:
            return ends[int(end[4:]) - 1]
        raise ConfigError(f"unknown layer {text!r} for backbone {backbone}: slim end points are "
                          f"'{backbone[:3]}_{backbone[3:]}/conv1' ... '/conv5'")
    return resolve_layer_name(backbone, text)


def parse_layer_weights(weights, backbone, what="layer weights"):
    """``{keras layer name: float}`` from a dict or a JSON string (Magenta's flag format).

    Example:
        >>> parse_layer_weights('{"vgg_16/conv3": 1.0}', "vgg16")   # doctest: +SKIP
        {'block3_conv3': 1.0}
    """
    if isinstance(weights, str):
        try:
            weights = json.loads(weights)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"{what} must be a JSON object like '{{\"vgg_16/conv3\": 1.0}}', "
                              f"got {weights!r} ({exc.msg})") from None
    if isinstance(weights, (list, tuple)):
        weights = {name: 1.0 for name in weights}
    if not isinstance(weights, dict):
        raise ConfigError(f"{what} must be a dict {{layer: weight}}, got {weights!r}")
    resolved = {}
    for name, value in weights.items():
        try:
            value = float(value)
        except (TypeError, ValueError):
            raise ConfigError(f"{what}: weight of {name!r} is not a number: {value!r}") from None
        if not math.isfinite(value) or value < 0:
            raise ConfigError(f"{what}: weight of {name!r} must be finite and >= 0, got {value}")
        layer = resolve_loss_layer(backbone, name)
        resolved[layer] = resolved.get(layer, 0.0) + value
    return resolved


# --- Loss -------------------------------------------------------------------------------------------

class PerceptualLoss:
    """Content, Gram style and total-variation loss of stylized images, style targets precomputed.

    Args:
        extractor: a float32 :class:`~nst_tf.features.FeatureExtractor` whose layers include every
            content and style layer.
        styles: list of N style images ``[H, W, 3]`` in [0, 1]; label ``i`` means ``styles[i]``.
        content_weights, style_weights: ``{layer: weight}`` (any names :func:`parse_layer_weights`
            accepts, or a JSON string).
        tv_weight: weight of :func:`nst_tf.losses.total_variation_loss` (L2; Magenta's CIN
            training uses 0).
        diversity_weight: weight λ of :func:`nst_tf.losses.diversity_loss` (Ulyanov et al. 2017:
            rewards samples that differ from each other; needs batches of >= 2).
        diversity_layer: the embedding of the diversity term: ``"pixels"`` or a layer of the
            extractor.

    Call ``loss(stylized, content, labels)`` with float32 ``[B, H, W, 3]`` images and int labels
    ``[B]`` → ``(total, {"content", "style", "tv"[, "diversity"]})``, TF ops only (usable inside
    XLA). Without content weights the content images are not run through the loss network.

    Example:
        >>> from nst_tf.features import FeatureExtractor
        >>> fx = FeatureExtractor("vgg16", ["block1_conv2", "block2_conv2"], weights=None)
        >>> loss = PerceptualLoss(fx, [np.ones((32, 32, 3), "float32")],
        ...                       {"block2_conv2": 1.0}, {"block1_conv2": 1e-4})
        >>> x = tf.zeros([2, 32, 32, 3])
        >>> float(loss(x, x, tf.zeros([2], tf.int32))[1]["content"])
        0.0
    """

    def __init__(self, extractor, styles, content_weights, style_weights, tv_weight=0.0,
                 diversity_weight=0.0, diversity_layer="pixels"):
        backbone = extractor.backbone
        self.extractor = extractor
        self.content_weights = parse_layer_weights(content_weights, backbone, "content weights")
        self.style_weights = parse_layer_weights(style_weights, backbone, "style weights")
        if not self.content_weights and not self.style_weights:
            raise ConfigError("content and style weights are both empty: nothing to train")
        missing = sorted((set(self.content_weights) | set(self.style_weights))
                         - set(extractor.layers))
        if missing:
            raise ConfigError(f"the loss network does not output layers {missing}; "
                              f"it has {extractor.layers}")
        self.tv_weight = float(tv_weight)
        if not math.isfinite(self.tv_weight) or self.tv_weight < 0:
            raise ConfigError(f"tv_weight must be finite and >= 0, got {tv_weight}")
        if not styles:
            raise ConfigError("at least one style image is needed")
        self.num_styles = len(styles)
        self.style_grams = data.style_gram_targets(extractor, styles, list(self.style_weights))
        self.diversity_weight = float(diversity_weight)
        if not math.isfinite(self.diversity_weight) or self.diversity_weight < 0:
            raise ConfigError(f"diversity_weight must be finite and >= 0, got {diversity_weight}")
        self.diversity_layer = None if diversity_layer in (None, "pixels") else \
            resolve_loss_layer(backbone, diversity_layer)
        if self.diversity_layer is not None and self.diversity_layer not in extractor.layers:
            raise ConfigError(f"the loss network does not output the diversity layer "
                              f"{self.diversity_layer}; it has {extractor.layers}")

    def __call__(self, stylized, content, labels):
        from nst_tf import losses

        stylized = tf.cast(stylized, tf.float32)
        content = tf.cast(content, tf.float32)
        batch = tf.shape(content)[0]
        features = self.extractor(tf.concat([stylized, content], axis=0) if self.content_weights
                                  else stylized)
        content_loss = tf.constant(0.0)
        for name, weight in self.content_weights.items():
            ours, target = features[name][:batch], tf.stop_gradient(features[name][batch:])
            per_example = tf.reduce_mean(tf.math.squared_difference(ours, target), axis=[1, 2, 3])
            content_loss += tf.reduce_mean(weight * per_example)
        style_loss = tf.constant(0.0)
        for name, weight in self.style_weights.items():
            gram = losses.gram_matrix(features[name][:batch])
            target = tf.gather(self.style_grams[name], labels)
            per_example = tf.reduce_mean(tf.math.squared_difference(gram, target), axis=[1, 2])
            style_loss += tf.reduce_mean(weight * per_example)
        tv_loss = (self.tv_weight * losses.total_variation_loss(stylized)
                   if self.tv_weight else tf.constant(0.0))
        total = content_loss + style_loss + tv_loss
        parts = {"content": content_loss, "style": style_loss, "tv": tv_loss}
        if self.diversity_weight:
            embedding = (stylized if self.diversity_layer is None
                         else features[self.diversity_layer][:batch])
            parts["diversity"] = self.diversity_weight * losses.diversity_loss(embedding)
            total += parts["diversity"]
        return total, parts


# --- Trainer ----------------------------------------------------------------------------------------

class StyleTrainer(keras.Model):
    """Trains ``network`` to minimize a :class:`PerceptualLoss` with ``fit()``.

    Data: batches of content images ``[B, H, W, 3]``, or ``(images, labels[B])`` with style labels
    in ``[0, loss.num_styles)`` (see :func:`nst_tf.data.with_style_labels`); without labels every
    example uses style 0. A conditional (pastiche) network receives ``labels + label_offset`` (the
    row of the style in its CIN layers; fine-tuning trains rows ``N_old...``).

    Build it, and ``compile`` it, inside the ``strategy.scope()`` of a distribution strategy. Under
    ``N`` replicas each computes the mean loss of its share of the global batch and its gradient is
    divided by ``N`` before Keras sums them, so the update equals the one-device update.

    Example:
        >>> trainer = StyleTrainer(net, loss)                          # doctest: +SKIP
        >>> trainer.compile(learning_rate=1e-3)                        # doctest: +SKIP
        >>> trainer.fit(dataset, steps_per_epoch=1000)                 # doctest: +SKIP
    """

    def __init__(self, network, loss, label_offset=0, name="style_trainer", **kwargs):
        super().__init__(name=name, **kwargs)
        self.network = network
        self.perceptual_loss = loss
        self.label_offset = int(label_offset)
        self.conditional = is_conditional(network)
        if not self.conditional and loss.num_styles != 1:
            raise ConfigError(f"a single-style network trains on one style image, got "
                              f"{loss.num_styles}; use a pastiche network (mode 'cin')")

    def compile(self, optimizer=None, learning_rate=1e-3, jit_compile="auto", **kwargs):
        """Adam(``learning_rate``) unless ``optimizer`` is given; float16 networks get loss
        scaling; ``jit_compile`` goes through :func:`nst_tf.device.resolve_jit_compile`."""
        if optimizer is None:
            optimizer = keras.optimizers.Adam(learning_rate)
        policy = self.network.dtype_policy.name
        if policy == "mixed_float16" and not isinstance(optimizer, keras.optimizers.LossScaleOptimizer):
            optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
        kwargs.setdefault("auto_scale_loss", False)
        super().compile(optimizer=optimizer, jit_compile=resolve_jit_compile(jit_compile), **kwargs)

    def call(self, inputs, training=False):
        """Stylize ``(images, labels)``, or bare ``images`` in style 0."""
        images, labels = self._unpack(inputs)
        if self.conditional:
            return self.network([images, tf.cast(labels, tf.int32) + self.label_offset],
                                training=training)
        return self.network(images, training=training)

    def _unpack(self, batch):
        if isinstance(batch, (tuple, list)):
            images, labels = batch[0], batch[1]
        else:
            images, labels = batch, tf.zeros([tf.shape(batch)[0]], tf.int32)
        return tf.cast(images, tf.float32), tf.cast(labels, tf.int32)

    def compute_losses(self, images, labels, training=False):
        """``(total, parts)`` for content ``images`` and style ``labels``: the objective itself."""
        stylized = self((images, labels), training=training)
        stylized = stylized[:, :tf.shape(images)[1], :tf.shape(images)[2], :]
        return self.perceptual_loss(stylized, images, labels)

    def train_step(self, batch):
        images, labels = self._unpack(batch)
        variables = self.network.trainable_variables
        with tf.GradientTape() as tape:
            total, parts = self.compute_losses(images, labels, training=True)
            replicas = tf.distribute.get_strategy().num_replicas_in_sync
            scaled = self.optimizer.scale_loss(total / replicas)
        gradients = tape.gradient(scaled, variables)
        self.optimizer.apply_gradients(zip(gradients, variables))
        return {"loss": total, **parts}

    def test_step(self, batch):
        images, labels = self._unpack(batch)
        total, parts = self.compute_losses(images, labels)
        return {"loss": total, **parts}


# --- Fine-tuning ------------------------------------------------------------------------------------

def extend_styles(network, num_new_styles, init="identity"):
    """A labels-input copy of pastiche ``network`` with ``num_new_styles`` more styles.

    Conv kernels and the existing gamma / beta rows are copied; new rows start as gamma = 1,
    beta = 0 (``init="identity"``, Magenta's initialization) or as the mean of the existing rows
    (``init="mean"``). The new styles have labels ``N_old ... N_old + num_new_styles - 1``.
    """
    from nst_tf.layers import ConditionalInstanceNorm
    from nst_tf.networks import pastiche_config, pastiche_network

    if init not in ("identity", "mean"):
        raise ConfigError(f"init must be 'identity' or 'mean', got {init!r}")
    config = pastiche_config(network)
    old = config["num_styles"]
    extended = pastiche_network(old + int(num_new_styles), alpha=config["alpha"],
                                style_input="labels", name=network.name)
    for layer in network.layers:
        if not layer.weights:
            continue
        target = extended.get_layer(layer.name)
        if isinstance(layer, ConditionalInstanceNorm):
            for param, fill in ((layer.gamma, 1.0), (layer.beta, 0.0)):
                rows = np.asarray(param.numpy())
                extra = (np.repeat(rows.mean(0, keepdims=True), num_new_styles, 0) if init == "mean"
                         else np.full((num_new_styles, rows.shape[1]), fill, rows.dtype))
                getattr(target, "gamma" if param is layer.gamma else "beta").assign(
                    np.concatenate([rows, extra], 0))
        else:
            target.set_weights(layer.get_weights())
    return extended


def freeze_convolutions(network):
    """Make only the conditional instance norm layers (gamma / beta) trainable; returns them."""
    from nst_tf.layers import ConditionalInstanceNorm

    trainable = []
    for layer in network.layers:
        layer.trainable = isinstance(layer, ConditionalInstanceNorm)
        if layer.trainable:
            trainable.append(layer)
    return trainable


# --- Callbacks --------------------------------------------------------------------------------------

class CheckpointCallback(keras.callbacks.Callback):
    """Save step, network and optimizer state with ``tf.train.CheckpointManager``.

    Saves every ``save_every`` steps, at the end of training and when SIGINT (Ctrl-C) arrives
    during ``fit``: the first Ctrl-C asks the trainer to stop after the current step and saves; a
    second one interrupts at once. ``restore()`` (call it before ``fit``) loads the latest
    checkpoint and returns its step.

    Nothing is half-written: TensorFlow writes each checkpoint's data and index files under
    temporary names and renames them into place, and updates the ``checkpoint`` state file (the
    pointer to the latest one) atomically afterwards, so an interrupted save leaves the previous
    checkpoint as the latest.
    """

    def __init__(self, directory, trainer, save_every=1000, max_to_keep=3, handle_sigint=True):
        super().__init__()
        self.directory = os.fspath(directory)
        self.save_every = int(save_every) if save_every else 0
        self.handle_sigint = handle_sigint
        self.interrupted = False
        self._previous_handler = None
        if not trainer.optimizer.built:
            trainer.optimizer.build(trainer.network.trainable_variables)
        # Random-generator states (texture networks' noise) are not Keras weights: save them too,
        # so a resumed run draws the same noise as an uninterrupted one.
        rng = [v for v in trainer.network.variables if "seed_generator_state" in v.path]
        self.checkpoint = tf.train.Checkpoint(network=trainer.network, optimizer=trainer.optimizer,
                                              **({"rng": rng} if rng else {}))
        self.manager = tf.train.CheckpointManager(self.checkpoint, self.directory,
                                                  max_to_keep=max_to_keep, checkpoint_name="ckpt")
        self._trainer = trainer
        self._last_saved = None

    @property
    def step(self):
        """Optimizer steps taken (the checkpoint's step)."""
        return int(self._trainer.optimizer.iterations.numpy())

    def restore(self):
        """Restore the latest checkpoint in the directory, if any; return the step (0 if none)."""
        latest = self.manager.latest_checkpoint
        if latest is None:
            return 0
        try:
            self.checkpoint.restore(latest).assert_existing_objects_matched()
        except (AssertionError, ValueError, tf.errors.OpError) as exc:
            raise CheckpointError(f"cannot resume from {latest}: it does not fit this network / "
                                  f"optimizer ({str(exc).splitlines()[0]})") from None
        self._last_saved = self.step
        return self.step

    def save(self):
        """Save now (unless this step is already saved); returns the checkpoint path or None."""
        step = self.step
        if step == self._last_saved:
            return None
        path = self.manager.save(checkpoint_number=step)
        self._last_saved = step
        return path

    def _on_sigint(self, signum, frame):
        self.interrupted = True
        self.model.stop_training = True
        print(f"\nInterrupted: saving a checkpoint in {self.directory} after this step "
              "(Ctrl-C again to quit without saving)", flush=True)
        signal.signal(signal.SIGINT, self._previous_handler or signal.default_int_handler)

    def on_train_begin(self, logs=None):
        if self.handle_sigint and threading.current_thread() is threading.main_thread():
            self._previous_handler = signal.signal(signal.SIGINT, self._on_sigint)

    def on_train_batch_end(self, batch, logs=None):
        if self.save_every and self.step % self.save_every == 0:
            self.save()

    def on_train_end(self, logs=None):
        self.save()
        if self._previous_handler is not None:
            signal.signal(signal.SIGINT, self._previous_handler)
            self._previous_handler = None


class ThroughputCallback(keras.callbacks.Callback):
    """Adds ``images_per_sec`` (global batch / wall time, the first step excluded because it
    compiles) to the logs, so the progress bar and TensorBoard show it."""

    def __init__(self, batch_size):
        super().__init__()
        self.batch_size = int(batch_size)
        self._start = None
        self._steps = 0
        self.images_per_sec = None

    def on_train_batch_end(self, batch, logs=None):
        now = time.perf_counter()
        if self._start is None:
            self._start, self._steps = now, 0
            return
        self._steps += 1
        self.images_per_sec = self._steps * self.batch_size / max(now - self._start, 1e-9)
        if logs is not None:
            logs["images_per_sec"] = self.images_per_sec

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None and self.images_per_sec is not None:
            logs["images_per_sec"] = self.images_per_sec


def _plugin_metadata(plugin):
    from tensorflow.core.framework import summary_pb2

    metadata = summary_pb2.SummaryMetadata()
    metadata.plugin_data.plugin_name = plugin
    return metadata.SerializeToString()


def write_scalar(tag, value, step):
    """Write a TensorBoard scalar with the default summary writer (TensorBoard's "scalars"
    plugin layout: a float32 scalar tensor); works without the tensorboard package installed."""
    tf.summary.write(tag, tf.constant(value, tf.float32), step=step,
                     metadata=_plugin_metadata("scalars"))


def write_image(tag, image, step):
    """Write one float image ``[H, W, 3]`` in [0, 1] as a TensorBoard image (the "images" plugin
    layout: a string tensor ``[width, height, PNG bytes]``)."""
    image = tf.convert_to_tensor(image, tf.float32)
    png = tf.image.encode_png(tf.cast(tf.round(tf.clip_by_value(image, 0.0, 1.0) * 255), tf.uint8))
    shape = tf.shape(image)
    tensor = tf.stack([tf.as_string(shape[1]), tf.as_string(shape[0]), png])
    tf.summary.write(tag, tensor, step=step, metadata=_plugin_metadata("images"))


class SummaryCallback(keras.callbacks.Callback):
    """TensorBoard summaries every ``every`` steps: each loss term, ``images_per_sec``, the
    learning rate, and (every ``image_every`` steps and at the end) a grid of stylized validation
    images, one row per validation image and one column per style (at most ``max_styles``)."""

    def __init__(self, log_dir, trainer, validation_images=None, every=100, image_every=None,
                 max_styles=8):
        super().__init__()
        self.writer = tf.summary.create_file_writer(os.fspath(log_dir))
        self.trainer = trainer
        self.every = max(1, int(every))
        self.image_every = int(image_every or 10 * self.every)
        self.validation = (None if validation_images is None
                           else tf.convert_to_tensor(np.asarray(validation_images, np.float32)))
        self.styles = list(range(min(trainer.perceptual_loss.num_styles, max_styles)))

    def stylized_grid(self):
        """float32 ``[1, V*H, S*W, 3]``: validation image ``v`` in style ``s`` at row v, column s."""
        images = self.validation
        columns = []
        for style in self.styles:
            labels = tf.fill([tf.shape(images)[0]], style)
            out = self.trainer((images, labels), training=False)
            out = tf.cast(out[:, :images.shape[1], :images.shape[2], :], tf.float32)
            columns.append(tf.concat(tf.unstack(out), axis=0))        # [V*H, W, 3]
        return tf.concat(columns, axis=1)[None]

    def on_train_batch_end(self, batch, logs=None):
        step = int(self.trainer.optimizer.iterations.numpy())
        if step % self.every and step % self.image_every:
            return
        with self.writer.as_default(step=step):
            if step % self.every == 0:
                for name, value in (logs or {}).items():
                    write_scalar(f"loss/{name}" if name in ("loss", "content", "style", "tv",
                                                                   "diversity")
                                 else name, float(value), step)
                lr = self.trainer.optimizer.learning_rate
                write_scalar("learning_rate", float(keras.ops.convert_to_numpy(lr)), step)
            if self.validation is not None and step % self.image_every == 0:
                write_image("stylized", self.stylized_grid()[0], step)
        self.writer.flush()

    def on_train_end(self, logs=None):
        step = int(self.trainer.optimizer.iterations.numpy())
        if self.validation is not None and step % self.image_every:   # always end with a grid
            with self.writer.as_default(step=step):
                write_image("stylized", self.stylized_grid()[0], step)
        self.writer.flush()


# --- Pipeline ---------------------------------------------------------------------------------------

@contextlib.contextmanager
def dtype_policy(name):
    """Temporarily set Keras' global dtype policy (layers keep the policy they were built with)."""
    previous = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy(name or "float32")
    try:
        yield
    finally:
        keras.mixed_precision.set_global_policy(previous)


def make_strategy(name="default"):
    """``"default"`` (no distribution), ``"mirrored"`` (all visible GPUs, else the CPU devices) or
    ``"one_device"`` (the first GPU, else the CPU)."""
    if name in (None, "default"):
        return tf.distribute.get_strategy()
    if name == "mirrored":
        gpus = tf.config.list_logical_devices("GPU")
        devices = [d.name for d in (gpus or tf.config.list_logical_devices("CPU"))]
        return tf.distribute.MirroredStrategy(devices=devices)
    if name == "one_device":
        gpus = tf.config.list_logical_devices("GPU")
        return tf.distribute.OneDeviceStrategy(gpus[0].name if gpus else "/cpu:0")
    raise ConfigError(f"strategy must be one of {', '.join(STRATEGIES)}, got {name!r}")


def _check_config(mode, mixed_precision, strategy, batch_size, image_size, train_steps,
                  learning_rate, checkpoint, content_images=True):
    if mode not in MODES:
        raise ConfigError(f"mode must be one of {', '.join(MODES)}, got {mode!r}")
    if mixed_precision not in MIXED_PRECISION:
        raise ConfigError(f"mixed_precision must be mixed_float16, mixed_bfloat16 or None, "
                          f"got {mixed_precision!r}")
    if strategy not in STRATEGIES:
        raise ConfigError(f"strategy must be one of {', '.join(STRATEGIES)}, got {strategy!r}")
    for name, value, low in (("batch_size", batch_size, 1), ("image_size", image_size, 16),
                             ("train_steps", train_steps, 0)):
        if int(value) != value or value < low:
            raise ConfigError(f"{name} must be an integer >= {low}, got {value!r}")
    if not (learning_rate > 0 and math.isfinite(learning_rate)):
        raise ConfigError(f"learning_rate must be a positive number, got {learning_rate!r}")
    if mode == "finetune" and not checkpoint:
        raise ConfigError("mode 'finetune' needs --checkpoint (a pastiche checkpoint to extend)")
    if mode == "adain" and mixed_precision:
        raise ConfigError("mode 'adain' trains in float32; leave mixed_precision unset")
    if mode != "texture" and not content_images:
        raise ConfigError(f"mode {mode!r} needs content images (--content_images)")


def _write_or_check_config(train_dir, config):
    """Record the run's architecture in train_dir; a resumed run must use the same one."""
    path = os.path.join(train_dir, CONFIG_FILE)
    keys = ("mode", "num_styles", "label_offset", "alpha", "backbone", "network_options")
    if os.path.exists(path):
        with open(path) as f:
            saved = json.load(f)
        diff = {k: (saved.get(k), config[k]) for k in keys if saved.get(k) != config[k]}
        if diff:
            raise ConfigError(f"{train_dir} holds a run with a different setup "
                              + ", ".join(f"{k}: saved {a!r} vs now {b!r}" for k, (a, b) in diff.items())
                              + "; use another --train_dir")
    with atomic_write(path, mode="w") as f:
        json.dump(config, f, indent=1)


def build_network(mode, num_styles, checkpoint=None, alpha=1.0, new_style_init="identity",
                  network_options=None):
    """The network to train: ``johnson_network``, a labels-input ``pastiche_network`` with
    ``num_styles`` styles, (finetune) ``checkpoint``'s network extended by ``num_styles`` styles
    with its convolutions frozen, or (texture modes) a ``texture_network`` built with
    ``network_options``. Returns ``(network, label_offset)``."""
    from nst_tf.networks import johnson_network, pastiche_network

    if mode in TEXTURE_MODES:
        from nst_tf.networks import texture_network

        kind = "texture" if mode == "texture" else "stylize"
        try:
            return texture_network(mode=kind, **(network_options or {})), 0
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"texture network options {network_options}: {exc}") from None
    if network_options:
        raise ConfigError(f"network_options apply to the texture modes, not {mode!r}")
    if mode == "johnson":
        return johnson_network(alpha=alpha), 0
    if mode == "cin":
        return pastiche_network(num_styles, alpha=alpha, style_input="labels"), 0
    from magenta_compat import load_pastiche_network

    base = load_pastiche_network(checkpoint, style_input="labels")
    old = base.get_layer("contract_conv1_norm").num_styles
    network = extend_styles(base, num_styles, init=new_style_init)
    freeze_convolutions(network)
    return network, old


def validation_batch(content_images, image_size, count=4):
    """Up to ``count`` centre-cropped content images (sorted order) for TensorBoard grids."""
    ds = data.content_dataset(content_images, image_size=image_size, batch_size=1, shuffle=False,
                              repeat=False, crop_mode="center")
    images = [b[0].numpy() for b in ds.take(count)]
    return np.stack(images) if images else None


def mode_defaults(mode):
    """Defaults of :func:`train`'s ``None`` arguments for ``mode``: Magenta's for johnson / cin
    / finetune, the paper's for the texture modes (:func:`nst_tf.models.texture.family.training_defaults`)."""
    if mode in TEXTURE_MODES:
        from nst_tf.models.texture.family import training_defaults

        return training_defaults(mode)
    if mode == "adain":  # the encoder is the loss network; its loss has its own layer weights
        return {"learning_rate": 1e-4, "train_steps": 40000, "backbone": "vgg19",
                "pooling": "max", "content_weights": None, "style_weights": None,
                "lr_schedule": "constant"}
    return {"learning_rate": 1e-3, "train_steps": 40000, "backbone": "vgg16", "pooling": "avg",
            "content_weights": MAGENTA_CONTENT_WEIGHTS, "style_weights": MAGENTA_STYLE_WEIGHTS,
            "lr_schedule": "constant"}


def learning_rate_schedule(kind, learning_rate):
    """``"constant"`` (the float) or ``"ulyanov"`` (:class:`nst_tf.models.texture.family.UlyanovSchedule`)."""
    if kind == "constant":
        return learning_rate
    if kind == "ulyanov":
        from nst_tf.models.texture.family import UlyanovSchedule

        return UlyanovSchedule(learning_rate)
    raise ConfigError(f"lr_schedule must be 'constant' or 'ulyanov', got {kind!r}")


def train(content_images, style_images, train_dir, *, mode="cin", checkpoint=None, batch_size=16,
          image_size=256, style_size=None, learning_rate=None, train_steps=None,
          content_weights=None, style_weights=None, tv_weight=0.0, backbone=None,
          pooling=None, preprocessing="magenta", weights="imagenet", alpha=1.0,
          mixed_precision=None, strategy="default", jit_compile="auto", seed=0, save_every=1000,
          log_dir=None, summary_every=100, new_style_init="identity", verbose=1, callbacks=(),
          network_options=None, diversity_weight=0.0, diversity_layer="pixels",
          lr_schedule=None, encoder="normalised", init_decoder=None, lr_decay=None):
    """Train a style network from content images and style images; resumes from ``train_dir``.

    Args:
        content_images: glob pattern(s), folder(s) or TFRecords (:func:`nst_tf.data.content_dataset`);
            None for ``mode="texture"`` (noise only).
        style_images: style image paths / patterns; label ``i`` is the ``i``-th (sorted) image.
        train_dir: checkpoints (``ckpt-<step>``) and ``train_config.json``; an existing run there
            is resumed (same step, weights, optimizer state and data position).
        mode: ``"johnson"`` (one style, :func:`~nst_tf.networks.johnson_network`), ``"cin"`` (one
            pastiche network for all styles, a random style per example), ``"finetune"`` (add the
            styles to the pastiche ``checkpoint`` and train only their gamma / beta),
            ``"adain"`` (an AdaIN decoder for any style, :mod:`nst_tf.models.adain.recipe`: style
            images are a second shuffled image stream; ``encoder``, ``weights`` = the encoder's,
            ``init_decoder`` (a ``decoder.pth``), ``lr_decay``; it writes
            ``<train_dir>/adain.keras`` at the end), ``"texture"`` (Ulyanov et al.'s texture
            network, from noise alone) or ``"texture_stylize"`` (their stylization network).
        learning_rate, train_steps, backbone, pooling, content_weights, style_weights,
        lr_schedule: None takes the mode's default (:func:`mode_defaults`: Magenta's setting;
            for ``"adain"`` Adam 1e-4 decayed as ``lr / (1 + lr_decay·step)``, ``lr_decay``
            default 5e-5; for the texture modes the paper's: VGG-19, Gram loss on relu1_1 …
            relu5_1, Adam 0.1 with the ``"ulyanov"`` schedule, 2000 steps). ``lr_schedule``:
            ``"constant"`` or ``"ulyanov"`` (×0.7 every 200 steps after 800).
        content_weights, style_weights: ``{layer: weight}`` dicts or JSON strings; default
            Magenta's (content ``vgg_16/conv3``: 1, style ``vgg_16/conv1..4``: 1e-4).
        backbone, pooling, preprocessing, weights: the loss network
            (:class:`~nst_tf.features.FeatureExtractor`); default VGG-16 with average pooling and
            Magenta's preprocessing, ImageNet weights (``None`` for random, or a ``.h5`` path).
        mixed_precision: ``None``, ``"mixed_float16"`` or ``"mixed_bfloat16"`` for the trained
            network; the loss network and Gram matrices stay float32.
        strategy: ``"default"``, ``"mirrored"`` or ``"one_device"``; ``batch_size`` is global.
        seed: seeds the network initialization (``keras.utils.set_random_seed``, which also
            seeds Python's and NumPy's generators), the file order, the crops and the labels.
        save_every: checkpoint every this many steps (and at the end, and on Ctrl-C).
        log_dir: TensorBoard folder (default ``<train_dir>/logs``; ``""`` disables summaries).
        network_options: texture modes: arguments of :func:`nst_tf.networks.texture_network`
            (``num_scales``, ``channels``, ``norm``, ``padding``, ...).
        diversity_weight, diversity_layer: the 2017 diversity term (see :class:`PerceptualLoss`);
            ``diversity_layer`` is ``"pixels"`` or a loss-network layer name.

    Returns:
        The trained network (labels input for ``cin`` / ``finetune``), with attributes
        ``train_history`` (Keras history dict), ``skipped_images`` (unreadable content files),
        ``final_step`` and ``interrupted`` (stopped by Ctrl-C).

    Raises:
        ConfigError, DatasetError, ImageError, CheckpointError, WeightsUnavailableError.
    """
    from nst_tf.features import FeatureExtractor

    defaults = mode_defaults(mode) if mode in MODES else mode_defaults("cin")
    learning_rate = defaults["learning_rate"] if learning_rate is None else learning_rate
    train_steps = defaults["train_steps"] if train_steps is None else train_steps
    backbone = backbone or defaults["backbone"]
    pooling = pooling or defaults["pooling"]
    lr_schedule = lr_schedule or defaults["lr_schedule"]
    _check_config(mode, mixed_precision, strategy, batch_size, image_size, train_steps,
                  learning_rate, checkpoint, content_images)
    adain = mode == "adain"
    styles = [] if adain else data.style_images(style_images, style_size=style_size)
    if mode in ("johnson", *TEXTURE_MODES) and len(styles) != 1:
        raise ConfigError(f"mode {mode!r} trains one style, got {len(styles)} style images; "
                          "use --mode cin for several")
    if diversity_weight and batch_size < 2:
        raise ConfigError(f"the diversity term compares the samples of a batch: batch_size must "
                          f"be >= 2, got {batch_size}")
    if not adain:
        content_weights = defaults["content_weights"] if content_weights is None \
            else content_weights
        style_weights = defaults["style_weights"] if style_weights is None else style_weights
        content_weights = parse_layer_weights(content_weights, backbone, "content weights")
        style_weights = parse_layer_weights(style_weights, backbone, "style weights")
    diversity_layers = ([] if diversity_layer in (None, "pixels")
                        else [resolve_loss_layer(backbone, diversity_layer)])
    os.makedirs(train_dir, exist_ok=True)
    keras.utils.set_random_seed(seed)
    dist = make_strategy(strategy)
    with dist.scope():
        trainer_class, offset = StyleTrainer, 0
        rate = learning_rate_schedule(lr_schedule, learning_rate)
        if adain:  # the encoder is the loss network; styles are a second image stream
            from nst_tf.models.adain import recipe as adain_training

            network, loss = adain_training.build(
                encoder, weights, alpha, init_decoder, content_weights, style_weights,
                validation_batch(style_images, image_size, count=4), seed)
            trainer_class = adain_training.AdainTrainer
            rate = adain_training.learning_rate(
                learning_rate, adain_training.ADAIN_LR_DECAY if lr_decay is None else lr_decay)
            backbone = f"adain-{encoder}"
        else:
            with dtype_policy("float32"):
                extractor = FeatureExtractor(
                    backbone, list(dict.fromkeys([*content_weights, *style_weights,
                                                  *diversity_layers])),
                    weights=weights, pooling=pooling, preprocessing=preprocessing, seed=seed)
                loss = PerceptualLoss(extractor, styles, content_weights, style_weights,
                                      tv_weight, diversity_weight, diversity_layer)
            with dtype_policy(mixed_precision):
                network, offset = build_network(mode, len(styles), checkpoint, alpha,
                                                new_style_init, network_options)
        _write_or_check_config(train_dir, {
            "mode": mode, "num_styles": len(styles), "label_offset": offset, "alpha": alpha,
            "backbone": backbone, "style_images": [str(s) for s in np.atleast_1d(style_images)],
            "checkpoint": checkpoint and os.fspath(checkpoint),
            "network_options": network_options or {}})
        trainer = trainer_class(network, loss, label_offset=offset)
        trainer.compile(learning_rate=rate, jit_compile=jit_compile)
        saver = CheckpointCallback(train_dir, trainer, save_every=save_every)
        step = saver.restore()

    remaining = int(train_steps) - step
    network.train_history, network.skipped_images, network.final_step = {}, 0, step
    network.interrupted = False
    if remaining <= 0:
        if verbose:
            print(f"{train_dir} is already at step {step} >= train_steps={train_steps}")
        return network
    if mode == "texture":   # the network draws its own noise: its input is an all-zero canvas
        from nst_tf.models.texture.family import canvas_dataset

        dataset, counter = canvas_dataset(batch_size, image_size), data.DecodeCounter()
    else:
        dataset = data.content_dataset(content_images, image_size=image_size,
                                       batch_size=batch_size, seed=seed, start_batch=step,
                                       resize_short_side=2 * image_size if adain else None)
        counter = dataset.decode_counter
    if adain:
        dataset = adain_training.style_batches(dataset, style_images, image_size, batch_size,
                                               seed=seed, start_batch=step)
    elif is_conditional(network):
        dataset = data.with_style_labels(dataset, len(styles), seed=seed, start_batch=step)
    all_callbacks = [saver, ThroughputCallback(batch_size)]
    log_dir = os.path.join(train_dir, "logs") if log_dir is None else log_dir
    if log_dir:
        validation = (np.zeros((4, image_size, image_size, 3), np.float32) if mode == "texture"
                      else validation_batch(content_images, image_size, count=min(4, batch_size)))
        all_callbacks.append(SummaryCallback(log_dir, trainer, validation, every=summary_every))
    all_callbacks.extend(callbacks)
    if verbose and step:
        print(f"Resuming {train_dir} from step {step}")
    history = trainer.fit(dataset, epochs=1, steps_per_epoch=remaining, callbacks=all_callbacks,
                          shuffle=False, verbose=verbose)
    network.train_history = history.history
    network.skipped_images = counter.skipped
    network.final_step = saver.step
    network.interrupted = saver.interrupted
    if adain and not saver.interrupted:
        network.keras_path = adain_training.save_network(network, train_dir)
    if verbose and counter.skipped:
        print(f"Skipped {counter.skipped} unreadable content image(s) of {counter.attempted} read")
    return network


# --- Export -----------------------------------------------------------------------------------------

def export_magenta_checkpoint(network, path, version="V1", global_step=None):
    """Write a trained pastiche network as a Magenta checkpoint (see
    :func:`magenta_compat.write_checkpoint`): Magenta's ``image_stylization_transform`` loads it
    with ``--num_styles`` equal to the network's. Returns the path written."""
    from magenta_compat import write_checkpoint
    from nst_tf.networks import pastiche_config

    try:
        pastiche_config(network)
    except ValueError:
        raise ConfigError(f"only pastiche (CIN) networks have a Magenta checkpoint format; "
                          f"{network.name!r} is not one (export it with nst_tf.export.export_saved_model)") from None
    return write_checkpoint(network, path, version=version, global_step=global_step)
