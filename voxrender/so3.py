"""STUB: being written. Replace this whole file."""

__all__ = ['hat', 'hat_inv', 'so3_exp_map', 'so3_log_map']

hat = None  # stub
hat_inv = None  # stub
so3_exp_map = None  # stub
so3_log_map = None  # stub
