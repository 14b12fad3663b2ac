"""STUB: being written. Replace this whole file."""

__all__ = ['GridRaysampler', 'MonteCarloRaysampler', 'MultinomialRaysampler', 'NDCGridRaysampler', 'NDCMultinomialRaysampler']

GridRaysampler = None  # stub
MonteCarloRaysampler = None  # stub
MultinomialRaysampler = None  # stub
NDCGridRaysampler = None  # stub
NDCMultinomialRaysampler = None  # stub
