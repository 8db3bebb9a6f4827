"""The model zoo against the reference code: names, parameter counts, state-dict keys and
shapes, feature lists, pre-activations, classifier swap, checkpoint loading and refusals.

Shape checks build every model on the meta device (no memory, no arithmetic); checks
that need real numbers run one model per family on a 2-image batch.
"""
import functools
import json
from pathlib import Path

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

import models
import util
from models import build_model, model_dict, state_dict_shapes
from models.shufflenetv2 import channel_shuffle

REFERENCE_KEYS = json.loads((Path(models.__file__).parent / "reference_state_dict_keys.json").read_text())

# SPEC section 3, measured on the reference with num_classes=100:
# name -> (parameters, len(feats), feats[-1] dim)
SPEC_TABLE = {
    "resnet8": (83_892, 5, 64), "resnet14": (181_108, 5, 64), "resnet20": (278_324, 5, 64),
    "resnet32": (472_756, 5, 64), "resnet44": (667_188, 5, 64), "resnet56": (861_620, 5, 64),
    "resnet110": (1_736_564, 5, 64), "resnet8x4": (1_233_540, 5, 256), "resnet32x4": (7_433_860, 5, 256),
    "ResNet18": (11_220_132, 6, 512), "ResNet34": (21_328_292, 6, 512), "ResNet50": (23_705_252, 6, 2048),
    "ResNet101": (42_697_380, 6, 2048), "ResNet152": (58_341_028, 6, 2048),
    "wrn_16_1": (180_916, 5, 64), "wrn_16_2": (703_284, 5, 128), "wrn_16_4": (2_772_020, 5, 256),
    "wrn_16_10": (17_174_324, 5, 640), "wrn_22_4": (4_322_100, 5, 256), "wrn_28_2": (1_479_220, 5, 128),
    "wrn_28_4": (5_872_180, 5, 256), "wrn_28_10": (36_536_884, 5, 640), "wrn_34_4": (7_422_260, 5, 256),
    "wrn_40_1": (569_780, 5, 64), "wrn_40_2": (2_255_156, 5, 128), "wrn_40_4": (8_972_340, 5, 256),
    "wrn_46_4": (10_522_420, 5, 256), "wrn_52_4": (12_072_500, 5, 256), "wrn_64_4": (15_172_660, 5, 256),
    "vgg8": (3_965_028, 6, 512), "vgg11": (9_277_284, 6, 512), "vgg13": (9_462_180, 6, 512),
    "vgg16": (14_774_436, 6, 512), "vgg19": (20_086_692, 6, 512),
    "MobileNetV2": (812_836, 6, 1280), "ShuffleV1": (949_258, 5, 960), "ShuffleV2": (1_355_528, 5, 1024),
    "resnext32_16x4d": (1_112_004, 5, 512), "resnext32_8x8d": (1_172_484, 5, 512),
    "resnext32_4x16d": (1_293_444, 5, 512),
}
ALL_NAMES = sorted(SPEC_TABLE)

# Models whose pooled vector is the plain average of the last stage output (no head in between)
# and whose stage outputs are ReLU(pre-activation).
PLAIN_HEAD = ["resnet8", "ResNet18", "ResNet50", "vgg8", "ShuffleV1", "resnext32_16x4d"]
ONE_PER_FAMILY = PLAIN_HEAD + ["wrn_16_1", "MobileNetV2", "ShuffleV2"]


@functools.lru_cache(maxsize=None)
def meta_model(name):
    with torch.device("meta"):
        return model_dict[name](100)


def real_model(name, num_classes=100, seed=0):
    torch.manual_seed(seed)
    return model_dict[name](num_classes).eval()


def images(count=2, seed=0):
    return torch.randn(count, 3, 32, 32, generator=torch.Generator().manual_seed(seed))


def test_registry_holds_exactly_the_reference_names():
    assert sorted(model_dict) == sorted(REFERENCE_KEYS) == ALL_NAMES


