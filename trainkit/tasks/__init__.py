"""The shipped tasks: models, data and evaluators for the recipes in ``recipes/`` — ``digits``
(a small CNN on scikit-learn's digits), ``restoration`` (denoising, PSNR), ``byol``
(self-supervised, k-NN evaluation), ``convnext`` (a tiny ConvNeXt for layer decay) and
``sot`` (single-object tracking: the SiamRPN main job). May import ``core`` only (and each
other).
"""
