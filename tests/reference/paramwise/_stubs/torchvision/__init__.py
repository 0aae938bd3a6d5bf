# Stub: mmcv 1.7.2 mmcv/runner/checkpoint.py does a top-level `import torchvision`
# but only uses it when loading torchvision:// checkpoints. Not needed for optimizer
# construction; real torchvision isn't installed in this reference env.
__version__ = '0.0.0+stub'
