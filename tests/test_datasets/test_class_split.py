"""PerClassSplit: EAN's held-out split, the first N samples of every class, and the rest."""
import pytest

from mmsase.datasets import PerClassSplit, per_class_indices


class Labelled:
    """A stand-in data set: sample i is (i, label i)."""

    def __init__(self, labels):
        self.labels = labels

    def __len__(self):
        return len(self.labels)

    def __getitem__(self, i):
        return i, self.labels[i]

    def get_cat_ids(self, i):
        return [self.labels[i]]


def test_per_class_indices():
    labels = [2, 0, 2, 1, 0, 2, 0, 1]
    head, rest = per_class_indices(labels, 2)
    assert head.tolist() == [0, 1, 2, 3, 4, 7]
    assert rest.tolist() == [5, 6]
    assert per_class_indices(labels, 0)[0].tolist() == []
    with pytest.raises(ValueError, match='num_per_class'):
        per_class_indices(labels, -1)


def test_parts_are_disjoint_and_cover():
    data = Labelled([3, 3, 1, 3, 1, 1, 1, 0])
    head = PerClassSplit(data, part=0, num_per_class=1)
    rest = PerClassSplit(data, part=1, num_per_class=1)
    assert [head[i] for i in range(len(head))] == [(0, 3), (2, 1), (7, 0)]
    assert [rest[i][0] for i in range(len(rest))] == [1, 3, 4, 5, 6]
    assert 'num_per_class=1' in repr(head)
    with pytest.raises(ValueError, match='part'):
        PerClassSplit(data, part=2)


def test_on_mmpretrain_imagenet(imagenet_root):
    from mmsase.datasets import ImageNet
    dataset = dict(type='mmsase.ImageNet', data_root=imagenet_root, split='train',
                   classes=imagenet_root + '/meta/classes.txt', pipeline=[])
    head = PerClassSplit(dataset, part=0, num_per_class=3)
    rest = PerClassSplit(dataset, part=1, num_per_class=3)
    assert isinstance(head.dataset, ImageNet)
    assert len(head) == 12 and len(rest) == 4  # 4 classes x 4 training images
    assert sorted(head.get_cat_ids(i)[0] for i in range(12)) == [0] * 3 + [1] * 3 + [2] * 3 + \
        [3] * 3
