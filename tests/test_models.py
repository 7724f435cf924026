"""The models: the seed's layer structure, true parameter counts, the transfer backbones (weights, preprocessing,
fine-tuning), per-image standardisation, saving with metadata."""

import numpy as np
import pytest
from keras import layers

from brain_tumor.errors import UserError
from brain_tumor.models import (
    MODEL_SPECS,
    BackbonePreprocess,
    PerImageStandardization,
    ResNet50Preprocess,
    build_model,
    count_params,
    unfreeze_top,
    load_model,
    read_metadata,
    save_model,
)


def conv_layers(model):
    return [layer for layer in model.layers if isinstance(layer, layers.Conv2D)]


@pytest.mark.parametrize("name, filters, kernel, dropout", [
    ("cnn_a", [32, 64, 128], 3, 0.3),
    ("cnn_b", [16, 32, 64, 128], 3, 0.5),
    ("cnn_c", [32, 64, 128], 5, 0.4),
])
def test_custom_cnn_structure_is_the_seeds(name, filters, kernel, dropout):
    model = build_model(name, 64, 4)
    convs = conv_layers(model)
    assert [c.filters for c in convs] == filters
    assert all(c.kernel_size == (kernel, kernel) and c.padding == "same" for c in convs)
    kinds = [type(layer).__name__ for layer in model.layers]
    assert kinds == (["InputLayer", "Rescaling"] + ["Conv2D", "FusedBatchNormalization", "MaxPooling2D"] * len(filters)
                     + ["Flatten", "Dense", "Dropout", "Dense"])
    assert [d.units for d in model.layers if isinstance(d, layers.Dense)] == [128, 4]
    assert next(d for d in model.layers if isinstance(d, layers.Dropout)).rate == dropout
    assert model.output_shape == (None, 4)


def expected_cnn_params(filters, kernel, size, classes=4):
    total, channels = 0, 3
    for f in filters:
        total += kernel * kernel * channels * f + f + 4 * f  # conv weights + bias, BatchNorm's 4 per channel
        channels, size = f, size // 2
    return total + (size * size * channels) * 128 + 128 + 128 * classes + classes


@pytest.mark.parametrize("name", ["cnn_a", "cnn_b", "cnn_c"])
def test_true_parameter_counts_at_224(name):
    spec = MODEL_SPECS[name]
    params = count_params(build_model(name, 224, 4))
    assert params["total"] == expected_cnn_params(spec.filters, spec.kernel_size, 224)
    if name == "cnn_a":
        assert params["total"] == 12_939_844  # measured in the seed notebook (which claimed ~1.2M)


def test_resnet50_frozen_base_and_seed_head():
    model = build_model("resnet50", 32, 4, weights=None)
    assert isinstance(model.layers[1], BackbonePreprocess) and model.layers[1].module == "resnet50"
    base = model.layers[2]
    assert base.name == "resnet50" and not base.trainable
    head = [type(layer).__name__ for layer in model.layers[3:]]
    assert head == ["GlobalAveragePooling2D", "Dense", "BatchNormalization", "Dropout", "Dense", "Dropout", "Dense"]
    assert [d.units for d in model.layers if isinstance(d, layers.Dense)] == [256, 128, 4]
    assert [d.rate for d in model.layers if isinstance(d, layers.Dropout)] == [0.5, 0.3]
    params = count_params(model)
    # trainable: the head only (2048·256+256, BN γβ 512, 256·128+128, 128·4+4)
    assert params["trainable"] == 524_544 + 512 + 32_896 + 516
    assert params["total"] == 23_587_712 + 524_544 + 1024 + 32_896 + 516


def test_resnet50_preprocessing_is_its_own():
    pixels = np.full((1, 2, 2, 3), [10.0, 20.0, 30.0], np.float32)
    out = np.asarray(BackbonePreprocess("resnet50")(pixels))
    assert np.allclose(out[0, 0, 0], [30 - 103.939, 20 - 116.779, 10 - 123.68], atol=1e-3)  # BGR, ImageNet mean
    assert np.allclose(np.asarray(ResNet50Preprocess()(pixels)), out)  # models saved by version 0.1 still load


def test_resnet50_loads_a_local_weights_file(tmp_path):
    import keras
    source = keras.applications.ResNet50(include_top=False, weights=None, input_shape=(32, 32, 3))
    path = tmp_path / "resnet50_notop.weights.h5"
    source.save_weights(path)
    model = build_model("resnet50", 32, 4, weights=str(path))
    loaded = model.get_layer("resnet50").get_weights()
    assert all(np.array_equal(a, b) for a, b in zip(loaded, source.get_weights()))


def test_a_weights_folder_gives_each_backbone_its_keras_file(tmp_path):
    import keras

    from brain_tumor.models import weights_source
    from brain_tumor.model_specs import get_spec

    (tmp_path / "efficientnetv2-b0_notop.h5").write_bytes(b"")
    assert weights_source(get_spec("efficientnetv2b0"), str(tmp_path)) == str(tmp_path / "efficientnetv2-b0_notop.h5")
    assert weights_source(get_spec("resnet50"), "imagenet") == "imagenet"
    source = keras.applications.EfficientNetV2B0(include_top=False, weights=None, input_shape=(32, 32, 3))
    source.save_weights(tmp_path / "b0.weights.h5")
    model = build_model("efficientnetv2b0", 32, 4, weights=str(tmp_path / "b0.weights.h5"))
    assert all(np.array_equal(a, b) for a, b in zip(model.layers[1].get_weights(), source.get_weights()))
    assert model.layers[1].name.startswith("efficientnetv2") and not model.layers[1].trainable


