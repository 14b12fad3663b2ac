"""STUB: being written. Replace this whole file."""

__all__ = ['AbsorptionOnlyRaymarcher', 'EmissionAbsorptionRaymarcher']

AbsorptionOnlyRaymarcher = None  # stub
EmissionAbsorptionRaymarcher = None  # stub
