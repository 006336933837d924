"""ProtoPNet trainer: trains "This Looks Like That" models and publishes ONNX model bundles."""

__version__ = "1.0.0"
