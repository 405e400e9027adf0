using static TorchSharp.torch;

namespace Ect.Compute.Networks;

/// <summary>
/// The device this thread's network constructors create their parameters and buffers on: null (libtorch's default,
/// the CPU) except inside <see cref="MetaShapes.Of"/>, which sets the meta device for its own thread only.
/// Deviation from PyTorch, which would use <c>torch.device("meta")</c> as a context manager: TorchSharp's default device
/// (<c>torch.set_default_device</c>) is process-wide (measured: a tensor created on another thread while it was
/// switched landed on meta too), so switching it would put a concurrent trainer's or test's tensors on meta. Every
/// factory call in a module constructor passes <see cref="Current"/>; MetaShapesTests fails on one that does not.
/// </summary>
public static class ModuleDevice
{
    [ThreadStatic] private static Device? _current;

    /// <summary>The device for parameters and buffers made by constructors on this thread (null: the default).</summary>
    public static Device? Current => _current;

    /// <summary>Sets this thread's construction device until the returned scope is disposed.</summary>
    public static IDisposable Use(Device device)
    {
        var previous = _current;
        _current = device;
        return new Scope(previous);
    }

    private sealed class Scope(Device? previous) : IDisposable
    {
        public void Dispose() => _current = previous;
    }
}