def test_missing_weights_are_a_clear_error(tmp_path):
    with pytest.raises(UserError, match="ResNet50 weights not found: .*missing.h5"):
        build_model("resnet50", 32, 4, weights=str(tmp_path / "missing.h5"))
    with pytest.raises(UserError, match="efficientnetv2-b0_notop.h5"):
        build_model("efficientnetv2b0", 32, 4, weights=str(tmp_path))  # a folder without the file


def test_fine_tuning_opens_the_top_of_the_backbone_but_not_its_batchnorm():
    model = build_model("resnet50", 32, 4, weights=None)
    before = count_params(model)["trainable"]
    opened = unfreeze_top(model, 12)
    base = model.layers[2]
    trainable = [layer for layer in base.layers if layer.trainable]
    assert trainable and all(base.layers.index(layer) >= len(base.layers) - 12 for layer in trainable)
    assert not any(isinstance(layer, layers.BatchNormalization) for layer in trainable)
    assert opened == sum(1 for layer in trainable if layer.weights) > 0
    assert count_params(model)["trainable"] > before


def test_per_image_standardisation_gives_mean_0_and_sd_1():
    pixels = np.random.default_rng(0).uniform(0, 255, (2, 8, 8, 3)).astype(np.float32)
    pixels[1] = pixels[1] * 0.2 + 30  # another scanner's range
    out = np.asarray(PerImageStandardization()(pixels))
    assert np.allclose(out.mean(axis=(1, 2, 3)), 0, atol=1e-5) and np.allclose(out.std(axis=(1, 2, 3)), 1, atol=1e-4)
    assert np.isfinite(np.asarray(PerImageStandardization()(np.zeros((1, 4, 4, 3))))).all()  # a blank image
    model = build_model("cnn_a", 32, 4, normalize=True)
    assert isinstance(model.layers[2], PerImageStandardization)


def test_unknown_model_is_a_clear_error():
    with pytest.raises(UserError, match="Unknown model 'vgg16'"):
        build_model("vgg16")


def test_saved_model_carries_its_metadata_and_predicts_the_same(tmp_path):
    model = build_model("cnn_b", 32, 4)
    metadata = {"model_name": "cnn_b", "class_names": ["a", "b", "c", "d"], "image_size": 32}
    path = save_model(model, tmp_path / "model.keras", metadata)
    loaded, loaded_metadata = load_model(path)
    assert loaded_metadata == metadata
    pixels = np.random.default_rng(0).uniform(0, 255, (3, 32, 32, 3)).astype(np.float32)
    assert np.allclose(model.predict(pixels, verbose=0), loaded.predict(pixels, verbose=0), atol=1e-6)


def test_a_foreign_keras_file_is_refused(tmp_path):
    path = tmp_path / "other.keras"
    build_model("cnn_b", 32, 4).save(path)
    with pytest.raises(UserError, match="not a model saved by this project"):
        read_metadata(path)


@pytest.mark.parametrize("training", [True, False])
def test_the_fused_batch_norm_computes_what_keras_batch_norm_does(training):
    """Same weights, same input: the same outputs, gradients and moving statistics as Keras' BatchNormalization,
    through TensorFlow's one fused kernel each way (in the traced graph: FusedBatchNormV3, no moments)."""
    import numpy as np
    import tensorflow as tf
    from keras import layers

    from brain_tumor.models import BN_MOMENTUM, FusedBatchNormalization

    x = tf.constant(np.random.default_rng(0).normal(2.0, 3.0, (8, 6, 6, 5)).astype("float32"))
    ours, theirs = FusedBatchNormalization(momentum=BN_MOMENTUM), layers.BatchNormalization(momentum=BN_MOMENTUM)
    for layer in (ours, theirs):
        layer.build(x.shape)
    rng = np.random.default_rng(1)
    weights = [rng.normal(1, 0.2, 5), rng.normal(0, 0.2, 5), rng.normal(0, 1, 5), rng.uniform(0.5, 2, 5)]
    for layer in (ours, theirs):
        layer.set_weights([w.astype("float32") for w in weights])
    results = {}
    for name, layer in (("ours", ours), ("theirs", theirs)):
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = layer(x, training=training)
            loss = tf.reduce_sum(y * tf.range(1.0, 6.0))
        grads = tape.gradient(loss, [x, layer.gamma, layer.beta])
        results[name] = [y, *grads, layer.moving_mean, layer.moving_variance]
    for a, b in zip(results["ours"], results["theirs"]):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=2e-3, atol=2e-4)
    graph = tf.function(lambda t: ours(t, training=training)).get_concrete_function(x).graph
    kinds = {op.type for op in graph.get_operations()}
    assert "FusedBatchNormV3" in kinds and "Mean" not in kinds, kinds


def test_the_custom_cnns_normalise_with_the_fused_kernel_and_reload_with_it(tmp_path):
    import numpy as np

    from brain_tumor.models import FusedBatchNormalization, build_model, load_model, save_model

    model = build_model("cnn_b", 32, 4, None)
    assert sum(isinstance(layer, FusedBatchNormalization) for layer in model.layers) == 4
    x = np.random.default_rng(0).uniform(0, 255, (2, 32, 32, 3)).astype("float32")
    loaded, _ = load_model(save_model(model, tmp_path / "m.keras", {"class_names": list("abcd"), "image_size": 32}))
    assert sum(isinstance(layer, FusedBatchNormalization) for layer in loaded.layers) == 4
    np.testing.assert_allclose(loaded.predict_on_batch(x), model.predict_on_batch(x), atol=1e-6)
