"""Registry entries of the classical baselines: no weights, no download."""

from bench.adapters import ModelSpec, register_model

register_model(
    ModelSpec(
        name="grabcut-opencv",
        factory="bench.adapters.classical.grabcut_opencv:make_predictor",
        family="classical",
        needs_weights=False,
        description="OpenCV GrabCut seeded from click disks (Rother et al., SIGGRAPH 2004)",
        input_size="native, longest side capped by max_side",
    )
)

register_model(
    ModelSpec(
        name="random-walker",
        factory="bench.adapters.classical.random_walker:make_predictor",
        family="classical",
        needs_weights=False,
        description="scikit-image random walker seeded from click disks (Grady, TPAMI 2006)",
        input_size="working resolution, see adapter",
    )
)
