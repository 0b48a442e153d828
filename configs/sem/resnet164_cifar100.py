# CIFAR ResNet-164 on CIFAR-100 (fine labels), the SEM paper's recipe: resnet164_cifar10.py
# with 100 classes and the CIFAR-100 set (normalised as the authors do, with CIFAR-10's
# mean/std). 1,727,284 parameters.
_base_ = './resnet164_cifar10.py'
num_classes = 100
model = dict(head=dict(num_classes=num_classes))
data_preprocessor = dict(num_classes=num_classes)
dataset_type = 'mmsase.CIFAR100'
data_root = 'data/cifar100'
train_dataloader = dict(dataset=dict(type=dataset_type, data_root=data_root))
val_dataloader = dict(dataset=dict(type=dataset_type, data_root=data_root))
test_dataloader = val_dataloader
