// Reads TorchSharp.dll's IL (docs/torchsharp-scalar-race.md).
//   --scan        every public method or constructor that calls Scalar.op_Implicit and never Dispose itself (its
//                 temporary Scalar is left to the GC finalizer, which may free it while libtorch still reads it), or
//                 that calls such a method of TorchSharp's (directly or through other TorchSharp methods: Tensor's
//                 operator + calls add(Tensor), which makes alpha = 1 and drops it). One "Type+Nested.Name(ParamTypes)"
//                 a line, sorted: the format of tests/Ect.Actors.Tests/TorchScalars/torchsharp-leaky-scalar-methods.txt,
//                 which TorchScalarRulesTests reads. Regenerate it with scripts/tools/torchsharp-scalar-scan.sh.
//   --direct      only the methods that make and drop the Scalar themselves (the first list of the doc: 86 methods).
//   NAME...       the calls each Tensor method of that name makes.
using System.Reflection;
using System.Reflection.Emit;

var asm = Assembly.LoadFrom(args[0]);
var opcodes = typeof(OpCodes).GetFields().Select(f => (OpCode)f.GetValue(null)!).ToDictionary(o => o.Value);

if (args[1] is "--scan" or "--direct")
{
    Type[] types;
    try { types = asm.GetTypes(); } catch (ReflectionTypeLoadException e) { types = e.Types.Where(x => x != null).ToArray()!; }
    const BindingFlags all = BindingFlags.Public | BindingFlags.NonPublic | BindingFlags.Static | BindingFlags.Instance | BindingFlags.DeclaredOnly;
    var methods = types.SelectMany(t => t.GetMethods(all).Cast<MethodBase>().Concat(t.GetConstructors(all))).ToList();
    var leaky = new HashSet<MethodBase>();
    var callers = new Dictionary<MethodBase, List<MethodBase>>(); // callee (in TorchSharp) -> callers
    foreach (var m in methods)
    {
        bool makes = false, disposes = false;
        foreach (var callee in Calls(m))
        {
            if (callee.DeclaringType?.Name == "Scalar" && callee.Name == "op_Implicit") makes = true;
            if (callee.Name == "Dispose") disposes = true;
            if (callee.Module == m.Module)
            {
                var key = Definition(callee);
                if (!callers.TryGetValue(key, out var list)) callers[key] = list = [];
                list.Add(m);
            }
        }
        if (makes && !disposes) leaky.Add(m);
    }
    if (args[1] == "--scan")
    {
        var work = new Queue<MethodBase>(leaky);
        while (work.TryDequeue(out var m))
            if (callers.TryGetValue(Definition(m), out var cs))
                foreach (var c in cs) if (leaky.Add(c)) work.Enqueue(c);
    }
    var lines = leaky.Where(m => (m.IsPublic || m.IsFamily) && IsVisible(m.DeclaringType!))
        .Select(Id).OfType<string>().Distinct().Order(StringComparer.Ordinal);
    foreach (var line in lines) Console.WriteLine(line);
    return;
}

var tensor = asm.GetType("TorchSharp.torch+Tensor")!;
foreach (var name in args.Skip(1))
    foreach (var m in tensor.GetMethods(BindingFlags.Public | BindingFlags.Static | BindingFlags.Instance).Where(m => m.Name == name))
        Console.WriteLine($"{name}({string.Join(",", m.GetParameters().Select(p => p.ParameterType.Name))}): {string.Join(" ", Calls(m).Select(c => c.DeclaringType!.Name + "." + c.Name))}");

// The generic definition, so that calls to an instantiation reach the callers of the method that was scanned.
static MethodBase Definition(MethodBase m) =>
    m is MethodInfo { IsGenericMethod: true } g && !g.IsGenericMethodDefinition ? g.GetGenericMethodDefinition() : m;

// "Type+Nested.Name(ParamTypeNames)"; null for a method whose parameter types cannot be loaded (TensorBoard's protobuf).
static string? Id(MethodBase m)
{
    try { return $"{m.DeclaringType!.FullName}.{m.Name}({string.Join(",", m.GetParameters().Select(p => p.ParameterType.Name))})"; }
    catch (FileNotFoundException) { return null; }
}

static bool IsVisible(Type t) => t.IsPublic || (t.IsNestedPublic && IsVisible(t.DeclaringType!));

IEnumerable<MethodBase> Calls(MethodBase m)
{
    byte[]? il;
    try { il = m.GetMethodBody()?.GetILAsByteArray(); } catch { yield break; }
    if (il is null) yield break;
    for (int i = 0; i < il.Length;)
    {
        short v = il[i];
        OpCode op;
        if (v == 0xFE) { op = opcodes[(short)(0xFE00 | il[i + 1])]; i += 2; } else { op = opcodes[v]; i += 1; }
        if (op.OperandType == OperandType.InlineMethod)
        {
            MethodBase? callee = null;
            try
            {
                var typeArgs = m.DeclaringType?.IsGenericType == true ? m.DeclaringType.GetGenericArguments() : null;
                var methodArgs = m is MethodInfo { IsGenericMethod: true } ? m.GetGenericArguments() : null;
                callee = m.Module.ResolveMethod(BitConverter.ToInt32(il, i), typeArgs, methodArgs);
            }
            catch { }
            if (callee != null) yield return callee;
        }
        i += op.OperandType switch
        {
            OperandType.InlineNone => 0,
            OperandType.ShortInlineBrTarget or OperandType.ShortInlineI or OperandType.ShortInlineVar => 1,
            OperandType.InlineVar => 2,
            OperandType.InlineI8 or OperandType.InlineR => 8,
            OperandType.InlineSwitch => 4 + 4 * BitConverter.ToInt32(il, i),
            _ => 4,
        };
    }
}
