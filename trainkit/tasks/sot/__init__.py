"""Single-object tracking: a small SiamRPN, generated or folder sequences, one-pass evaluation."""
from .data import PairDataset, SequenceSet, tracking_data
from .evaluate import TrackingEvaluator, TrackingReport
from .model import SiamRPN
from .sequences import Sequence, read_sequence, read_sequences, write_sequence
from .tracker import SiamRPNTracker
from .unfreeze import BackboneUnfreeze

__all__ = ["BackboneUnfreeze", "PairDataset", "Sequence", "SequenceSet", "SiamRPN", "SiamRPNTracker",
           "TrackingEvaluator", "TrackingReport", "read_sequence", "read_sequences", "tracking_data",
           "write_sequence"]
