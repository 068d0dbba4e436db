"""Shared helpers for the Neural Networks from Scratch course.

Every notebook imports from here instead of carrying its own copy:

- ``dlcourse.data``        datasets (cat photos, planar data) and the fetch command
- ``dlcourse.activations`` the activation functions students are given
- ``dlcourse.gradcheck``   centred-difference gradient checking
- ``dlcourse.checks``      the engine behind every visible check
- ``dlcourse.testcases``   deterministic inputs for each exercise
- ``dlcourse.plots``       cost curves, decision boundaries, image grids
- ``dlcourse.images``      "try your own picture" and mislabeled-picture grids
- ``dlcourse.envcheck``    the environment check of the start-here page
- ``dlcourse.widgets``     computations behind the interactive companions
"""

__version__ = "0.1.0"
