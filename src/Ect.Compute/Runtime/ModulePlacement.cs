using System.Reflection;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Ect.Compute.Runtime;

/// <summary>
/// Moves a module's parameters and buffers to a device (or dtype) keeping every name and every C# reference right.
/// Why not TorchSharp's Module.to: for each field holding a Parameter it registers the moved copy under the field's
/// CLR name, which for our auto-properties (<c>Weight { get; }</c>) is <c>&lt;Weight&gt;k__BackingField</c>, not the
/// registered name <c>weight</c>, and moves the registered one separately: the field the forward pass reads is left
/// on a dead or unregistered tensor (measured with a dtype move, which runs the same code on the CPU: reading the
/// field afterwards throws "Tensor invalid -- empty handle"; DevicePlacementTests). Here each registered parameter and buffer is replaced under its own
/// name and every field (of any declaring type) that held the old tensor is pointed at the new one.
/// </summary>
public static class ModulePlacement
{
    /// <summary>Moves <paramref name="root"/> to <paramref name="device"/>; nothing changes (not even a handle) when it is there already.</summary>
    public static void MoveTo(nn.Module root, Device device) =>
        Apply(root, t => t.to(device), t => t.device_type == device.type && t.device_index == (device.type == DeviceType.CPU ? -1 : device.index));

    /// <summary>The device of <paramref name="module"/>'s first parameter (or buffer); the CPU for a module with neither.</summary>
    public static Device DeviceOf(nn.Module module)
    {
        var t = module.parameters().Cast<Tensor>().Concat(module.buffers()).FirstOrDefault();
        return t?.device ?? CPU;
    }

    /// <summary>Converts every floating-point parameter and buffer of <paramref name="root"/> to <paramref name="dtype"/>.</summary>
    public static void ConvertTo(nn.Module root, ScalarType dtype) =>
        Apply(root, t => t.to(dtype), t => t.dtype == dtype || !is_floating_point(t));

    private static readonly MethodInfo RegisterParameter = typeof(nn.Module)
        .GetMethods(BindingFlags.Instance | BindingFlags.NonPublic)
        .Single(m => m.Name == "ConditionallyRegisterParameter" && m.GetParameters() is [{ ParameterType: var a }, { ParameterType: var b }]
                     && a == typeof(string) && b == typeof(Parameter));

    private static readonly MethodInfo RegisterBuffer = typeof(nn.Module)
        .GetMethods(BindingFlags.Instance | BindingFlags.NonPublic)
        .Where(m => m.Name == "ConditionallyRegisterBuffer" && m.GetParameters() is [{ ParameterType: var a }, { ParameterType: var b }, ..]
                    && a == typeof(string) && b == typeof(Tensor))
        .OrderBy(m => m.GetParameters().Length).Last();

    private static void Apply(nn.Module root, Func<Tensor, Tensor> convert, Func<Tensor, bool> done)
    {
        using var noGrad = no_grad();
        foreach (var module in new[] { root }.Concat(root.modules().Where(m => !ReferenceEquals(m, root))))
        {
            var replaced = new Dictionary<IntPtr, Tensor>();
            var old = new List<Tensor>();
            foreach (var (name, p) in module.named_parameters(recurse: false).ToList())
            {
                if (done(p)) continue;
                var moved = new Parameter(convert(p.detach()), p.requires_grad);
                RegisterParameter.Invoke(module, [name, moved]);
                replaced[p.Handle] = moved;
                old.Add(p);
            }
            var persistent = module.state_dict().Keys.ToHashSet(StringComparer.Ordinal);
            foreach (var (name, b) in module.named_buffers(recurse: false).ToList())
            {
                if (done(b)) continue;
                var moved = convert(b);
                object[] args = RegisterBuffer.GetParameters().Length == 3 ? [name, moved, persistent.Contains(name)] : [name, moved];
                RegisterBuffer.Invoke(module, args);
                replaced[b.Handle] = moved;
                old.Add(b);
            }
            if (replaced.Count == 0) continue;
            for (var type = module.GetType(); type != null && type != typeof(nn.Module); type = type.BaseType)
                foreach (var field in type.GetFields(BindingFlags.Instance | BindingFlags.Public | BindingFlags.NonPublic | BindingFlags.DeclaredOnly))
                    if (field.GetValue(module) is Tensor t && replaced.TryGetValue(t.Handle, out var now))
                        field.SetValue(module, now);
            foreach (var t in old) t.Dispose();
        }
    }
}