@pytest.mark.parametrize("name", ALL_NAMES)
def test_parameter_count_matches_spec(name):
    assert sum(p.numel() for p in meta_model(name).parameters()) == SPEC_TABLE[name][0]


@pytest.mark.parametrize("name", ALL_NAMES)
def test_state_dict_keys_in_order_and_shapes_match_reference(name):
    assert state_dict_shapes(meta_model(name)) == REFERENCE_KEYS[name]


@pytest.mark.parametrize("name", ALL_NAMES)
def test_feature_list_length_and_pooled_dim(name):
    _, feat_count, feat_dim = SPEC_TABLE[name]
    model = meta_model(name)
    assert model.feat_dim == feat_dim and model.arch == name
    with torch.device("meta"):
        feats, logits = model(torch.empty(2, 3, 32, 32), is_feat=True)
    assert len(feats) == feat_count
    assert feats[-1].shape == (2, feat_dim)
    assert logits.shape == (2, 100)
    assert all(f.dim() == 4 and f.shape[0] == 2 for f in feats[:-1])


@pytest.mark.parametrize("name", ONE_PER_FAMILY)
def test_logits_are_the_classifier_applied_to_the_pooled_feature(name):
    model, x = real_model(name), images()
    with torch.no_grad():
        feats, logits = model(x, is_feat=True)
        assert torch.allclose(model(x), logits, atol=1e-5)
        assert torch.allclose(model.get_classifier()(feats[-1]), logits, atol=1e-5)
    if name in PLAIN_HEAD:
        assert torch.allclose(feats[-1], feats[-2].mean(dim=(2, 3)), atol=1e-5)


@pytest.mark.parametrize("name", PLAIN_HEAD)
def test_preact_stage_outputs_are_taken_before_the_final_relu(name):
    model, x = real_model(name), images()
    with torch.no_grad():
        feats, _ = model(x, is_feat=True)
        pre_feats, _ = model(x, is_feat=True, preact=True)
    assert torch.equal(pre_feats[0], feats[0]) and torch.equal(pre_feats[-1], feats[-1])
    for pre, post in zip(pre_feats[1:-1], feats[1:-1]):
        assert (pre < 0).any() and not torch.equal(pre, post)
        assert torch.allclose(F.relu(pre), post, atol=1e-6)


def test_shufflev2_preact_is_the_unshuffled_concat_before_the_relu():
    model, x = real_model("ShuffleV2"), images()
    with torch.no_grad():
        feats, _ = model(x, is_feat=True)
        pre_feats, _ = model(x, is_feat=True, preact=True)
    for pre, post in zip(pre_feats[1:-1], feats[1:-1]):
        assert (pre < 0).any()
        assert torch.allclose(channel_shuffle(F.relu(pre)), post, atol=1e-6)


def test_wrn_preact_is_the_next_batchnorm_and_leaves_running_stats_alone():
    model, x = real_model("wrn_16_1"), images()
    with torch.no_grad():
        feats, _ = model(x, is_feat=True)
        pre_feats, _ = model(x, is_feat=True, preact=True)
        next_bns = (model.block2.layer[0].bn1, model.block3.layer[0].bn1, model.bn1)
        for bn, pre, post in zip(next_bns, pre_feats[1:-1], feats[1:-1]):
            assert torch.allclose(pre, bn(post), atol=1e-6)
    # In training mode a preact forward must update BatchNorm exactly as a plain one does.
    plain, with_preact = real_model("wrn_16_1").train(), real_model("wrn_16_1").train()
    plain(x, is_feat=True)
    with_preact(x, is_feat=True, preact=True)
    for (key, a), b in zip(plain.state_dict().items(), with_preact.state_dict().values()):
        assert torch.equal(a, b), key


def test_mobilenetv2_ignores_preact_like_the_reference():
    model, x = real_model("MobileNetV2"), images()
    with torch.no_grad():
        feats, _ = model(x, is_feat=True)
        pre_feats, _ = model(x, is_feat=True, preact=True)
    assert all(torch.equal(a, b) for a, b in zip(feats, pre_feats))


