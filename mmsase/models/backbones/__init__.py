from .cifar_resnet import CifarBasicBlock, CifarBottleneck, CifarResNet
from .resnet import AttentionResNet
from .resnet_blocks import AttentionBasicBlock, AttentionBottleneck

__all__ = ['AttentionResNet', 'AttentionBasicBlock', 'AttentionBottleneck', 'CifarResNet',
           'CifarBasicBlock', 'CifarBottleneck']
