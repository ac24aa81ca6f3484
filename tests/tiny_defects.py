"""A tiny category with an obvious synthetic defect, shared by the RealNet and PRN tests."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import torch

from detectors.data.training import TrainingSet

SIZE = 128
SQUARE = (SIZE, SIZE)


def normal_image(rng: np.random.Generator, shape: tuple[int, int] = SQUARE) -> np.ndarray:
    """A smooth grey gradient with mild noise: every normal image looks alike."""
    rows = np.linspace(90, 160, shape[0], dtype=np.float32)
    columns = np.linspace(90, 160, shape[1], dtype=np.float32)
    image = np.repeat((columns[None, :] + rows[:, None] * 0.3)[..., None], 3, axis=2)
    return np.clip(image + rng.normal(0, 3, image.shape), 0, 255).astype(np.uint8)


def with_defect(image: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """The image with a saturated disc painted in, and the disc's {0, 255} mask."""
    mask = np.zeros(image.shape[:2], np.uint8)
    centre = rng.integers(24, np.array(image.shape[1::-1]) - 24)
    cv2.circle(mask, (int(centre[0]), int(centre[1])), int(rng.integers(8, 16)), 255, -1)
    out = image.copy()
    out[mask > 0] = (230, 30, 30)
    return out, mask


def tiny_training_set(normal: int = 16, anomalies: int = 24, seed: int = 0,
                      shape: tuple[int, int] = SQUARE) -> TrainingSet:
    rng = np.random.default_rng(seed)
    images = [normal_image(rng, shape) for _ in range(normal)]
    return TrainingSet(images, [with_defect(images[i % normal], rng) for i in range(anomalies)])


def tiny_test_set(count: int = 6, seed: int = 1,
                  shape: tuple[int, int] = SQUARE) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Images, labels and masks: ``count`` fresh normal images and ``count`` defective ones."""
    rng = np.random.default_rng(seed)
    normal = [normal_image(rng, shape) for _ in range(2 * count)]
    defective = [with_defect(image, rng) for image in normal[count:]]
    images = np.stack(normal[:count] + [image for image, _ in defective])
    masks = np.stack([np.zeros(shape, np.uint8)] * count + [mask for _, mask in defective])
    return images, np.r_[np.zeros(count), np.ones(count)], masks


def check_round_trips(detector, directory: Path, data: TrainingSet,
                      test: tuple[np.ndarray, np.ndarray, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Fit ``detector`` on ``data`` and score the ``test`` images: maps of their masks' shape, and a saved
    copy that scores alike. Returns the scores and maps."""
    from detectors import load_detector

    torch.set_num_threads(1)
    detector.fit(data)
    images, _, masks = test
    scores, maps = detector.score(images)
    assert maps.shape == masks.shape
    again, again_maps = load_detector(detector.save(directory / "model")).score(images)
    np.testing.assert_allclose(again, scores, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(again_maps, maps, rtol=1e-5, atol=1e-6)
    return scores, maps


def check_separates_and_round_trips(detector, directory: Path) -> None:
    """Fit ``detector`` on the tiny set; it must find the defects, and a saved copy must score alike."""
    from detectors.evaluation.metrics import image_auroc, pixel_auroc

    test = tiny_test_set()
    scores, maps = check_round_trips(detector, directory, tiny_training_set(), test)
    assert image_auroc(test[1], scores) > 0.9
    assert pixel_auroc(test[2], maps) > 0.75
