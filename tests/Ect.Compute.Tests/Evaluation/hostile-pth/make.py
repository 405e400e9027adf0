# Writes the hostile PyTorch checkpoints of PthHostilePickleTests (no PyTorch needed: torch.save's zip layout and
# pickle, with stand-ins for torch.FloatStorage and torch._utils._rebuild_tensor_v2). Run: python3 make.py
import os
import pickle, io, zipfile, sys, types, collections, struct
torch = types.ModuleType('torch'); sys.modules['torch'] = torch
utils = types.ModuleType('torch._utils'); sys.modules['torch._utils'] = utils; torch._utils = utils
class FloatStorage: pass
FloatStorage.__module__ = 'torch'; torch.FloatStorage = FloatStorage
def _rebuild_tensor_v2(*a): pass
_rebuild_tensor_v2.__module__ = 'torch._utils'; utils._rebuild_tensor_v2 = _rebuild_tensor_v2
class Storage:
    def __init__(s, key, numel): s.key, s.numel = key, numel
class T:
    def __init__(s, storage, offset, size, stride): s.a = (storage, offset, size, stride, False, collections.OrderedDict())
    def __reduce__(s): return (_rebuild_tensor_v2, s.a)
class P(pickle.Pickler):
    def persistent_id(s, o):
        return ('storage', FloatStorage, o.key, 'cpu', o.numel) if isinstance(o, Storage) else None
def write(path, numel, size, stride, offset=0, data_floats=216):
    b = io.BytesIO(); P(b, protocol=2).dump(collections.OrderedDict([('weight', T(Storage('0', numel), offset, size, stride))]))
    with zipfile.ZipFile(path, 'w', zipfile.ZIP_STORED) as z:
        z.writestr('archive/data.pkl', b.getvalue())
        z.writestr('archive/data/0', struct.pack('<%df' % data_floats, *([0.5] * data_floats)))
        z.writestr('archive/version', '3\n')
write(os.path.join(os.path.dirname(os.path.abspath(__file__)), 'ok.pth'), 216, (8, 3, 3, 3), (27, 9, 3, 1))
write(os.path.join(os.path.dirname(os.path.abspath(__file__)), 'huge-numel.pth'), 1 << 40, (8, 3, 3, 3), (27, 9, 3, 1))
write(os.path.join(os.path.dirname(os.path.abspath(__file__)), 'size-overrun.pth'), 216, (8, 3, 3, 3), (270, 90, 30, 10))
write(os.path.join(os.path.dirname(os.path.abspath(__file__)), 'offset-overrun.pth'), 216, (8, 3, 3, 3), (27, 9, 3, 1), offset=1 << 40)
write(os.path.join(os.path.dirname(os.path.abspath(__file__)), 'huge-size.pth'), 216, (1 << 20, 1 << 20, 3, 3), (9 << 20, 9, 3, 1))
write(os.path.join(os.path.dirname(os.path.abspath(__file__)), 'neg-stride.pth'), 216, (8, 3, 3, 3), (-27, 9, 3, 1))
