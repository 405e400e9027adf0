using Ect.Actors.Configuration;
using Ect.Compute.Runtime;

namespace Ect.Actors.Engine;

/// <summary>The device a run trains on, as the banner and `ect ctl status` print it (issue 18).</summary>
public static class DeviceText
{
    /// <summary>The engine's own device (the torch engine's resolved ect.run.device; the others run on the CPU or on nothing).</summary>
    public static string Of(ITrainingEngine engine) => engine switch
    {
        TorchTrainingEngine t => t.Device.Describe(),
        FakeTrainingEngine => "the CPU (arithmetic stand-in, no tensors)",
        _ => ComputeDevice.Cpu.Describe(),
    };

    /// <summary>What the engine will resolve ect.run.device to, without building it (the run coordinator's status).</summary>
    public static string Of(RunSettings s)
    {
        if (s.Engine == "fake") return "the CPU (fake engine: arithmetic stand-in, no tensors)";
        if (s.Network.IsEdm2) return ComputeDevice.Cpu.Describe();
        try { return ComputeDevice.Resolve(s.Device).Describe(); }
        catch (ArgumentException) { return $"{s.Device} (not available)"; }
    }
}
