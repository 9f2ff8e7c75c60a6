"""Helpers shared by the tests, imported as ``helpers.<module>`` (tests/conftest.py puts tests/ on ``sys.path``).

- ``cli``: run the CLI in-process and expect success or exactly one ``error:`` line
- ``data``: the demo grid, a NIfTI writer and the tiny prepared-dataset writers
- ``train``: the tiny network settings of the training, study and CLI tests
- ``cohort``: the synthetic brain cohort of the metrics tests
- ``infer``: tiny demo generators with their dataset geometry
- ``preprocess``: the MNI152 brain moved by a known affine
- ``page``: reading a viewer page back
- ``reliability``: fault and bad-input counters, tiny runs, pickle payloads, safetensors surgery
- ``tf_reference``: dnnlib-style TF network pickles and their numpy reference forward pass
"""
