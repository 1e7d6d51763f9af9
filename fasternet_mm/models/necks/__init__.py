from .fasternet_pafpn import FasterNetPAFPN

__all__ = ['FasterNetPAFPN']
