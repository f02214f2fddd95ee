"""plait.data.lra: the Long Range Arena tasks (Tay et al. 2020) as deterministic batch sources."""
from plait.data.lra.listops import lra_listops_inputs
from plait.data.lra.pathfinder import lra_pathfinder_inputs

__all__ = ['lra_listops_inputs', 'lra_pathfinder_inputs']