@pytest.mark.parametrize("name", ["resnet8", "ShuffleV1", "vgg8", "MobileNetV2"])
def test_set_classifier_replaces_the_final_layer(name):
    model, x = real_model(name), images()
    probe = nn.Linear(model.feat_dim, 10)
    model.set_classifier(probe)
    assert model.get_classifier() is probe
    with torch.no_grad():
        feats, logits = model(x, is_feat=True)
    assert logits.shape == (2, 10) and torch.allclose(logits, probe(feats[-1]), atol=1e-5)
    classifier_keys = [key for key, shape in state_dict_shapes(model) if shape == [10, model.feat_dim]]
    assert classifier_keys == [model.classifier_path + ".weight"]
    with pytest.raises(ValueError):
        model.set_classifier(nn.Linear(model.feat_dim + 1, 10))


def trained_resnet8(num_classes=100):
    """resnet8 whose BatchNorm running statistics moved away from their initial values,
    so that a load that skipped buffers would give different eval logits."""
    model = real_model("resnet8", num_classes, seed=0).train()
    with torch.no_grad():
        model(images(8, seed=1) * 3 + 1)
    return model.eval()


def test_dataparallel_checkpoint_loads_and_gives_identical_logits(tmp_path):
    source, x = trained_resnet8(), images()
    path = tmp_path / "ckpt_epoch_2.pth"
    torch.save({"epoch": 2, "model": {"module." + k: v for k, v in source.state_dict().items()}}, path)
    target = real_model("resnet8", seed=1)
    with torch.no_grad():
        assert not torch.allclose(target(x), source(x))
        assert target.load_model(str(path)) is target
        assert torch.equal(target(x), source(x))


def test_raw_state_dict_loads(tmp_path):
    source, x = trained_resnet8(), images()
    target = real_model("resnet8", seed=1).load_model(source.state_dict())
    path = tmp_path / "raw.pth"
    torch.save(source.state_dict(), path)
    from_file = real_model("resnet8", seed=2).load_model(path)
    with torch.no_grad():
        assert torch.equal(target(x), source(x)) and torch.equal(from_file(x), source(x))


def test_checkpoint_of_another_architecture_is_refused_naming_keys(tmp_path):
    path = tmp_path / "ckpt_epoch_4.pth"
    torch.save({"epoch": 4, "model": real_model("wrn_16_1").state_dict()}, path)
    with pytest.raises(util.UserError) as refused:
        real_model("resnet8").load_model(path)
    message = str(refused.value)
    assert f"checkpoint {path} does not fit resnet8" in message
    assert "missing layer1.0.conv1.weight" in message
    assert "unexpected block1.layer.0.bn1.weight" in message
    assert "bn1.weight [64] (model [16])" in message
    assert "\n" not in message


def test_checkpoint_with_another_class_count_is_refused():
    with pytest.raises(util.UserError, match=r"fc\.weight \[10, 64\] \(model \[100, 64\]\)"):
        real_model("resnet8", 100).load_model(real_model("resnet8", 10).state_dict())


def test_file_without_weights_is_refused(tmp_path):
    path = tmp_path / "ckpt_epoch_6.pth"
    torch.save({"epoch": 6, "accuracy": 0.5}, path)
    with pytest.raises(util.UserError, match=rf"checkpoint {path} holds neither a state dict nor .*'model'"):
        real_model("resnet8").load_model(path)


def test_unknown_model_name_is_refused_with_the_known_names():
    with pytest.raises(util.UserError) as refused:
        build_model("resnet9", 100)
    assert "'resnet9'" in str(refused.value)
    assert all(name in str(refused.value) for name in ALL_NAMES)


def test_build_model_gives_the_registered_architecture():
    model = build_model("wrn_40_2", 10)
    assert isinstance(model, models.ZooModel) and model.arch == "wrn_40_2"
    assert model.get_classifier().out_features == 10
