using TorchSharp;
using static TorchSharp.torch;

namespace Ect.Compute.Networks.Edm2;

/// <summary>
/// locuslab/ect's <c>disable_forced_wn(module)</c> (training/loss.py): switches forced weight normalisation off on
/// every <see cref="MPConv"/> of a module for the teacher pass and back on afterwards. A no-op for modules without
/// MPConv layers (the DDPM++ networks), so losses can call it for any network.
/// </summary>
public static class ForcedWeightNormalization
{
    /// <summary>Turns forced WN off on every MPConv of <paramref name="module"/> until the result is disposed.</summary>
    public static IDisposable Suspend(nn.Module module)
    {
        var convs = module.modules().OfType<MPConv>().Where(c => c.ForceWeightNormalization).ToList();
        foreach (var c in convs) c.ForceWeightNormalization = false;
        return new Restore(convs);
    }

    /// <summary>Sets forced WN on every MPConv of <paramref name="module"/>.</summary>
    public static void Set(nn.Module module, bool enabled)
    {
        foreach (var c in module.modules().OfType<MPConv>()) c.ForceWeightNormalization = enabled;
    }

    private sealed class Restore(List<MPConv> convs) : IDisposable
    {
        private bool _done;

        public void Dispose()
        {
            if (_done) return;
            _done = true;
            foreach (var c in convs) c.ForceWeightNormalization = true;
        }
    }
}
