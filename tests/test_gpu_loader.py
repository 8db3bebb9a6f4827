"""DeviceLoader and ContrastSampler: the device-resident path means the same as the PIL path."""
import numpy as np
import pytest
import torch
from PIL import Image
from torchvision import transforms

from dataset.gpu import ContrastSampler, DeviceLoader
from tests.test_dataset import check_contrast_rows

MEAN, STD = (0.5071, 0.4867, 0.4408), (0.2675, 0.2565, 0.2761)
DEVICES = ["cpu", pytest.param("cuda", marks=pytest.mark.skipif(not torch.cuda.is_available(),
                                                                  reason="no CUDA device on this machine"))]


def random_images(count, seed=0):
    return np.random.default_rng(seed).integers(0, 256, size=(count, 32, 32, 3), dtype=np.uint8)


def torchvision_normalised(image):
    return transforms.Compose([transforms.ToTensor(), transforms.Normalize(MEAN, STD)])(Image.fromarray(image))


def reference_windows(image):
    """All 9x9x2 crop+flip outcomes of torchvision's RandomCrop(32, padding=4) + flip, normalised."""
    # ToTensor+Normalize is per pixel, so normalising the padded image once and slicing it is the same.
    padded = torchvision_normalised(np.pad(image, ((4, 4), (4, 4), (0, 0))))
    windows = {}
    for top in range(9):
        for left in range(9):
            crop = padded[:, top:top + 32, left:left + 32]
            windows[top, left, False], windows[top, left, True] = crop, crop.flip(2)
    return windows


@pytest.mark.parametrize("device", DEVICES)
def test_eval_batches_match_torchvision_normalisation(device):
    images, labels = random_images(10), np.arange(10) % 3
    loader = DeviceLoader(images, labels, 4, MEAN, STD, device, train=False)
    batches = list(loader)
    assert len(loader) == 3 and [len(img) for img, _ in batches] == [4, 4, 2]
    img = torch.cat([img for img, _ in batches]).cpu()
    assert img.dtype == torch.float32 and img.shape == (10, 3, 32, 32)
    expected = torch.stack([torchvision_normalised(image) for image in images])
    torch.testing.assert_close(img, expected, atol=1e-6, rtol=0)
    assert torch.cat([target for _, target in batches]).tolist() == labels.tolist()


def test_train_crops_are_shifted_windows_of_the_padded_image_and_flips_mirror():
    images = random_images(16, seed=1)  # random pixels: exactly one window matches each output
    loader = DeviceLoader(images, np.zeros(16), 8, MEAN, STD, "cpu", train=True, with_index=True,
                          generator=torch.Generator().manual_seed(1))
    outcomes = []
    for img, _, index in loader:
        for sample, source in zip(img, index.tolist()):
            matches = [key for key, window in reference_windows(images[source]).items()
                       if torch.allclose(sample, window, atol=1e-6, rtol=0)]
            assert len(matches) == 1, f"sample {source} is no crop+flip of its image"
            outcomes.append(matches[0])
    assert len(outcomes) == 16 and 0 < sum(flip for _, _, flip in outcomes) < 16


def test_crop_offsets_and_flips_are_uniform_over_all_outcomes():
    grid_rows, grid_cols = np.mgrid[1:33, 1:33]  # pixel values name their own row/column; padding reads 0
    image = np.stack([grid_rows, grid_cols, np.full((32, 32), 255)], axis=-1).astype(np.uint8)
    count = 2000
    loader = DeviceLoader(np.repeat(image[None], count, axis=0), np.zeros(count), count, (0, 0, 0), (1, 1, 1),
                          "cpu", generator=torch.Generator().manual_seed(2))
    pixels = (next(iter(loader))[0] * 255).round().long().numpy()
    # Output pixel (16, 16) always comes from the image: original row = top + 12, column = left + 12
    # unflipped (columns increase to the right) or left + 11 flipped (they decrease).
    flips = pixels[:, 1, 16, 17] < pixels[:, 1, 16, 16]
    tops = pixels[:, 0, 16, 16] - 1 - 12
    lefts = pixels[:, 1, 16, 16] - 1 - np.where(flips, 11, 12)
    padded = np.pad(image, ((4, 4), (4, 4), (0, 0))).transpose(2, 0, 1)
    outcomes = np.zeros((9, 9, 2), dtype=int)
    for sample, top, left, flip in zip(pixels, tops, lefts, flips):
        window = padded[:, top:top + 32, left:left + 32]
        np.testing.assert_array_equal(sample, window[:, :, ::-1] if flip else window)
        outcomes[top, left, int(flip)] += 1
    assert outcomes.sum() == count and outcomes.min() >= 3  # all 162 outcomes, ~12 each
    assert abs(outcomes[..., 1].sum() - count / 2) < 150


