"""A run's backbone file in and out of other tools' formats: written as a state dict, TorchScript or ONNX for
serving (:mod:`.export`, ``simclr export``), and a checkpoint of another SimCLR implementation turned into a
backbone file every evaluation takes (:mod:`.import_weights`, ``simclr import-weights``).
"""
