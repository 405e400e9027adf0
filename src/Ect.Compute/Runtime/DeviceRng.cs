using TorchSharp;
using static TorchSharp.torch;

namespace Ect.Compute.Runtime;

/// <summary>
/// Keeps a CUDA device's random stream a function of the CPU generator's state, so that saving the CPU state (what
/// TrainStep and TrainState already do: <c>rng</c> in the checkpoint) is enough to resume a CUDA run exactly.
/// Why: TorchSharp 0.107 binds no get/set of the CUDA default generator's state (only torch.cuda.manual_seed /
/// manual_seed_all), and a step's noise (randn on the device) and dropout masks (F.dropout on the device) draw from
/// that generator. So wherever the CPU state is set (a step's start, EctLoss's shared dropout mask), <see cref="Sync"/>
/// draws one 63-bit seed from the CPU stream and seeds the device with it: the same CPU state gives the same device
/// stream. On the CPU it does nothing, so CPU runs keep their bits.
/// Deviation: PyTorch saves torch.cuda.get_rng_state() beside the CPU state; the effect (exact resume) is the same.
/// </summary>
public static class DeviceRng
{
    /// <summary>Seeds <paramref name="device"/>'s default generator from the CPU stream (one draw); a no-op on the CPU.</summary>
    public static void Sync(Device device)
    {
        if (device.type == DeviceType.CPU) return;
        // The host generator is the root of every stream: this draw is meant to be on the CPU (allow-listed in TensorDeviceRules).
        using var draw = randint(long.MaxValue, [1], dtype: ScalarType.Int64, device: CPU);
        torch.cuda.manual_seed_all(draw.item<long>());
    }
}