def test_every_index_once_per_epoch_last_batch_kept_and_orders_differ():
    labels = np.arange(23) % 4
    loader = DeviceLoader(random_images(23), labels, 5, MEAN, STD, "cpu", train=True, with_index=True,
                          generator=torch.Generator().manual_seed(0))
    epochs = [list(loader) for _ in range(2)]
    for batches in epochs:
        assert [len(index) for _, _, index in batches] == [5, 5, 5, 5, 3]
        order = torch.cat([index for _, _, index in batches])
        assert sorted(order.tolist()) == list(range(23))
        assert torch.equal(torch.cat([target for _, target, _ in batches]), torch.as_tensor(labels)[order])
    assert not torch.equal(*[torch.cat([index for _, _, index in batches]) for batches in epochs])
    dropping = DeviceLoader(random_images(23), labels, 5, MEAN, STD, "cpu", drop_last=True, with_index=True)
    assert len(dropping) == 4 and sum(len(index) for _, _, index in dropping) == 20
    assert dropping.dataset_size == 23


def test_same_seed_same_batches_and_state_resumes():
    images, labels = random_images(20), np.arange(20) % 2

    def make(seed):
        torch.manual_seed(seed)  # no generator given: seeded from torch's global RNG
        return DeviceLoader(images, labels, 8, MEAN, STD, "cpu", contrast=ContrastSampler(labels, 4))

    first, second = list(make(3)), list(make(3))
    for a, b in zip(first, second):
        assert all(torch.equal(x, y) for x, y in zip(a, b))
    assert not torch.equal(first[0][0], list(make(4))[0][0])

    # each epoch is seeded from the global RNG: restoring it (as --resume does) replays the epoch
    loader = make(3)
    list(loader)
    state = torch.get_rng_state()
    next_epoch = list(loader)
    torch.set_rng_state(state)
    for a, b in zip(next_epoch, list(loader)):
        assert all(torch.equal(x, y) for x, y in zip(a, b))


def test_unshuffled_train_loader_keeps_order_and_mine_style_loader_is_plain():
    images = random_images(6)
    loader = DeviceLoader(images, np.arange(6) % 2, 6, MEAN, STD, "cpu", train=False, shuffle=True,
                          with_index=True)
    img, _, index = next(iter(loader))
    assert sorted(index.tolist()) == list(range(6))
    expected = torch.stack([torchvision_normalised(images[i]) for i in index.tolist()])
    torch.testing.assert_close(img, expected, atol=1e-6, rtol=0)
    ordered = DeviceLoader(images, np.arange(6) % 2, 4, MEAN, STD, "cpu", train=True, shuffle=False, with_index=True)
    assert torch.cat([index for _, _, index in ordered]).tolist() == list(range(6))


# --------------------------------------------------------------------------- contrast sampler

@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("mode", ["exact", "relax"])
def test_contrast_sampler_rows(device, mode):
    labels = np.repeat(np.arange(4), [6, 9, 5, 10])  # unequal classes: pools 24, 21, 25, 20
    sampler = ContrastSampler(labels, 18, mode, device)
    index = torch.arange(30)
    rows = sampler.sample(index, torch.as_tensor(labels), generator=torch.Generator(device).manual_seed(0))
    assert rows.dtype == torch.int64 and rows.shape == (30, 19) and rows.device.type == device
    assert not check_contrast_rows(rows.cpu().numpy(), range(30), labels, 18, mode)  # k < every pool: no repeats
    if mode == "relax":
        assert (rows[:, 0].cpu() != index).any()


def test_contrast_sampler_with_replacement_when_k_exceeds_some_pools():
    labels = np.repeat(np.arange(3), [3, 6, 8])  # pools 14, 11, 9
    for k in (12, 30):  # 12: only some rows need replacement; 30: every row does
        sampler = ContrastSampler(labels, k, "relax")
        torch.manual_seed(k)
        rows = sampler.sample(torch.arange(17), torch.as_tensor(labels)).numpy()
        assert check_contrast_rows(rows, range(17), labels, k, "relax")
        if k == 12:  # class 0 has a pool of 14 >= 12 and so must still be drawn without replacement
            assert all(len(set(row[1:])) == 12 for row in rows[:3])


def test_contrast_negatives_are_uniform_over_the_other_classes():
    labels = np.repeat(np.arange(3), [4, 5, 3])
    sampler = ContrastSampler(labels, 3, "exact")
    torch.manual_seed(0)
    target = torch.full((3000,), 1)
    rows = sampler.sample(torch.full((3000,), 6), target)
    counts = torch.bincount(rows[:, 1:].flatten(), minlength=12)
    assert counts[4:9].sum() == 0  # class 1 occupies indices 4..8
    others = counts[[0, 1, 2, 3, 9, 10, 11]].float()
    assert (others - 9000 / 7).abs().max() < 120  # each of the 7 others: 1286 expected, sd ~31
