"""Built-in datasets: CIFAR-10/100, COCO, ImageNet-style folders, digits and synthetic data.

Load them by name through :func:`dlbench.data.load`; each module here is imported only
when its dataset is first used.
"""
