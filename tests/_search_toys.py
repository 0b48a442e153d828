"""Tiny SASE-search models and in-memory data for the search tests (test_algorithms,
test_engine). Importable because ``tests/`` holds the root conftest (pytest puts it on
``sys.path``)."""
import pytest
import torch
from torch.utils.data import Dataset

NUM_CLASSES = 3
IMAGE_SIZE = 8


@pytest.fixture
def single_thread():
    """One torch thread: tiny models on a shared 2-core machine run faster that way."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def tiny_classifier_cfg(attention=dict(type='SASESupernet')) -> dict:
    """CIFAR ResNet-8 with 4/8/16 channels and a supernet block in the last stage only."""
    return dict(
        type='ImageClassifier',
        backbone=dict(
            type='mmsase.CifarResNet',
            depth=8,
            base_channels=4,
            attention=attention,
            attention_stages=(False, False, True)),
        neck=dict(type='GlobalAveragePooling'),
        head=dict(type='LinearClsHead', num_classes=NUM_CLASSES, in_channels=16),
        data_preprocessor=dict(
            type='ClsDataPreprocessor', mean=[127.5] * 3, std=[64.0] * 3))


def tiny_search_cfg(unroll: bool = False) -> dict:
    return dict(
        type='mmsase.SASESearch',
        unroll=unroll,
        architecture=tiny_classifier_cfg())


def search_optim_wrapper_cfg(weights_lr=0.05, architecture_lr=3e-4) -> dict:
    return dict(
        constructor='mmsase.SearchOptimWrapperConstructor',
        weights=dict(optimizer=dict(
            type='SGD', lr=weights_lr, momentum=0.9, weight_decay=5e-4)),
        architecture=dict(optimizer=dict(
            type='Adam', lr=architecture_lr, betas=(0.5, 0.999), weight_decay=1e-3)))


def build_search_model(unroll: bool = False):
    from mmsase.registry import MODELS
    return MODELS.build(tiny_search_cfg(unroll))


def build_search_optim_wrapper(model, **kwargs):
    from mmengine.optim import build_optim_wrapper
    return build_optim_wrapper(model, search_optim_wrapper_cfg(**kwargs))


class ToyImages(Dataset):
    """``num_samples`` 8x8 RGB images whose class sets which colour channel is bright.

    ``__getitem__`` adds noise from the *global* torch RNG, like a random augmentation in
    the main process, so determinism tests notice unseeded randomness. Each sample also
    carries its index in ``data_samples.sample_idx``.
    """

    metainfo = dict(classes=tuple(f'class{i}' for i in range(NUM_CLASSES)))

    def __init__(self, num_samples: int = 24, seed: int = 0) -> None:
        generator = torch.Generator().manual_seed(seed)
        self.labels = torch.randint(0, NUM_CLASSES, (num_samples, ), generator=generator)
        self.images = torch.rand(num_samples, 3, IMAGE_SIZE, IMAGE_SIZE,
                                 generator=generator) * 100
        for i, label in enumerate(self.labels):
            self.images[i, label] += 120

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> dict:
        from mmpretrain.structures import DataSample
        noise = torch.rand(3, IMAGE_SIZE, IMAGE_SIZE) * 30  # "augmentation"
        image = (self.images[index] + noise).clamp(0, 255).to(torch.uint8)
        sample = DataSample(metainfo=dict(sample_idx=index)).set_gt_label(
            int(self.labels[index]))
        return dict(inputs=image, data_samples=sample)


def collate(samples) -> dict:
    """mmengine's ``pseudo_collate`` of ``ToyImages`` samples."""
    from mmengine.dataset import pseudo_collate
    return pseudo_collate(samples)


def toy_loader(dataset, shuffle: bool = True) -> dict:
    """A data loader config of ``dataset`` (e.g. a ``HalfSplit`` of ``ToyImages``), batch 4."""
    return dict(dataset=dataset, batch_size=4, num_workers=0, collate_fn=collate,
                sampler=dict(type='DefaultSampler', shuffle=shuffle))


def toy_batch(indices, dataset=None) -> dict:
    dataset = ToyImages(64) if dataset is None else dataset
    return collate([dataset[i] for i in indices])
