from .cifar_resnet import CifarBasicBlock, CifarBottleneck, CifarResNet
from .resnet import AttentionBottleneck, AttentionResNet

__all__ = ['AttentionResNet', 'AttentionBottleneck', 'CifarResNet', 'CifarBasicBlock',
           'CifarBottleneck']
